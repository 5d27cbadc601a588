"""Shared fixtures: a service with deterministic ports, and a real in-process gRPC server on
port 0 with a real channel to it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import structlog

from payments_service.application.service import PaymentService
from payments_service.bootstrap import build_interceptors, build_service
from payments_service.config import Settings
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.observability.logs import LogWriter, configure_logging
from payments_service.transport.grpc_server import RunningServer, start_server
from tests.fakes import FakeClock, SequentialIds

# Small processor deadline and slow delay keep the suite fast; both stay well apart so the
# PENDING path is deterministic.
TEST_SETTINGS = Settings(
    grpc_address="127.0.0.1:0",
    http_address="127.0.0.1:0",
    metrics_address=None,
    processor_timeout_seconds=0.2,
    simulated_slow_seconds=0.6,
    idempotency_ttl_seconds=3600,
)


@dataclass
class CapturedLogs:
    """Logging configured as in production (JSON through the background writer) into memory."""

    stream: io.StringIO
    writer: LogWriter

    def text(self) -> str:
        """Everything logged so far, once the background writer has written it."""
        assert self.writer.flush(5), "the log writer did not drain within 5 s"
        return self.stream.getvalue()

    def lines(self, event: str | None = None) -> list[dict[str, Any]]:
        parsed = [json.loads(raw) for raw in self.text().splitlines()]
        return [line for line in parsed if event is None or line["event"] == event]


@pytest.fixture
def captured_logs() -> Iterator[CapturedLogs]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    writer = configure_logging(Settings(log_level="debug"), stream=stream, cache_loggers=False)
    yield CapturedLogs(stream, writer)
    writer.close(5)
    root.handlers[:], level = saved
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _clean_log_context() -> Iterator[None]:
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ids() -> SequentialIds:
    return SequentialIds()


@pytest.fixture
def service(clock: FakeClock, ids: SequentialIds) -> PaymentService:
    return build_service(TEST_SETTINGS, clock=clock, ids=ids)


@dataclass
class Api:
    """A running server and a stub on a real channel to it."""

    server: RunningServer
    channel: grpc.aio.Channel
    stub: pb_grpc.PaymentServiceAsyncStub
    service: PaymentService

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"


ApiFactory = Callable[..., Any]


@pytest.fixture
async def api_factory() -> AsyncIterator[ApiFactory]:
    started: list[Api] = []

    async def start(service: PaymentService) -> Api:
        server = await start_server(service, "127.0.0.1:0", build_interceptors())
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        api = Api(server, channel, pb_grpc.PaymentServiceStub(channel), service)
        started.append(api)
        return api

    yield start
    for api in started:
        await api.channel.close(None)
        await api.server.stop(0)
        await api.service.drain(5)


@pytest.fixture
async def api(api_factory: ApiFactory, service: PaymentService) -> Api:
    result: Api = await api_factory(service)
    return result


@pytest.fixture(params=["grpc", "http"])
async def client(request: pytest.FixtureRequest, api: Api) -> AsyncIterator[Any]:
    """A client of the `api` service over each transport (`tests.transports`)."""
    from tests.transports import client_for  # noqa: PLC0415 - it imports this module

    async with client_for(request.param, api.channel, api.service) as made:
        yield made


def payment_request(**overrides: Any) -> pb.RequestPaymentRequest:
    fields: dict[str, Any] = {
        "amount_minor": 1250,
        "currency": "EUR",
        "order_id": "order-42",
        "idempotency_key": "key-1",
    }
    fields.update(overrides)
    return pb.RequestPaymentRequest(**fields)
