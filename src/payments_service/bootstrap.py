"""Composition root: the one place that chooses adapters and wires them together."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from payments_service.application.service import PaymentService
from payments_service.application.system import RandomPaymentIds, SystemClock
from payments_service.observability.observer import TelemetryObserver
from payments_service.observability.store_gauges import register_store_gauges
from payments_service.observability.telemetry import Telemetry
from payments_service.observability.traced import TracedProcessor, TracedRepository
from payments_service.processor.simulated import SimulatedProcessor
from payments_service.storage.memory import InMemoryPaymentRepository
from payments_service.transport.errors import ErrorMappingInterceptor
from payments_service.transport.interceptors.access_log import AccessLogInterceptor
from payments_service.transport.interceptors.metrics import MetricsInterceptor
from payments_service.transport.interceptors.request_id import RequestIdInterceptor
from payments_service.transport.interceptors.tracing import (
    SpanFinisher,
    library_server_interceptor,
)

if TYPE_CHECKING:
    import grpc

    from payments_service.config import Settings
    from payments_service.domain.ports import (
        Clock,
        IdGenerator,
        PaymentProcessor,
        PaymentRepository,
    )

MIB = 1024 * 1024


def build_service(
    settings: Settings,
    *,
    telemetry: Telemetry | None = None,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    repository: PaymentRepository | None = None,
    processor: PaymentProcessor | None = None,
) -> PaymentService:
    """The application service with the default adapters; tests pass their own ports."""
    telemetry = telemetry or Telemetry()
    # `is None`, not `or`: an empty repository is falsy (it has __len__).
    if clock is None:
        clock = SystemClock()
    if repository is None:
        ttl = timedelta(seconds=settings.idempotency_ttl_seconds)
        store = InMemoryPaymentRepository(
            ttl=ttl, clock=clock, max_bytes=settings.memory_store_max_mib * MIB
        )
        if telemetry.metrics is not None:
            register_store_gauges(store.stats, telemetry.metrics.registry)
        repository = store
    if processor is None:
        processor = SimulatedProcessor(slow_delay=settings.simulated_slow_seconds)
    tracer = telemetry.tracer()
    if telemetry.tracer_provider is not None:
        repository = TracedRepository(repository, tracer, system="memory")
        processor = TracedProcessor(processor, tracer, name="simulated-processor")
    return PaymentService(
        repository=repository,
        processor=processor,
        clock=clock,
        ids=RandomPaymentIds() if ids is None else ids,
        processor_timeout=settings.processor_timeout_seconds,
        observer=TelemetryObserver(telemetry.metrics),
        tracer=tracer,
    )


def build_interceptors(
    telemetry: Telemetry | None = None,
) -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    """The server interceptor chain, outermost first. A switched-off signal adds nothing.

    1. opentelemetry-instrumentation-grpc: starts the SERVER span (continuing the caller's
       traceparent) so everything inside, logs included, is in the trace.
    2. SpanFinisher: finishes that span from the call state (code, status, exception once,
       request and payment attributes); right inside the library so it sees the same span.
    3. RequestIdInterceptor: binds the request id before anything below logs.
    4. AccessLogInterceptor: one line per call, with the final code and duration.
    5. MetricsInterceptor: counts and times the call (the same duration as the log line).
    6. ErrorMappingInterceptor: innermost, so every layer above sees a final status code and
       never a raw exception, and nothing bypasses the mapping.
    """
    telemetry = telemetry or Telemetry()
    chain: list[grpc.aio.ServerInterceptor[Any, Any]] = []
    if telemetry.tracer_provider is not None:
        chain.append(
            library_server_interceptor(telemetry.tracer_provider, telemetry.excluded_prefixes)
        )
        chain.append(SpanFinisher())
    chain.append(RequestIdInterceptor())
    if telemetry.access_log:
        chain.append(AccessLogInterceptor(telemetry.excluded_prefixes))
    if telemetry.metrics is not None:
        chain.append(MetricsInterceptor(telemetry.metrics))
    chain.append(ErrorMappingInterceptor())
    return chain
