"""Composition root: the one place that chooses adapters and wires them together.

`build_app` builds everything a running service is made of, each adapter once: telemetry and
the metrics server, the processor, the store (a durable store is opened after the server
listens, so probes get NOT_SERVING meanwhile), the application service, the background work
(crash recovery, the expiry sweeper), the interceptor chain and the started gRPC server. The
entry point (`main.serve`) only runs the lifecycle. `build_service` and `build_interceptors`
are the same wiring for tests, which pass their own ports.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog

from payments_service.adapters.simulated_processor import SimulatedProcessor
from payments_service.adapters.stores.factory import Store, memory_store, open_store
from payments_service.adapters.stores.memory import InMemoryPaymentRepository
from payments_service.adapters.stores.observed import ObservedRepository
from payments_service.adapters.stores.pending import PendingRepository
from payments_service.adapters.system import RandomPaymentIds, SystemClock
from payments_service.application.expiry import ExpirySweeper
from payments_service.application.recovery import SettlementRecovery
from payments_service.application.service import PaymentService
from payments_service.observability.metrics import (
    StoreMetrics,
    load_series,
    pool_series,
    register_sampled,
    start_metrics_server,
    store_size_series,
    transaction_series,
)
from payments_service.observability.observer import TelemetryObserver
from payments_service.observability.telemetry import Telemetry, build_telemetry
from payments_service.observability.tracing import library_server_interceptor
from payments_service.security.authenticator import DEFAULT_MERCHANT, Authenticator
from payments_service.transport.admission import ConcurrencyLimit, ShutdownGate
from payments_service.transport.grpc_server import UNARY_METHODS, start_server
from payments_service.transport.interceptors.auth import AuthInterceptor
from payments_service.transport.interceptors.observation import (
    HEALTH_CHECK_PREFIXES,
    ObservationInterceptor,
)

log = structlog.get_logger(__name__)

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    import grpc
    from opentelemetry.sdk.trace import SpanProcessor

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


def build_processor(settings: Settings) -> PaymentProcessor:
    """The payment processor adapter: the simulated one, an in-process function call that
    makes no CLIENT span (its outcome is the SERVER span's `payment.status`). A remote
    processor adapter would make one CLIENT span per charge (ARCHITECTURE.md, "Span tree")."""
    return SimulatedProcessor(slow_delay=settings.simulated_slow_seconds)


def observe_store(store: Store, settings: Settings, telemetry: Telemetry) -> PaymentRepository:
    """The store's repository as the service uses it: for durable stores, wrapped for database
    spans and latency (recovery included); the in-memory store does no I/O and gets no spans,
    only its size gauges. Registers the store's scrape-time metrics."""
    registry = None if telemetry.metrics is None else telemetry.metrics.registry
    if store.system == "memory":
        if registry is not None and isinstance(store.repository, InMemoryPaymentRepository):
            register_sampled(registry, store_size_series(store.repository.stats))
        return store.repository
    if registry is not None:
        if store.pool is not None:
            register_sampled(registry, pool_series(store.system, store.pool))
        if store.transactions is not None:
            register_sampled(registry, transaction_series(store.system, store.transactions))
    location = settings.store
    return ObservedRepository(
        store.repository,
        stalled=store.stalled,
        system=store.system,
        tracer_provider=telemetry.tracer_provider,
        metrics=None if registry is None else StoreMetrics(registry),
        namespace=location.database or location.path,
        server_address=location.host or None,
        server_port=location.port,
    )


def build_service(
    settings: Settings,
    *,
    telemetry: Telemetry | None = None,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    repository: PaymentRepository | None = None,
    processor: PaymentProcessor | None = None,
) -> PaymentService:
    """The application service. Ports not given are the defaults `build_app` uses: the memory
    store, the simulated processor, the system clock and random ids (tests pass their own)."""
    telemetry = telemetry or Telemetry()
    clock = SystemClock() if clock is None else clock
    if repository is None:  # `is None`, not `or`: an empty repository is falsy (__len__)
        repository = observe_store(memory_store(settings, clock=clock), settings, telemetry)
    return PaymentService(
        repository=repository,
        processor=build_processor(settings) if processor is None else processor,
        clock=clock,
        ids=RandomPaymentIds() if ids is None else ids,
        processor_timeout=settings.processor_timeout_seconds,
        settlement_timeout=settings.settlement_timeout_seconds,
        observer=TelemetryObserver(telemetry.metrics),
        tracer=telemetry.tracer(),
        simulation=settings.simulation,
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
       reporters, so nothing inside it can bypass the error mapping; right inside the
       library, so its span reporter finishes the library's span. It also sheds calls past
       `limit` (RESOURCE_EXHAUSTED), and parks then refuses (UNAVAILABLE) new calls once
       `gate` closes at shutdown, so those calls are counted, logged and traced too.
    3. AuthInterceptor: the caller's principal (`security.principal`) from its API key, or the
       `default` merchant with authentication off; inside the observation point, so a refused
       key becomes UNAUTHENTICATED through the one error table and is counted, logged and
       traced like any call.
    """
    telemetry = telemetry or Telemetry()
    every_call, health_checks = telemetry.reporters()
    chain: list[grpc.aio.ServerInterceptor[Any, Any]] = []
    if telemetry.tracer_provider is not None:
        untraced = () if telemetry.observe_health_checks else HEALTH_CHECK_PREFIXES
        chain.append(library_server_interceptor(telemetry.tracer_provider, untraced))
    chain.append(
        ObservationInterceptor(every_call, health_reporters=health_checks, limit=limit, gate=gate)
    )
    chain.append(AuthInterceptor(authenticator or Authenticator(None)))
    return chain


@dataclass(slots=True)
class Background:
    """The work a running app does besides calls: crash recovery (durable stores) and the
    expiry sweeper. `stop` cancels both and waits for them."""

    sweeper: ExpirySweeper
    recovery: SettlementRecovery | None = None
    recovery_interval: float = 5.0
    _recovering: asyncio.Task[None] | None = field(default=None, init=False)

    def start(self) -> None:
        self.sweeper.start()
        if self.recovery is not None:
            self._recovering = asyncio.get_running_loop().create_task(
                self.recovery.run(self.recovery_interval)
            )

    async def stop(self) -> None:
        await self.sweeper.stop()
        recovering, self._recovering = self._recovering, None
        if recovering is not None:
            recovering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recovering


@dataclass(slots=True)
class App:
    """A started service: what the lifecycle needs to run it and stop it."""

    settings: Settings
    telemetry: Telemetry
    store: Store
    service: PaymentService
    server: RunningServer
    background: Background
    metrics_http: WSGIServer | None = None
    metrics_port: int | None = None


async def build_app(
    settings: Settings,
    *,
    log_writer: LogWriter | None = None,
    keys: KeyRing | None = None,
    credentials: grpc.ServerCredentials | None = None,
    span_processors: tuple[SpanProcessor, ...] = (),
) -> App:
    """Build and start everything `settings` asks for. `keys` None: authentication off;
    `credentials` None: plaintext; `span_processors` are added to the tracer provider (tests
    pass an in-memory exporter's). The background work is built, not started."""
    telemetry = build_telemetry(settings, log_writer=log_writer, span_processors=span_processors)
    metrics_http, metrics_port = None, None
    limit = ConcurrencyLimit(settings.max_concurrent_rpcs)
    if telemetry.metrics is not None and settings.metrics_address is not None:
        telemetry.metrics.initialize(UNARY_METHODS)
        # The configured merchants' domain series, at zero (more appear after a SIGHUP reload).
        telemetry.metrics.initialize_merchants(
            keys.merchants() if keys is not None else (DEFAULT_MERCHANT,)
        )
        register_sampled(telemetry.metrics.registry, load_series(limit))
        metrics_http, metrics_port = start_metrics_server(
            settings.metrics_address,
            telemetry.metrics.registry,
            workers=settings.metrics_max_connections,
            timeout=settings.metrics_read_timeout_seconds,
        )
    clock = SystemClock()
    processor = build_processor(settings)
    pending = PendingRepository()  # until the store is open: UNAVAILABLE, health NOT_SERVING
    service = build_service(
        settings, telemetry=telemetry, clock=clock, repository=pending, processor=processor
    )
    gate = ShutdownGate()
    server = await start_server(
        service,
        settings.grpc_address,
        build_interceptors(telemetry, Authenticator(keys), limit, gate),
        credentials,
        settings=settings,
        gate=gate,
        serving=False,
    )
    if settings.store.kind != "memory":
        log.info("store_connecting", store=settings.store.redacted, port=server.port)
    try:
        store = await open_store(settings, clock=clock)
    except BaseException:
        await server.stop(0)
        raise
    repository = observe_store(store, settings, telemetry)
    pending.attach(repository)
    await server.serving()
    log.info("store_opened", store=settings.store.redacted)
    recovery = None
    if store.stalled is not None and isinstance(repository, ObservedRepository):
        recovery = SettlementRecovery(
            stalled=repository,
            repository=repository,
            processor=processor,
            clock=clock,
            deadline=timedelta(seconds=settings.settlement_deadline_seconds),
            charge_timeout=settings.settlement_timeout_seconds,
        )
    background = Background(
        ExpirySweeper(service), recovery, recovery_interval=settings.recovery_interval_seconds
    )
    return App(settings, telemetry, store, service, server, background, metrics_http, metrics_port)
