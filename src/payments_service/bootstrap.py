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
from payments_service.adapters.stores.health import StoreHealth
from payments_service.adapters.stores.memory import InMemoryPaymentRepository
from payments_service.adapters.stores.observed import ObservedRepository
from payments_service.adapters.stores.pending import PendingRepository
from payments_service.adapters.system import RandomPaymentIds, SystemClock
from payments_service.application.expiry import ExpirySweeper
from payments_service.application.order_limit import OrderAttempts
from payments_service.application.recovery import SettlementRecovery
from payments_service.application.service import PaymentService
from payments_service.observability.metrics import (
    StoreMetrics,
    api_key_series,
    auth_failure_series,
    certificate_series,
    health_series,
    http_malformed_series,
    load_series,
    order_window_series,
    pool_series,
    register_sampled,
    settlement_series,
    start_metrics_server,
    store_error_series,
    store_size_series,
    transaction_series,
)
from payments_service.observability.observer import TelemetryObserver
from payments_service.observability.telemetry import Telemetry, build_telemetry
from payments_service.observability.tracing import library_server_interceptor
from payments_service.security.authenticator import DEFAULT_MERCHANT, Authenticator
from payments_service.security.throttle import Buckets
from payments_service.transport.admission import ConcurrencyLimit, MerchantRateLimit, ShutdownGate
from payments_service.transport.grpc_server import UNARY_METHODS, start_server
from payments_service.transport.http.server import start_http_server
from payments_service.transport.interceptors.auth import AuthInterceptor
from payments_service.transport.interceptors.observation import (
    HEALTH_CHECK_PREFIXES,
    ObservationInterceptor,
)

log = structlog.get_logger(__name__)

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Mapping
    from wsgiref.simple_server import WSGIServer

    import grpc
    from opentelemetry.sdk.trace import SpanProcessor
    from prometheus_client import CollectorRegistry

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
    from payments_service.transport.http.server import HttpListener


def build_processor(settings: Settings) -> PaymentProcessor:
    """The payment processor adapter: the simulated one, an in-process function call that
    makes no CLIENT span (its outcome is the SERVER span's `payment.status`). A remote
    processor adapter would make one CLIENT span per charge (ARCHITECTURE.md, "Span tree")."""
    return SimulatedProcessor(slow_delay=settings.simulated_slow_seconds)


def observe_store(
    store: Store,
    settings: Settings,
    telemetry: Telemetry,
    health: StoreHealth | None = None,
) -> PaymentRepository:
    """The store's repository as the service uses it: for durable stores, wrapped for database
    spans, latency and failures (recovery included), a failure to reach the store handed to
    `health`; the in-memory store does no I/O and gets no spans, only its size gauges.
    Registers the store's scrape-time metrics."""
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
    observed = ObservedRepository(
        store.repository,
        stalled=store.stalled,
        system=store.system,
        tracer_provider=telemetry.tracer_provider,
        metrics=None if registry is None else StoreMetrics(registry),
        namespace=location.database or location.path,
        server_address=location.host or None,
        server_port=location.port,
        on_unavailable=None if health is None else health.suspect,
    )
    if registry is not None:
        register_sampled(registry, store_error_series(observed.errors))
    return observed


def build_service(
    settings: Settings,
    *,
    telemetry: Telemetry | None = None,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    repository: PaymentRepository | None = None,
    processor: PaymentProcessor | None = None,
    order_attempts: OrderAttempts | None = None,
) -> PaymentService:
    """The application service. Ports not given are the defaults `build_app` uses: the memory
    store, the simulated processor, the system clock, random ids and the per-order limit of
    the settings (tests pass their own)."""
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
        order_attempts=build_order_attempts(settings) if order_attempts is None else order_attempts,
    )


def build_order_attempts(settings: Settings) -> OrderAttempts | None:
    """The per-order limit on new payments, or None when it is off."""
    if settings.order_attempts_per_minute is None:
        return None
    return OrderAttempts(
        per_window=settings.order_attempts_per_minute, max_windows=settings.order_windows_max
    )


def build_rate_limit(settings: Settings) -> MerchantRateLimit | None:
    """The per-merchant rate limit, or None when it is off. Its buckets are capped like the
    others, though the keys file already bounds the merchants."""
    if settings.rate_limit_rps is None:
        return None
    return MerchantRateLimit(
        Buckets(
            rate=settings.rate_limit_rps,
            burst=settings.rate_limit_burst,
            max_keys=settings.auth_peers_max,
        )
    )


def build_authenticator(settings: Settings, keys: KeyRing | None) -> Authenticator:
    """The authenticator of `keys` (None: authentication off), with the per-address limit on
    failed authentications of the settings."""
    per_minute = settings.auth_failures_per_minute
    failures = None
    if per_minute is not None:
        failures = Buckets(rate=per_minute / 60, burst=per_minute, max_keys=settings.auth_peers_max)
    return Authenticator(keys, failures=failures)


def build_interceptors(
    telemetry: Telemetry | None = None,
    authenticator: Authenticator | None = None,
    limit: ConcurrencyLimit | None = None,
    gate: ShutdownGate | None = None,
    rate_limit: MerchantRateLimit | None = None,
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
       `default` merchant with authentication off, then the merchant's `rate_limit`; inside the
       observation point, so a refused key (UNAUTHENTICATED) or a limited caller
       (RESOURCE_EXHAUSTED) is answered through the one error table and counted, logged and
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
    chain.append(AuthInterceptor(authenticator or Authenticator(None), rate_limit))
    return chain


@dataclass(slots=True)
class Background:
    """The work a running app does besides calls: crash recovery (durable stores), the expiry
    sweeper, and the store's health check while the store is suspected unreachable. `stop`
    cancels them and waits for them."""

    sweeper: ExpirySweeper
    recovery_interval: float  # PAYMENTS_RECOVERY_INTERVAL_SECONDS
    recovery: SettlementRecovery | None = None
    health: StoreHealth | None = None  # runs only after a failure to reach the store
    _recovering: asyncio.Task[None] | None = field(default=None, init=False)

    def start(self) -> None:
        self.sweeper.start()
        if self.recovery is not None:
            self._recovering = asyncio.get_running_loop().create_task(
                self.recovery.run(self.recovery_interval)
            )

    async def stop(self) -> None:
        await self.sweeper.stop()
        if self.health is not None:
            await self.health.close()
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
    http: HttpListener | None = None  # the JSON/HTTP listener, unless PAYMENTS_HTTP_ADDRESS=off


async def build_app(
    settings: Settings,
    *,
    log_writer: LogWriter | None = None,
    keys: KeyRing | None = None,
    credentials: grpc.ServerCredentials | None = None,
    ssl_context: ssl.SSLContext | None = None,
    span_processors: tuple[SpanProcessor, ...] = (),
    tls_not_after: Callable[[], Mapping[str, float]] | None = None,
) -> App:
    """Build and start everything `settings` asks for. `keys` None: authentication off;
    `credentials` (gRPC) and `ssl_context` (JSON/HTTP, the same files) None: plaintext;
    `span_processors` are added to the tracer provider (tests pass an in-memory exporter's);
    `tls_not_after`: when the served certificates expire. The background work is built, not
    started.

    The JSON/HTTP listener shares the service, the authenticator, the rate limits, the
    concurrency limit and the shutdown gate with gRPC; it starts listening once the store is
    open (until then gRPC health says NOT_SERVING; an HTTP client is refused a connection)."""
    telemetry = build_telemetry(settings, log_writer=log_writer, span_processors=span_processors)
    limit = ConcurrencyLimit(settings.max_concurrent_rpcs)
    metrics_http, metrics_port = _start_metrics(settings, telemetry, keys, limit)
    clock = SystemClock()
    processor = build_processor(settings)
    pending = PendingRepository()  # until the store is open: UNAVAILABLE, health NOT_SERVING
    order_attempts = build_order_attempts(settings)
    authenticator = build_authenticator(settings, keys)
    rate_limit = build_rate_limit(settings)
    service = build_service(
        settings,
        telemetry=telemetry,
        clock=clock,
        repository=pending,
        processor=processor,
        order_attempts=order_attempts,
    )
    if telemetry.metrics is not None:
        _register_limits(telemetry.metrics.registry, order_attempts, authenticator, tls_not_after)
    gate = ShutdownGate()
    server = await start_server(
        service,
        settings.grpc_address,
        build_interceptors(telemetry, authenticator, limit, gate, rate_limit),
        credentials,
        settings=settings,
        gate=gate,
        serving=False,
    )
    if telemetry.metrics is not None:
        register_sampled(telemetry.metrics.registry, health_series(lambda: server.ready))
    if settings.store.kind != "memory":
        log.info("store_connecting", store=settings.store.redacted, port=server.port)
    try:
        store = await open_store(settings, clock=clock)
    except BaseException:
        await server.stop(0)
        raise
    health = None
    if store.ping is not None:
        health = StoreHealth(
            store.ping,
            on_change=server.set_store_reachable,
            timeout=settings.store_timeout_seconds,
        )
    repository = observe_store(store, settings, telemetry, health)
    pending.attach(repository)
    http = None
    if settings.http_address is not None:
        try:
            http = await start_http_server(
                service,
                settings.http_address,
                authenticator,
                settings=settings,
                telemetry=telemetry,
                limit=limit,
                gate=gate,
                rate_limit=rate_limit,
                ssl_context=ssl_context,
            )
        except BaseException:
            await server.stop(0)
            await store.close()
            raise
        if telemetry.metrics is not None:
            malformed = http.malformed
            register_sampled(
                telemetry.metrics.registry, http_malformed_series(lambda: malformed.count)
            )
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
        if telemetry.metrics is not None:
            register_sampled(
                telemetry.metrics.registry,
                settlement_series(
                    recovery.oldest_pending_age, settings.settlement_deadline_seconds
                ),
            )
    background = Background(
        ExpirySweeper(service),
        recovery_interval=settings.recovery_interval_seconds,
        recovery=recovery,
        health=health,
    )
    return App(
        settings, telemetry, store, service, server, background, metrics_http, metrics_port, http
    )


def _start_metrics(
    settings: Settings, telemetry: Telemetry, keys: KeyRing | None, limit: ConcurrencyLimit
) -> tuple[WSGIServer | None, int | None]:
    """Every call series at zero, the load gauges, and `/metrics` served; (None, None) when
    metrics are off."""
    if telemetry.metrics is None or settings.metrics_address is None:
        return None, None
    telemetry.metrics.initialize(UNARY_METHODS)
    # The configured merchants' domain series, at zero (more appear after a SIGHUP reload).
    telemetry.metrics.initialize_merchants(
        keys.merchants() if keys is not None else (DEFAULT_MERCHANT,)
    )
    register_sampled(telemetry.metrics.registry, load_series(limit))
    if keys is not None:
        register_sampled(telemetry.metrics.registry, api_key_series(lambda: keys.reload_failures))
    return start_metrics_server(
        settings.metrics_address,
        telemetry.metrics.registry,
        workers=settings.metrics_max_connections,
        timeout=settings.metrics_read_timeout_seconds,
    )


def _register_limits(
    registry: CollectorRegistry,
    order_attempts: OrderAttempts | None,
    authenticator: Authenticator,
    tls_not_after: Callable[[], Mapping[str, float]] | None,
) -> None:
    """The scrape-time series of the limiters' memory and of the served certificate."""
    if order_attempts is not None:
        register_sampled(registry, order_window_series(order_attempts))
    if authenticator.failures is not None:
        register_sampled(
            registry, auth_failure_series(authenticator.failures, lambda: authenticator.throttled)
        )
    if tls_not_after is not None:
        register_sampled(registry, certificate_series(tls_not_after))
