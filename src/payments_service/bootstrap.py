"""Composition root: the one place that chooses adapters and wires them together."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from payments_service.application.recovery import SettlementRecovery
from payments_service.application.service import PaymentService
from payments_service.application.system import RandomPaymentIds, SystemClock
from payments_service.observability.observer import TelemetryObserver
from payments_service.observability.store import ObservedRepository, StoreMetrics
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
    from payments_service.storage.factory import Store


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
        repository = InMemoryPaymentRepository(ttl=ttl, clock=clock)
    if processor is None:
        processor = SimulatedProcessor(slow_delay=settings.simulated_slow_seconds)
    tracer = telemetry.tracer()
    # A durable store is already wrapped by observe_store (database CLIENT spans).
    if telemetry.tracer_provider is not None and not isinstance(repository, ObservedRepository):
        # TracedRepository (observability/traced.py) lacks purge_expired: see docs/storage.md.
        repository = TracedRepository(repository, tracer, system="memory")  # type: ignore[assignment]
        processor = TracedProcessor(processor, tracer, name="simulated-processor")
    return PaymentService(
        repository=repository,
        processor=processor,
        clock=clock,
        ids=RandomPaymentIds() if ids is None else ids,
        processor_timeout=settings.processor_timeout_seconds,
        settlement_timeout=settings.settlement_timeout_seconds,
        observer=TelemetryObserver(telemetry.metrics),
        tracer=tracer,
    )


def observe_store(store: Store, settings: Settings, telemetry: Telemetry) -> PaymentRepository:
    """The store's repository, wrapped for database spans and the store metrics (durable stores;
    the memory store keeps the spans build_service gives it)."""
    if store.system == "memory":
        return store.repository
    metrics = None
    if telemetry.metrics is not None:
        metrics = StoreMetrics(telemetry.metrics.registry)
        if store.pool is not None:
            metrics.watch_pool(store.system, store.pool)
    location = settings.store
    return ObservedRepository(
        store.repository,
        system=store.system,
        tracer=telemetry.tracer(),
        metrics=metrics,
        namespace=location.database or location.path,
        server_address=location.host or None,
        server_port=location.port,
    )


def build_recovery(
    settings: Settings,
    store: Store,
    *,
    repository: PaymentRepository,
    processor: PaymentProcessor,
    clock: Clock,
) -> SettlementRecovery | None:
    """Crash recovery of interrupted settlements; None for the memory store (nothing survives
    a crash there to recover)."""
    if store.stalled is None:
        return None
    return SettlementRecovery(
        stalled=store.stalled,
        repository=repository,
        processor=processor,
        clock=clock,
        deadline=timedelta(seconds=settings.settlement_deadline_seconds),
        charge_timeout=settings.settlement_timeout_seconds,
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
