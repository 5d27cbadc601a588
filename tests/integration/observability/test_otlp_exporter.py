"""`FastOTLPSpanExporter` against a real OTLP/gRPC receiver, side by side with the SDK's own
`OTLPSpanExporter`: from the same OTEL_EXPORTER_OTLP_* environment both must deliver the same
request with the same headers (plaintext, gzip, TLS, mutual TLS), fail alike, and retry alike."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from payments_service.observability.sdk_extensions import FastOTLPSpanExporter, OtlpTarget
from tests.otlp_receiver import Failure, OtlpReceiver
from tests.tls_files import TlsFiles, make_tls_files

# Headers the transport adds; everything else a receiver sees came from the exporter.
TRANSPORT_HEADERS = {"user-agent", "grpc-accept-encoding", "grpc-encoding"}


@pytest.fixture(autouse=True)
def _no_otlp_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_EXPORTER_OTLP_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("otlp-tls"))


def spans() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "svc"}), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("payments_service", "0.1.0")
    with (
        tracer.start_as_current_span(
            "/payments.v1.PaymentService/RequestPayment", kind=SpanKind.SERVER
        ),
        tracer.start_as_current_span("claim payments", kind=SpanKind.CLIENT) as child,
    ):
        child.set_attribute("db.system.name", "sqlite")
    return list(exporter.get_finished_spans())


def ours(receiver: OtlpReceiver) -> FastOTLPSpanExporter:
    return FastOTLPSpanExporter(OtlpTarget.from_environ(receiver.endpoint))


def sdks(receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch) -> OTLPSpanExporter:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    return OTLPSpanExporter()


def export_once(exporter: SpanExporter, batch: list[ReadableSpan]) -> SpanExportResult:
    try:
        return exporter.export(batch)
    finally:
        exporter.shutdown()


def sent_headers(metadata: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in metadata.items() if k not in TRANSPORT_HEADERS}


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_EXPORTER_OTLP_HEADERS": "api-key=s3cret,x-tenant=eu%20west"},
        {"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "k=traces", "OTEL_EXPORTER_OTLP_HEADERS": "k=all"},
        {"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"},
        {
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": "gzip",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "3",
        },
    ],
)
def test_both_exporters_deliver_the_same_request_and_headers(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    batch = spans()
    with OtlpReceiver() as receiver:
        assert export_once(sdks(receiver, monkeypatch), batch) is SpanExportResult.SUCCESS
        assert export_once(ours(receiver), batch) is SpanExportResult.SUCCESS
    sdk_request, our_request = receiver.requests
    assert our_request == sdk_request
    sdk_headers, our_headers = (sent_headers(m) for m in receiver.metadata)
    assert our_headers == sdk_headers


@pytest.mark.parametrize("mutual", [False, True])
def test_both_exporters_speak_tls_from_the_certificate_variables(
    monkeypatch: pytest.MonkeyPatch, tls: TlsFiles, mutual: bool
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(tls.ca))
    if mutual:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", str(tls.client_cert))
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_KEY", str(tls.client_key))
    batch = spans()
    receiver = OtlpReceiver(
        tls=(tls.server_cert, tls.server_key), client_ca=tls.ca if mutual else None
    )
    with receiver:
        assert receiver.endpoint.startswith("https://")
        assert export_once(sdks(receiver, monkeypatch), batch) is SpanExportResult.SUCCESS
        assert export_once(ours(receiver), batch) is SpanExportResult.SUCCESS
    assert receiver.requests[0] == receiver.requests[1]


def test_without_the_client_certificate_mutual_tls_fails_for_both(
    monkeypatch: pytest.MonkeyPatch, tls: TlsFiles
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(tls.ca))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    batch = spans()
    with OtlpReceiver(tls=(tls.server_cert, tls.server_key), client_ca=tls.ca) as receiver:
        assert export_once(sdks(receiver, monkeypatch), batch) is SpanExportResult.FAILURE
        assert export_once(ours(receiver), batch) is SpanExportResult.FAILURE
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("failures", "result", "attempts"),
    [
        # A retryable code: retried after the collector's RetryInfo delay, then delivered.
        ([(grpc.StatusCode.UNAVAILABLE, 0.01)], SpanExportResult.SUCCESS, 2),
        ([(grpc.StatusCode.RESOURCE_EXHAUSTED, 0.01)] * 2, SpanExportResult.SUCCESS, 3),
        # Not retryable: one attempt.
        ([(grpc.StatusCode.INVALID_ARGUMENT, None)], SpanExportResult.FAILURE, 1),
        # A RetryInfo delay past the timeout: not waited for.
        ([(grpc.StatusCode.UNAVAILABLE, 60.0)], SpanExportResult.FAILURE, 1),
    ],
)
def test_both_exporters_retry_alike(
    monkeypatch: pytest.MonkeyPatch,
    failures: list[Failure],
    result: SpanExportResult,
    attempts: int,
) -> None:
    batch = spans()
    for make in (lambda r: sdks(r, monkeypatch), ours):
        with OtlpReceiver(failures=failures) as receiver:
            assert export_once(make(receiver), batch) is result
        assert receiver.attempts == attempts


def test_shutdown_ends_a_retry_wait_at_once() -> None:
    forever = [(grpc.StatusCode.UNAVAILABLE, 20.0)] * 10
    with OtlpReceiver(failures=forever) as receiver:
        url = receiver.endpoint
        exporter = FastOTLPSpanExporter(
            OtlpTarget.from_environ(url, {"OTEL_EXPORTER_OTLP_TIMEOUT": "60"})
        )
        results: list[SpanExportResult] = []
        exporting = threading.Thread(target=lambda: results.append(exporter.export(spans())))
        exporting.start()
        receiver.wait_for_attempts(1)
        started = time.monotonic()
        exporter.shutdown()
        exporting.join(5)
    assert results == [SpanExportResult.FAILURE]
    assert time.monotonic() - started < 5
    assert exporter.export(spans()) is SpanExportResult.FAILURE  # after shutdown: refused


@pytest.mark.parametrize(
    ("url", "env", "expected"),
    [
        ("http://collector:4317", {}, OtlpTarget("collector:4317", insecure=True)),
        ("https://collector:4317", {}, OtlpTarget("collector:4317", insecure=False)),
        (
            "https://collector:4317",
            {"OTEL_EXPORTER_OTLP_INSECURE": "true"},
            OtlpTarget("collector:4317", insecure=False),  # https wins, as in the SDK
        ),
        (
            "collector:4317",
            {"OTEL_EXPORTER_OTLP_TRACES_INSECURE": "true", "OTEL_EXPORTER_OTLP_INSECURE": "false"},
            OtlpTarget("collector:4317", insecure=True),
        ),
        (
            "http://c:4317",
            {
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2.5",
                "OTEL_EXPORTER_OTLP_TIMEOUT": "30",
                "OTEL_EXPORTER_OTLP_HEADERS": "a=1, b = two",
                "OTEL_EXPORTER_OTLP_COMPRESSION": "GZIP",
            },
            OtlpTarget(
                "c:4317",
                insecure=True,
                headers=(("a", "1"), ("b", "two")),
                timeout=2.5,
                compression=grpc.Compression.Gzip,
            ),
        ),
        (
            "https://c:4317",
            {
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": "/t/ca.pem",
                "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY": "/t/key.pem",
                "OTEL_EXPORTER_OTLP_CLIENT_KEY": "/all/key.pem",
            },
            OtlpTarget("c:4317", insecure=False, certificate="/t/ca.pem", client_key="/t/key.pem"),
        ),
    ],
)
def test_the_target_is_resolved_from_the_environment_as_the_sdk_resolves_it(
    url: str, env: dict[str, str], expected: OtlpTarget
) -> None:
    assert OtlpTarget.from_environ(url, env) == expected


def test_an_unknown_compression_is_refused_as_the_sdk_refuses_it() -> None:
    """The SDK knows gzip and none only (deflate included: it refuses it)."""
    with pytest.raises(ValueError, match="invalid OTLP compression 'deflate'"):
        OtlpTarget.from_environ("http://c:4317", {"OTEL_EXPORTER_OTLP_COMPRESSION": "deflate"})


def test_a_certificate_file_that_cannot_be_read_fails_at_start(tmp_path: Path) -> None:
    target = OtlpTarget("c:4317", insecure=False, certificate=str(tmp_path / "missing.pem"))
    with pytest.raises(FileNotFoundError):
        FastOTLPSpanExporter(target)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


def test_force_flush_has_nothing_to_flush(receiver: OtlpReceiver) -> None:
    exporter = ours(receiver)
    assert exporter.force_flush()
    exporter.shutdown()
