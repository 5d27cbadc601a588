"""An in-process server with every signal on: spans in memory, metrics on a fresh registry
served over HTTP on port 0, JSON logs captured. Nothing global leaks between tests."""

from __future__ import annotations

import io
import json
import threading
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from payments_service.application.order_limit import OrderAttempts
from payments_service.bootstrap import build_interceptors, build_service
from payments_service.domain.ports import PaymentProcessor, PaymentRepository
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.observability.logs import LogWriter
from payments_service.observability.metrics import (
    Metrics,
    load_series,
    new_registry,
    register_sampled,
    start_metrics_server,
)
from payments_service.observability.telemetry import Telemetry
from payments_service.observability.tracing import ServiceTracerProvider
from payments_service.security.authenticator import Authenticator
from payments_service.transport.admission import ConcurrencyLimit, MerchantRateLimit
from payments_service.transport.grpc_server import UNARY_METHODS, start_server
from tests.conftest import TEST_SETTINGS, Api, CapturedLogs
from tests.fakes import FakeClock, SequentialIds


class EndedSpans(SpanProcessor):
    """Counts spans started and not yet ended. A failed call's status reaches the client before
    the library's SERVER span around it ends (the answer is sent from inside it), so a test
    waits for the spans it started before reading them."""

    def __init__(self) -> None:
        self._open = 0
        self._idle = threading.Condition()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        with self._idle:
            self._open += 1

    def on_end(self, span: ReadableSpan) -> None:
        with self._idle:
            self._open -= 1
            self._idle.notify_all()

    def wait(self, timeout: float = 5.0) -> None:
        with self._idle:
            assert self._idle.wait_for(lambda: self._open == 0, timeout), "spans left open"


@dataclass
class Observed:
    api: Api
    exporter: InMemorySpanExporter
    metrics: Metrics
    metrics_url: str
    log_stream: io.StringIO
    log_writer: LogWriter
    open_spans: EndedSpans
    telemetry: Telemetry

    def spans(self) -> list[ReadableSpan]:
        """Every span ended so far, once every span started has ended."""
        self.open_spans.wait()
        return list(self.exporter.get_finished_spans())

    def server_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.kind.name == "SERVER"]

    def log_text(self) -> str:
        """Everything logged so far (after the background writer has written it)."""
        assert self.log_writer.flush(5), "the log writer did not drain within 5 s"
        return self.log_stream.getvalue()

    def log_lines(self, event: str | None = None) -> list[dict[str, Any]]:
        lines = [json.loads(raw) for raw in self.log_text().splitlines()]
        return [line for line in lines if event is None or line["event"] == event]

    def access_lines(self) -> list[dict[str, Any]]:
        return self.log_lines("rpc_completed")

    def scrape(self, *, openmetrics: bool = False) -> str:
        request = urllib.request.Request(self.metrics_url)  # noqa: S310 - a local http URL
        if openmetrics:
            request.add_header("Accept", "application/openmetrics-text; version=1.0.0")
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            body: bytes = response.read()
        return body.decode()

    def sample(self, name: str, **labels: str) -> float:
        """A sample's value from a real scrape of /metrics, parsed by prometheus_client."""
        for family in text_string_to_metric_families(self.scrape()):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        raise AssertionError(f"no sample {name}{labels}")


@pytest.fixture
def log_stream(captured_logs: CapturedLogs) -> io.StringIO:
    return captured_logs.stream


@pytest.fixture
async def observed_factory(captured_logs: CapturedLogs) -> AsyncIterator[Any]:
    cleanups: list[Any] = []

    async def start(
        *,
        repository: PaymentRepository | None = None,
        processor: PaymentProcessor | None = None,
        observe_health: bool = False,
        authenticator: Authenticator | None = None,
        limit: ConcurrencyLimit | None = None,
        rate_limit: MerchantRateLimit | None = None,
        order_attempts: OrderAttempts | None = None,
        clock: FakeClock | None = None,
    ) -> Observed:
        exporter = InMemorySpanExporter()
        provider = ServiceTracerProvider()
        open_spans = EndedSpans()
        provider.add_span_processor(open_spans)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        metrics = Metrics(new_registry())
        metrics.initialize(UNARY_METHODS)
        if limit is not None:
            register_sampled(metrics.registry, load_series(limit))
        http_server, port = start_metrics_server(
            "127.0.0.1:0",
            metrics.registry,
            workers=TEST_SETTINGS.metrics_max_connections,
            timeout=TEST_SETTINGS.metrics_read_timeout_seconds,
        )
        telemetry = Telemetry(
            tracer_provider=provider,
            metrics=metrics,
            access_log=True,
            observe_health_checks=observe_health,
        )
        service = build_service(
            TEST_SETTINGS,
            telemetry=telemetry,
            clock=clock or FakeClock(),
            ids=SequentialIds(),
            repository=repository,
            processor=processor,
            order_attempts=order_attempts,
        )
        server = await start_server(
            service,
            "127.0.0.1:0",
            build_interceptors(telemetry, authenticator, limit, rate_limit=rate_limit),
        )
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        api = Api(server, channel, pb_grpc.PaymentServiceStub(channel), service)
        cleanups.append((api, http_server, provider))
        return Observed(
            api,
            exporter,
            metrics,
            f"http://127.0.0.1:{port}/metrics",
            captured_logs.stream,
            captured_logs.writer,
            open_spans,
            telemetry,
        )

    yield start
    for api, http_server, provider in cleanups:
        await api.channel.close(None)
        await api.server.stop(0)
        await api.service.drain(5)
        http_server.shutdown()
        provider.shutdown()


@pytest.fixture
async def observed(observed_factory: Any) -> Observed:
    result: Observed = await observed_factory()
    return result
