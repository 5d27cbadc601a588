"""Composition root: the one place that chooses adapters and wires them together.

`build_app` builds everything a running service is made of (telemetry, the metrics server, the
application service, the interceptor chain and the started gRPC server); the entry point's
`serve()` only runs the lifecycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog

from payments_service.adapters.simulated_processor import SimulatedProcessor
from payments_service.adapters.stores.factory import open_store
from payments_service.adapters.stores.memory import MIB, InMemoryPaymentRepository
from payments_service.adapters.stores.observed import ObservedRepository, StoreMetrics
from payments_service.adapters.stores.pending import PendingRepository
from payments_service.adapters.system import RandomPaymentIds, SystemClock
from payments_service.adapters.traced_processor import TracedProcessor
from payments_service.application.recovery import SettlementRecovery
from payments_service.application.service import PaymentService
from payments_service.observability.certificate_expiry import register_certificate_expiry
from payments_service.observability.metrics import LoadGauges, start_metrics_server
from payments_service.observability.observer import TelemetryObserver
from payments_service.observability.store_gauges import register_store_gauges
from payments_service.observability.telemetry import Telemetry, build_telemetry
from payments_service.observability.tracing import library_server_interceptor
from payments_service.security.authenticator import DEFAULT_MERCHANT, Authenticator
from payments_service.transport.admission import ConcurrencyLimit, ShutdownGate
from payments_service.transport.grpc_server import UNARY_METHODS, ConnectionPolicy, start_server
from payments_service.transport.interceptors.auth import AuthInterceptor
from payments_service.transport.interceptors.observation import (
    HEALTH_CHECK_PREFIXES,
    ObservationInterceptor,
)

log = structlog.get_logger(__name__)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from wsgiref.simple_server import WSGIServer

    import grpc
    from opentelemetry.sdk.trace import SpanProcessor

    from payments_service.adapters.stores.factory import Store
    from payments_service.config import Settings
    from payments_service.domain.ports import (
        Clock,
        IdGenerator,
        PaymentProcessor,
        PaymentRepository,
    )
    from payments_service.observability.logs import LogWriter
    from payments_service.security.api_keys import KeyRing
    from payments_service.transport.grpc_server import RunningServer


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
        simulation=settings.simulation,
    )


def observe_store(store: Store, settings: Settings, telemetry: Telemetry) -> PaymentRepository:
    """The store's repository, wrapped for database spans and the store metrics (durable stores;
    the in-memory store does no I/O and gets no spans)."""
    if store.system == "memory":
        repository = store.repository
        if telemetry.metrics is not None and isinstance(repository, InMemoryPaymentRepository):
            register_store_gauges(repository.stats, telemetry.metrics.registry)
        return repository
    metrics = None
    if telemetry.metrics is not None:
        metrics = StoreMetrics(telemetry.metrics.registry)
        if store.pool is not None:
            metrics.watch_pool(store.system, store.pool)
        if store.transactions is not None:
            metrics.watch_transactions(store.system, store.transactions)
    location = settings.store
    return ObservedRepository(
        store.repository,
        system=store.system,
        tracer_provider=telemetry.tracer_provider,
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
    authenticator: Authenticator | None = None,
    limit: ConcurrencyLimit | None = None,
    gate: ShutdownGate | None = None,
) -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    """The server interceptor chain, outermost first.

    1. opentelemetry-instrumentation-grpc (only when tracing is on): starts the SERVER span,
       continuing the caller's traceparent, so everything inside, logs included, is in it.
    2. ObservationInterceptor: the one observation point. It records, times and answers every
       call (errors through the one error table) and hands the completed record to the
       reporters. Innermost, so nothing below it can bypass the error mapping, and right inside
       the library, so its span reporter finishes the library's span. It also sheds calls past
       `limit` (RESOURCE_EXHAUSTED), and parks then refuses (UNAVAILABLE) new calls once
       `gate` closes at shutdown, so those calls are counted, logged and traced too.
    3. AuthInterceptor (only when API keys are configured): the caller's merchant from its key,
       inside the observation point, so a refused key becomes UNAUTHENTICATED through the one
       error table and is counted, logged and traced like any call. Without keys, the
       observation interceptor gives every call merchant `default` (no extra frame per call).
    """
    telemetry = telemetry or Telemetry()
    every_call, health_checks = telemetry.reporters()
    chain: list[grpc.aio.ServerInterceptor[Any, Any]] = []
    if telemetry.tracer_provider is not None:
        untraced = () if telemetry.observe_health_checks else HEALTH_CHECK_PREFIXES
        chain.append(library_server_interceptor(telemetry.tracer_provider, untraced))
    authenticator = authenticator or Authenticator(None)
    chain.append(
        ObservationInterceptor(
            every_call,
            health_reporters=health_checks,
            merchant=None if authenticator.enabled else DEFAULT_MERCHANT,
            limit=limit,
            gate=gate,
        )
    )
    if authenticator.enabled:
        chain.append(AuthInterceptor(authenticator))
    return chain


@dataclass(slots=True)
class App:
    """A started service: what the lifecycle needs to run it and stop it."""

    settings: Settings
    telemetry: Telemetry
    store: Store
    service: PaymentService
    server: RunningServer
    recovery: SettlementRecovery | None = None
    metrics_http: WSGIServer | None = None
    metrics_port: int | None = None


async def build_app(
    settings: Settings,
    *,
    log_writer: LogWriter | None = None,
    keys: KeyRing | None = None,
    credentials: grpc.ServerCredentials | None = None,
    span_processors: tuple[SpanProcessor, ...] = (),
    tls_not_after: Callable[[], Mapping[str, float]] | None = None,
) -> App:
    """Build and start everything `settings` asks for. `keys` None: authentication off;
    `credentials` None: plaintext; `span_processors` are added to the tracer provider (tests
    pass an in-memory exporter's); `tls_not_after`: when the served certificates expire."""
    telemetry = build_telemetry(settings, log_writer=log_writer, span_processors=span_processors)
    metrics_http, metrics_port = None, None
    if telemetry.metrics is not None and settings.metrics_address is not None:
        telemetry.metrics.initialize(UNARY_METHODS)
        # The configured merchants' domain series, at zero (more appear after a SIGHUP reload).
        telemetry.metrics.initialize_merchants(
            keys.merchants() if keys is not None else (DEFAULT_MERCHANT,)
        )
        metrics_http, metrics_port = start_metrics_server(
            settings.metrics_address, telemetry.metrics.registry
        )
    clock = SystemClock()
    processor = SimulatedProcessor(slow_delay=settings.simulated_slow_seconds)
    pending = None
    store: Store | None = None
    repository: PaymentRepository
    if settings.store.kind == "memory":  # opens at once
        store = await open_store(settings, clock=clock)
        repository = observe_store(store, settings, telemetry)
    else:  # listen first (health NOT_SERVING), then connect: probes get an answer meanwhile
        pending = PendingRepository()
        repository = pending
    service = build_service(
        settings, telemetry=telemetry, clock=clock, repository=repository, processor=processor
    )
    limit = ConcurrencyLimit(settings.max_concurrent_rpcs)
    if telemetry.metrics is not None:
        telemetry.metrics.registry.register(
            LoadGauges(lambda: limit.in_flight, lambda: limit.rejected, limit.limit)
        )
    if telemetry.metrics is not None and tls_not_after is not None:
        register_certificate_expiry(telemetry.metrics.registry, tls_not_after)
    gate = ShutdownGate()
    interceptors = build_interceptors(telemetry, Authenticator(keys), limit, gate)
    server = await start_server(
        service,
        settings.grpc_address,
        interceptors,
        credentials,
        policy=ConnectionPolicy.from_settings(settings),
        gate=gate,
        serving=pending is None,
    )
    if pending is not None:
        log.info("store_connecting", store=settings.store.redacted, port=server.port)
        try:
            opened = await open_store(settings, clock=clock)
        except BaseException:
            await server.stop(0)
            raise
        store, repository = opened, observe_store(opened, settings, telemetry)
        pending.attach(repository)
        await server.serving()
    assert store is not None  # noqa: S101 - opened on both paths above
    log.info("store_opened", store=settings.store.redacted)
    recovery = build_recovery(
        settings, store, repository=repository, processor=processor, clock=clock
    )
    return App(settings, telemetry, store, service, server, recovery, metrics_http, metrics_port)
