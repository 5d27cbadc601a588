"""`proto`: the cheapest honest full-telemetry server for payments.v1, built from stock parts.

The floor's dict-backed RPCs (`floor_server.FloorServicer`), plus every signal the service
promises, each the library's own way with its default settings:
- a SERVER span per call from opentelemetry-instrumentation-grpc's aio server interceptor,
  batched by the SDK's `BatchSpanProcessor` and sent by the stock `OTLPSpanExporter` to
  OTEL_EXPORTER_OTLP_ENDPOINT (the bench's OTLP sink, another process);
- one structlog JSON line per call on stdout (`rpc_completed`, with the trace id);
- two Prometheus metrics, served on 127.0.0.1:0: calls by method and code, and a latency
  histogram by method.
It anchors what "observability-first" should cost: `full` against `proto`. Prints
`{"event": "server_started", "port": N, "metrics_port": M}`; on SIGTERM it stops and flushes its
spans before exiting 0.

    python -m benchmarks.proto_server
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import structlog
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import Counter, Histogram, start_http_server

from benchmarks.floor_server import FloorServicer
from benchmarks.serving import serve_until_signalled
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.observability.logs import ACCESS_EVENT
from payments_service.observability.metrics import CODE_LABEL, HANDLED, HANDLING_SECONDS

# payments-server's names (go-grpc-middleware's): `measure.scrape_handled` reads both servers.
HANDLED_TOTAL = Counter(HANDLED, "RPCs completed.", ("grpc_method", CODE_LABEL))
LATENCY = Histogram(HANDLING_SECONDS, "RPC handling time.", ("grpc_method",))
log = structlog.get_logger()
OK, NOT_FOUND = grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND


def observe(method: str, code: grpc.StatusCode, started: float) -> None:
    """The call's log line and metrics (the SERVER span is the interceptor's)."""
    elapsed = time.perf_counter() - started
    HANDLED_TOTAL.labels(method, code.name).inc()
    LATENCY.labels(method).observe(elapsed)
    trace_id = trace.get_current_span().get_span_context().trace_id
    log.info(
        ACCESS_EVENT,
        method=method,
        code=code.name,
        duration_ms=elapsed * 1e3,
        trace_id=format(trace_id, "032x"),
    )


class ProtoServicer(FloorServicer):
    async def RequestPayment(  # noqa: N802 - gRPC method names are fixed by the proto
        self, request: pb.RequestPaymentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RequestPaymentResponse:
        started = time.perf_counter()
        response = self.request_sync(request)
        observe("RequestPayment", OK, started)
        return response

    async def GetPayment(  # noqa: N802
        self, request: pb.GetPaymentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetPaymentResponse:
        started = time.perf_counter()
        payment = self.lookup(request.payment_id)
        if payment is None:
            context.set_code(NOT_FOUND)
        observe("GetPayment", OK if payment else NOT_FOUND, started)
        return payment or pb.GetPaymentResponse()

    async def Health(  # noqa: N802
        self, request: pb.HealthRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.HealthResponse:
        observe("Health", OK, time.perf_counter())
        return pb.HealthResponse(status="ok")


async def serve() -> None:
    resource = Resource.create({"service.name": "payments-proto"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.WriteLoggerFactory(),
        cache_logger_on_first_use=True,
    )
    metrics_http, _ = start_http_server(0, addr="127.0.0.1")
    interceptor = aio_server_interceptor(tracer_provider=provider)  # type: ignore[no-untyped-call]
    server = grpc.aio.server(interceptors=[interceptor])
    pb_grpc.add_PaymentServiceServicer_to_server(ProtoServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await serve_until_signalled(server, port, metrics_port=metrics_http.server_port)
    provider.shutdown()  # exports the spans still queued
    metrics_http.shutdown()


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
