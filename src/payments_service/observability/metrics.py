"""Every Prometheus metric of the service, declared here.

- The call metrics follow grpc-ecosystem/go-grpc-middleware's Prometheus provider (names,
  labels, help texts and code spellings), so its dashboards and alerts work unchanged; the
  payment domain counters are ours and carry a `merchant` label (bounded: see `Metrics`). Label
  children are bound once per method and code, and once per merchant, so a call does no label
  lookups. `MetricsReporter` feeds them from each call's record.
- The store's operation latency (`StoreMetrics`), observed by the store decorator.
- Scrape-time values (`Sampled`): counts other code keeps as plain attributes (load shedding,
  store size, pool, group commit, store errors, health, key reloads, dropped log lines, refused
  scrapes), read when Prometheus scrapes.

Every metric is registered on an injected registry (tests build a fresh one).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Protocol

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    gc_collector,
    platform_collector,
    process_collector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from payments_service.config import cannot_listen
from payments_service.domain.errors import STORE_ERROR_KINDS
from payments_service.domain.model import PaymentStatus
from payments_service.observability.record import RATE_LIMIT_SCOPE, RATE_LIMIT_SCOPES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import Metric

    from payments_service.domain.ports import StoreStats
    from payments_service.observability.record import CallRecord


class ConcurrencyCounts(Protocol):
    """What the load-shedding gauges read (`transport.admission.ConcurrencyLimit`)."""

    limit: int
    in_flight: int
    rejected: int


class TrackedWindows(Protocol):
    """What the rate limiters' memory gauges read: how many keys they track and drop."""

    evicted: int

    def __len__(self) -> int: ...


class SpanDropCounts(Protocol):
    """What the span-drop counters read (`observability.span_drops.ExportQueue`)."""

    @property
    def queue_full(self) -> int: ...
    @property
    def export_failed(self) -> int: ...


class PoolStats(Protocol):
    """What the pool gauges read (the PostgreSQL store)."""

    def pool_size(self) -> int: ...
    def pool_idle(self) -> int: ...
    def pool_max_size(self) -> int: ...
    def pool_waiting(self) -> int: ...


# How Go's `codes.Code.String()` spells each code: the `grpc_code` label values of
# go-grpc-middleware's Prometheus provider, which existing dashboards and alerts expect.
GO_CODE_NAMES: dict[grpc.StatusCode, str] = {
    code: "".join(part.capitalize() for part in code.name.split("_")) for code in grpc.StatusCode
}
GO_CODE_NAMES[grpc.StatusCode.OK] = "OK"
GO_CODE_NAMES[grpc.StatusCode.CANCELLED] = "Canceled"

# prometheus.DefBuckets, the Go provider's default for the handling-time histogram, plus 0.3:
# the latency SLO's threshold (scripts/gen_alert_rules.py), which a burn-rate rule can count
# exactly only at a bucket boundary.
HANDLING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)
UNARY = "unary"
# The metric names other code reads (the benchmark's servers and scrapes). As prometheus_client
# names families: a counter's without `_total`, which it appends to the sample.
HANDLED = "grpc_server_handled"
HANDLING_SECONDS = "grpc_server_handling_seconds"
CODE_LABEL = "grpc_code"  # HANDLED's code label
HTTP_DURATION = "http_server_request_duration_seconds"
HTTP_STATUS_LABEL = "http_response_status_code"  # HTTP_DURATION's status label


@dataclass(frozen=True, slots=True)
class MethodMetrics:
    """The label children of one RPC method, bound once."""

    started: Counter
    handled: dict[grpc.StatusCode, Counter]
    handling_seconds: Histogram


@dataclass(frozen=True, slots=True)
class MerchantMetrics:
    """The domain counters of one merchant, bound once."""

    created: Counter
    replayed: Counter
    conflicts: Counter
    rejected: Counter
    settled: dict[PaymentStatus, Counter]
    rate_limited: dict[str, Counter]  # by scope


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        labels = ("grpc_type", "grpc_service", "grpc_method")
        self.started = Counter(
            "grpc_server_started",
            "Total number of RPCs started on the server.",
            labels,
            registry=registry,
        )
        self.handled = Counter(
            HANDLED,
            "Total number of RPCs completed on the server, regardless of success or failure.",
            (*labels, CODE_LABEL),
            registry=registry,
        )
        self.handling_seconds = Histogram(
            HANDLING_SECONDS,
            "Histogram of response latency (seconds) of gRPC that had been application-level "
            "handled by the server.",
            labels,
            buckets=HANDLING_BUCKETS,
            registry=registry,
        )
        # The domain counters carry `merchant`: allowed as a label only because the merchant set
        # is configured (the API keys file, or `default` alone), so it is bounded by the
        # operator, never by callers (an unknown key is refused before any of these counts).
        merchant = ("merchant",)
        self.payments_created = Counter(
            "payments_created",
            "Payments created (new idempotency keys), by merchant.",
            merchant,
            registry=registry,
        )
        self.payments_replayed = Counter(
            "payments_replayed",
            "RequestPayment calls answered from an earlier payment (same key, same payload), "
            "by merchant.",
            merchant,
            registry=registry,
        )
        self.idempotency_conflicts = Counter(
            "payments_idempotency_conflicts",
            "RequestPayment calls refused because the key was used with another payload, "
            "by merchant.",
            merchant,
            registry=registry,
        )
        self.validation_rejected = Counter(
            "payments_validation_rejected",
            "RequestPayment calls refused by validation (nothing stored), by merchant.",
            merchant,
            registry=registry,
        )
        self.payments_settled = Counter(
            "payments_settled",
            "Payments that reached a final status, by status and merchant.",
            ("status", *merchant),
            registry=registry,
        )
        self.rate_limited = Counter(
            "payments_rate_limited",
            "Calls refused RESOURCE_EXHAUSTED by a rate limit, by merchant and scope (merchant: "
            "its request rate; order: new payments for one order).",
            ("merchant", "scope"),
            registry=registry,
        )
        self._merchants: dict[str, MerchantMetrics] = {}
        self._methods: dict[str, MethodMetrics] = {}
        self.http = HttpMetrics(registry)

    def for_method(self, full_method: str) -> MethodMetrics:
        """Label children for `/package.Service/Method`, created (at zero) on first use."""
        bound = self._methods.get(full_method)
        if bound is None:
            service, method = full_method.lstrip("/").split("/", 1)
            names = {"grpc_type": UNARY, "grpc_service": service, "grpc_method": method}
            bound = MethodMetrics(
                started=self.started.labels(**names),
                handled={
                    code: self.handled.labels(**names, grpc_code=GO_CODE_NAMES[code])
                    for code in grpc.StatusCode
                },
                handling_seconds=self.handling_seconds.labels(**names),
            )
            self._methods[full_method] = bound
        return bound

    def for_merchant(self, merchant_id: str) -> MerchantMetrics:
        """The domain counters of one merchant, created (at zero) on first use and bound once."""
        bound = self._merchants.get(merchant_id)
        if bound is None:
            bound = MerchantMetrics(
                created=self.payments_created.labels(merchant=merchant_id),
                replayed=self.payments_replayed.labels(merchant=merchant_id),
                conflicts=self.idempotency_conflicts.labels(merchant=merchant_id),
                rejected=self.validation_rejected.labels(merchant=merchant_id),
                settled={
                    status: self.payments_settled.labels(status=status.value, merchant=merchant_id)
                    for status in PaymentStatus
                    if status.is_terminal
                },
                rate_limited={
                    scope: self.rate_limited.labels(merchant=merchant_id, scope=scope)
                    for scope in RATE_LIMIT_SCOPES
                },
            )
            self._merchants[merchant_id] = bound
        return bound

    def initialize_merchants(self, merchants: Iterable[str]) -> None:
        """Create the domain series of the configured merchants at zero, so a dashboard's
        `sum(...)` shows 0 rather than no data before the first payment."""
        for merchant_id in merchants:
            self.for_merchant(merchant_id)

    def initialize(self, methods: Iterable[str]) -> None:
        """Create every series of `methods` at zero, as go-grpc-middleware's InitializeMetrics
        does, so rates and alerts work before the first call."""
        for method in methods:
            self.for_method(method)


class MetricsReporter:
    """The go-grpc-middleware server metrics of one call, from its record: started when the
    call enters the handler, handled (by code) and its latency when it completes. The latency
    sample carries the trace id as an exemplar when the call was traced and sampled."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def call_started(self, record: CallRecord) -> None:
        self._metrics.for_method(record.method.full_method).started.inc()

    def call_finished(self, record: CallRecord) -> None:
        bound = self._metrics.for_method(record.method.full_method)
        bound.handled[record.code].inc()
        observe_duration(bound.handling_seconds, record)


def observe_duration(histogram: Histogram, record: CallRecord) -> None:
    """The call's duration, with its trace id as an exemplar when it was traced and sampled."""
    span = record.span
    if span is not None:
        context = span.get_span_context()
        if context.trace_flags.sampled:
            histogram.observe(record.duration, {"trace_id": format(context.trace_id, "032x")})
            return
    histogram.observe(record.duration)


class RateLimitReporter:
    """`payments_rate_limited_total{merchant, scope}` from each call's record, whichever
    transport made it: a call a rate limit refused carries the limit's scope in its signals."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def call_started(self, record: CallRecord) -> None:
        pass

    def call_finished(self, record: CallRecord) -> None:
        for name, value in record.signals:
            if name == RATE_LIMIT_SCOPE and record.merchant_id is not None:
                self._metrics.for_merchant(record.merchant_id).rate_limited[value].inc()


class HttpMetrics:
    """The JSON/HTTP transport's request latency, with OpenTelemetry's HTTP server labels:
    `http_server_request_duration_seconds{http_request_method, http_route,
    http_response_status_code}`. The gRPC-named metrics count gRPC calls only; the payment
    domain counters count payments whichever transport made them. Bounded: the method is a
    known one or `_OTHER`, the route a template of the route table or "" (none matched), and
    the status one the transport answers. Same buckets as `grpc_server_handling_seconds`, so
    the two transports' latencies compare bucket for bucket."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            HTTP_DURATION,
            "Duration of HTTP server requests (seconds), the JSON/HTTP transport's calls.",
            ("http_request_method", "http_route", HTTP_STATUS_LABEL),
            buckets=HANDLING_BUCKETS,
            registry=registry,
        )
        self._bound: dict[tuple[str, str, int], Histogram] = {}

    def series(self, method: str, route: str, status: int) -> Histogram:
        """The label child of one method, route and status, bound once."""
        key = (method, route, status)
        bound = self._bound.get(key)
        if bound is None:
            bound = self.duration.labels(method, route, str(status))
            self._bound[key] = bound
        return bound


class HttpMetricsReporter:
    """`http_server_request_duration_seconds` from each JSON/HTTP call's record, with the
    trace id as an exemplar when the call was traced and sampled (as `MetricsReporter`)."""

    def __init__(self, metrics: HttpMetrics) -> None:
        self._metrics = metrics

    def call_started(self, record: CallRecord) -> None:
        pass

    def call_finished(self, record: CallRecord) -> None:
        http = record.http
        if http is not None:
            observe_duration(self._metrics.series(http.method, http.route, http.status), record)


# Store calls are sub-millisecond (SQLite) to milliseconds (PostgreSQL over a network).
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class StoreMetrics:
    """The latency of every store operation (the store decorator, `adapters.stores.observed`,
    observes it): `payments_store_operation_seconds{store, operation}`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.operation_seconds = Histogram(
            "payments_store_operation_seconds",
            "Latency of payment store operations (seconds), errors included.",
            ("store", "operation"),
            buckets=STORE_BUCKETS,
            registry=registry,
        )


# Scrape-time values. Counts kept by code that must not depend on prometheus_client (the
# limiter, the stores, the log writer) are plain attributes, read when Prometheus scrapes: the
# hot path does no metric work. One mechanism serves all of them: `Sampled` declares a series
# and its reader, `register_sampled` registers a set of them as one collector.


@dataclass(frozen=True, slots=True)
class Sampled:
    """One series whose value is read at scrape time."""

    name: str  # a counter's without `_total`, as prometheus_client names families
    documentation: str
    kind: str  # "gauge" or "counter"
    read: Callable[[], float]
    labels: tuple[tuple[str, str], ...] = ()


class _SampledCollector(Collector):
    def __init__(self, series: Sequence[Sampled]) -> None:
        self._series = tuple(series)

    def collect(self) -> Iterator[Metric]:
        return self._families(read=True)

    def describe(self) -> Iterator[Metric]:
        """The families without values, so registering reads nothing."""
        return self._families(read=False)

    def _families(self, *, read: bool) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for series in self._series:
            family = families.get(series.name)
            if family is None:
                kind = GaugeMetricFamily if series.kind == "gauge" else CounterMetricFamily
                family = kind(
                    series.name, series.documentation, labels=[k for k, _ in series.labels]
                )
                families[series.name] = family
            if read:
                family.add_metric([v for _, v in series.labels], series.read())  # type: ignore[attr-defined]
        return iter(families.values())


def register_sampled(registry: CollectorRegistry, series: Sequence[Sampled]) -> None:
    """Register `series`, read at each scrape (never at registration)."""
    registry.register(_SampledCollector(series))


def load_series(limit: ConcurrencyCounts) -> list[Sampled]:
    """Load shedding (`PAYMENTS_MAX_CONCURRENT_RPCS`)."""
    return [
        Sampled(
            "payments_rpcs_in_flight",
            "Unary RPCs running now (health checks excluded), of PAYMENTS_MAX_CONCURRENT_RPCS.",
            "gauge",
            lambda: limit.in_flight,
        ),
        Sampled(
            "payments_rpcs_max_in_flight",
            "The concurrency limit (PAYMENTS_MAX_CONCURRENT_RPCS).",
            "gauge",
            lambda: limit.limit,
        ),
        Sampled(
            "payments_rpcs_shed",
            "RPCs refused with RESOURCE_EXHAUSTED because the concurrency limit was reached.",
            "counter",
            lambda: limit.rejected,
        ),
    ]


def store_size_series(stats: Callable[[], StoreStats]) -> list[Sampled]:
    """A bounded store's size (the memory store)."""
    return [
        Sampled(
            "payments_store_payments",
            "Payments held by the store (live, or expired and not yet evicted).",
            "gauge",
            lambda: stats().payments,
        ),
        Sampled(
            "payments_store_bytes",
            "Accounted size of the payments held, in bytes (see docs/memory-store.md).",
            "gauge",
            lambda: stats().bytes_used,
        ),
        Sampled(
            "payments_store_max_bytes",
            "The store's cap in bytes (PAYMENTS_MEMORY_STORE_MAX_MIB); 0 means none.",
            "gauge",
            lambda: stats().max_bytes,
        ),
        Sampled(
            "payments_store_rejected_full",
            "New payments refused with RESOURCE_EXHAUSTED because the store was full.",
            "counter",
            lambda: stats().rejected_full,
        ),
    ]


def pool_series(store: str, pool: PoolStats) -> list[Sampled]:
    """A connection pool's occupancy (PostgreSQL)."""
    labels = (("store", store),)
    connections = "Database connections open in the pool, by state."
    return [
        Sampled(
            "payments_store_pool_connections",
            connections,
            "gauge",
            pool.pool_idle,
            (*labels, ("state", "idle")),
        ),
        Sampled(
            "payments_store_pool_connections",
            connections,
            "gauge",
            lambda: pool.pool_size() - pool.pool_idle(),
            (*labels, ("state", "in_use")),
        ),
        Sampled(
            "payments_store_pool_max_connections",
            "Largest number of connections the pool may open (PAYMENTS_STORE_POOL_SIZE).",
            "gauge",
            pool.pool_max_size,
            labels,
        ),
        Sampled(
            "payments_store_pool_waiting",
            "Store operations waiting for a database connection (every one is lent out).",
            "gauge",
            pool.pool_waiting,
            labels,
        ),
    ]


def transaction_series(store: str, read: Callable[[], tuple[int, int]]) -> list[Sampled]:
    """Group commit (SQLite): transactions and the operations they carried."""
    labels = (("store", store),)
    return [
        Sampled(
            "payments_store_transactions",
            "Transactions the store committed; each carries one or more operations (group "
            "commit: one COMMIT, one fsync, for every operation queued meanwhile).",
            "counter",
            lambda: read()[0],
            labels,
        ),
        Sampled(
            "payments_store_transaction_operations",
            "Operations carried by committed transactions (divided by "
            "payments_store_transactions_total: the mean batch size).",
            "counter",
            lambda: read()[1],
            labels,
        ),
    ]


def http_malformed_series(count: Callable[[], int]) -> list[Sampled]:
    """Requests the JSON/HTTP listener's parser refused before any handler."""
    return [
        Sampled(
            "payments_http_requests_malformed",
            "HTTP requests refused with 400 by the parser before any handler (a malformed "
            "request line, header or body encoding); not in http_server_request_duration_seconds.",
            "counter",
            count,
        )
    ]


def store_error_series(errors: Mapping[str, int]) -> list[Sampled]:
    """Failed store operations by kind (the durable stores' decorator counts them)."""
    return [
        Sampled(
            "payments_store_errors",
            "Store operations that failed, by kind: unavailable (the store cannot be reached), "
            "full (no space), readonly (it refuses writes), other (anything else: answered "
            "INTERNAL).",
            "counter",
            partial(errors.__getitem__, kind),
            (("kind", kind),),
        )
        for kind in STORE_ERROR_KINDS
    ]


def settlement_series(oldest_pending_age: Callable[[], float], deadline: float) -> list[Sampled]:
    """Durable stores: how old the oldest PENDING payment is, next to the deadline by which
    crash recovery must have settled or failed it."""
    return [
        Sampled(
            "payments_pending_oldest_age_seconds",
            "Age of the oldest PENDING payment in the store (any replica's), as of the last "
            "crash-recovery round; 0 when none is PENDING.",
            "gauge",
            oldest_pending_age,
        ),
        Sampled(
            "payments_settlement_deadline_seconds",
            "PAYMENTS_SETTLEMENT_DEADLINE_SECONDS: past it crash recovery marks a PENDING "
            "payment FAILED.",
            "gauge",
            lambda: deadline,
        ),
    ]


def health_series(ready: Callable[[], bool]) -> list[Sampled]:
    """The readiness the health service reports."""
    return [
        Sampled(
            "payments_health_serving",
            "1 while grpc.health.v1 reports SERVING for payments.v1.PaymentService (readiness), "
            "0 while NOT_SERVING: starting, the store unreachable, or shutting down.",
            "gauge",
            lambda: 1.0 if ready() else 0.0,
        )
    ]


def api_key_series(reload_failures: Callable[[], int]) -> list[Sampled]:
    return [
        Sampled(
            "payments_api_keys_reload_failures",
            "API key reloads (SIGHUP) that failed and kept the previous keys.",
            "counter",
            reload_failures,
        )
    ]


def log_series(dropped: Callable[[], int]) -> list[Sampled]:
    return [
        Sampled(
            "payments_log_records_dropped",
            "Log records dropped because the log queue was full or stdout failed.",
            "counter",
            dropped,
        )
    ]


def order_window_series(windows: TrackedWindows) -> list[Sampled]:
    """The per-order limit's memory (PAYMENTS_ORDER_ATTEMPTS_PER_MINUTE)."""
    return [
        Sampled(
            "payments_rate_limit_order_windows",
            "Orders whose new payments of the last minute are tracked (of "
            "PAYMENTS_ORDER_WINDOWS_MAX).",
            "gauge",
            windows.__len__,
        ),
        Sampled(
            "payments_rate_limit_order_windows_evicted",
            "Order windows dropped, least recently used first, to stay within "
            "PAYMENTS_ORDER_WINDOWS_MAX.",
            "counter",
            lambda: windows.evicted,
        ),
    ]


def auth_failure_series(failures: TrackedWindows, throttled: Callable[[], int]) -> list[Sampled]:
    """Failed authentications per peer address (PAYMENTS_AUTH_FAILURES_PER_MINUTE)."""
    return [
        Sampled(
            "payments_auth_throttled",
            "Calls refused UNAUTHENTICATED at once, unexamined, because their peer address "
            "failed authentication too often.",
            "counter",
            throttled,
        ),
        Sampled(
            "payments_auth_failure_peers",
            "Peer addresses whose failed authentications are tracked (of PAYMENTS_AUTH_PEERS_MAX).",
            "gauge",
            failures.__len__,
        ),
        Sampled(
            "payments_auth_failure_peers_evicted",
            "Peer addresses dropped, least recently used first, to stay within "
            "PAYMENTS_AUTH_PEERS_MAX.",
            "counter",
            lambda: failures.evicted,
        ),
    ]


def span_drop_series(queue: SpanDropCounts | None) -> list[Sampled]:
    """Spans the OTLP export lost (`observability.span_drops`); 0 when nothing is exported, so
    rates and alerts work from the start."""
    help_text = (
        "Finished spans the OTLP export lost: queue_full (the export queue, "
        "OTEL_BSP_MAX_QUEUE_SIZE, was full) or export_failed (the exporter gave up on their "
        "batch)."
    )
    return [
        Sampled(
            "payments_spans_dropped",
            help_text,
            "counter",
            (lambda: 0) if queue is None else (lambda: queue.queue_full),
            (("reason", "queue_full"),),
        ),
        Sampled(
            "payments_spans_dropped",
            help_text,
            "counter",
            (lambda: 0) if queue is None else (lambda: queue.export_failed),
            (("reason", "export_failed"),),
        ),
    ]


def certificate_series(not_after: Callable[[], Mapping[str, float]]) -> list[Sampled]:
    """When the served TLS certificates expire (`security.tls.ServerTls.not_after`, re-read on
    SIGHUP): one series per certificate the server loaded (server; client_ca under mTLS)."""
    help_text = (
        "When the served TLS certificates expire (the earliest notAfter of the file, Unix "
        "time): server = PAYMENTS_TLS_CERT_FILE, client_ca = PAYMENTS_TLS_CLIENT_CA_FILE. "
        "Re-read on SIGHUP."
    )
    return [
        Sampled(
            "payments_tls_certificate_not_after_timestamp_seconds",
            help_text,
            "gauge",
            lambda name=name: not_after()[name],  # type: ignore[misc]
            (("certificate", name),),
        )
        for name in sorted(not_after())
    ]


def new_registry() -> CollectorRegistry:
    """A registry with the default process, platform and GC collectors."""
    registry = CollectorRegistry(auto_describe=True)
    process_collector.ProcessCollector(registry=registry)
    platform_collector.PlatformCollector(registry=registry)
    gc_collector.GCCollector(registry=registry)
    return registry


def start_metrics_server(
    address: str, registry: CollectorRegistry, *, workers: int, timeout: float
) -> tuple[WSGIServer, int]:
    """Serve `/metrics` (text or OpenMetrics, by the scraper's Accept header) on `address`,
    with at most `workers` connections at once and a `timeout` on reads (`metrics_http`).

    Returns the server (call `shutdown()` to stop it) and the bound port (for port 0).
    """
    from payments_service.observability.metrics_http import serve_metrics  # noqa: PLC0415

    host, _, port = address.rpartition(":")
    bind = host.strip("[]") or "0.0.0.0"  # noqa: S104 - ":9464" means every interface
    try:
        server = serve_metrics(bind, int(port), registry, workers=workers, timeout=timeout)
    except OSError as exc:  # in use, or not an address of this host
        raise cannot_listen(
            "metrics_address", address, exc.strerror or type(exc).__name__
        ) from None
    register_sampled(
        registry,
        [
            Sampled(
                "payments_metrics_http_refused",
                "Connections to /metrics closed at once because every worker was busy.",
                "counter",
                lambda: server.refused,
            )
        ],
    )
    return server, int(server.server_port)
