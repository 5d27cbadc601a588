"""`make bench-encoder`: the SDK's OTLP span encoder against the service's fast one, and
what each span kind of the service's span tree costs to make and to encode.

Both encode the same batches of finished spans shaped like the service's (a SERVER span with
the rpc.*, request and payment attributes; a database CLIENT span), interleaved round by round
so drift of a shared machine hits both alike. Reports the median µs per span and the median time
to encode one full export batch (OTEL_BSP_MAX_EXPORT_BATCH_SIZE, default 512 spans): how long one
export holds the GIL that the event loop needs.

    python -m benchmarks.encoder [--rounds 7] [--batch 512]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from payments_service.adapters.stores.observed import TABLE
from payments_service.application.service import SETTLE_SPAN
from payments_service.observability.sdk_extensions import SpanEncoder
from payments_service.observability.tracing import SCOPE_NAME, build_resource

# The service's database span of a claim (`adapters.stores.observed`: `{operation} {table}`).
CLAIM = "claim"
CLAIM_SPAN = f"{CLAIM} {TABLE}"


def service_like_spans(count: int) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=build_resource(), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer(SCOPE_NAME)
    for n in range(count // 2):
        with (
            tracer.start_as_current_span(
                "/payments.v1.PaymentService/RequestPayment",
                kind=SpanKind.SERVER,
                attributes={
                    "rpc.system": "grpc",
                    "rpc.grpc.status_code": 0,
                    "rpc.method": "RequestPayment",
                    "rpc.service": "payments.v1.PaymentService",
                    "net.peer.ip": "127.0.0.1",
                    "net.peer.port": str(40000 + n % 1000),
                    "net.peer.name": "localhost",
                    "rpc.user_agent": "grpc-python/1.85.3 grpc-c/50.0.0 (linux; chttp2)",
                    "request.id": uuid.uuid4().hex,
                    "merchant.id": "default",
                    "payment.id": f"pay_{uuid.uuid4().hex}",
                    "payment.currency": "EUR",
                    "payment.amount_minor": 1250,
                    "payment.status": "SUCCEEDED",
                    "payment.idempotent_replay": False,
                },
            ),
            tracer.start_as_current_span(
                CLAIM_SPAN,
                kind=SpanKind.CLIENT,
                attributes={
                    "db.system.name": "sqlite",
                    "db.collection.name": TABLE,
                    "db.operation.name": CLAIM,
                },
            ),
        ):
            pass
    return list(exporter.get_finished_spans())


# The span kinds of the span tree (ARCHITECTURE.md), with the attributes each carries.
SPAN_KINDS: dict[str, tuple[str, SpanKind, dict[str, Any]]] = {
    "SERVER (the call)": (
        "/payments.v1.PaymentService/RequestPayment",
        SpanKind.SERVER,
        {
            "rpc.system": "grpc",
            "rpc.grpc.status_code": 0,
            "rpc.method": "RequestPayment",
            "rpc.service": "payments.v1.PaymentService",
            "net.peer.ip": "127.0.0.1",
            "net.peer.port": "40000",
            "request.id": "0" * 32,
            "merchant.id": "default",
            "payment.id": "pay_" + "0" * 32,
            "payment.currency": "EUR",
            "payment.amount_minor": 1250,
            "payment.status": "SUCCEEDED",
            "payment.idempotent_replay": False,
        },
    ),
    "CLIENT (database operation)": (
        CLAIM_SPAN,
        SpanKind.CLIENT,
        {
            "db.system.name": "postgresql",
            "db.operation.name": CLAIM,
            "db.collection.name": TABLE,
            "db.namespace": "payments",
        },
    ),
    "INTERNAL (background settlement)": (
        SETTLE_SPAN,
        SpanKind.INTERNAL,
        {"payment.id": "pay_" + "0" * 32, "payment.status": "SUCCEEDED"},
    ),
}


def span_kind_costs(rounds: int, count: int = 2000) -> dict[str, tuple[float, float]]:
    """Median µs to start, annotate and end one span of each kind (through a
    BatchSpanProcessor that does not export while timing), and to encode it (fast encoder)."""
    provider = TracerProvider(resource=build_resource(), shutdown_on_exit=False)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter,
            max_queue_size=count * rounds * len(SPAN_KINDS),
            schedule_delay_millis=3_600_000,
            max_export_batch_size=count,
        )
    )
    tracer = provider.get_tracer(SCOPE_NAME)
    made: dict[str, list[float]] = {name: [] for name in SPAN_KINDS}
    for _ in range(rounds):
        for label, (name, kind, attributes) in SPAN_KINDS.items():
            started = time.perf_counter()
            for _ in range(count):
                tracer.start_span(name, kind=kind, attributes=attributes).end()
            made[label].append((time.perf_counter() - started) / count)
    provider.force_flush()
    finished = exporter.get_finished_spans()
    costs = {}
    for label, (name, _kind, _attributes) in SPAN_KINDS.items():
        spans = [span for span in finished if span.name == name][:count]
        encoding = [timed(SpanEncoder().request, spans) / len(spans) for _ in range(rounds)]
        costs[label] = (statistics.median(made[label]) * 1e6, statistics.median(encoding) * 1e6)
    provider.shutdown()
    return costs


def timed(encode: Callable[[Sequence[ReadableSpan]], bytes], batch: list[ReadableSpan]) -> float:
    started = time.perf_counter()
    encode(batch)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.encoder", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=512)
    opts = parser.parse_args(argv)
    batch = service_like_spans(opts.batch)
    fast = SpanEncoder()
    encoders: dict[str, Callable[[Sequence[ReadableSpan]], bytes]] = {
        "sdk (opentelemetry-exporter-otlp-proto-common)": lambda s: sdk_encode(
            s
        ).SerializeToString(),
        # What FastOTLPSpanExporter sends: the request's bytes.
        "fast (payments_service.observability.sdk_extensions)": fast.request,
    }
    samples: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(opts.rounds):
        for name, encode in encoders.items():
            samples[name].append(timed(encode, batch))
    print(f"{len(batch)} spans a batch, {opts.rounds} interleaved rounds, medians:\n")
    print("| encoder | µs per span | ms per batch (GIL held) |")
    print("|---|---|---|")
    medians = {name: statistics.median(values) for name, values in samples.items()}
    for name, seconds in medians.items():
        print(f"| {name} | {seconds / len(batch) * 1e6:.1f} | {seconds * 1e3:.1f} |")
    sdk, ours = medians.values()
    print(f"\nfast/sdk time ratio: {ours / sdk:.3f}\n")
    print("Cost of one span of each kind of the span tree (medians):\n")
    print("| span kind | µs to start, annotate and end | µs to encode (fast) |")
    print("|---|---|---|")
    for label, (lifecycle, encoding) in span_kind_costs(opts.rounds).items():
        print(f"| {label} | {lifecycle:.1f} | {encoding:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
