"""Prometheus metrics: go-grpc-middleware's server metrics plus payment domain metrics.

Names, labels, help texts and code spellings follow grpc-ecosystem/go-grpc-middleware's
Prometheus provider, so its dashboards and alerts work unchanged (no label added to them). The
payment domain counters are ours and carry a `merchant` label (bounded: see `Metrics`). Every
metric is registered on an injected registry (tests build a fresh one); label children are
bound once per method and code, and once per merchant, so a call does no label lookups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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

from payments_service.calls import GO_CODE_NAMES
from payments_service.domain.model import PaymentStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import Metric

    from payments_service.calls import CallRecord

# prometheus.DefBuckets, the Go provider's default for the handling-time histogram, plus 0.3:
# the latency SLO's threshold (scripts/gen_alert_rules.py), which a burn-rate rule can count
# exactly only at a bucket boundary.
HANDLING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)
UNARY = "unary"


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
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            (*labels, "grpc_code"),
            registry=registry,
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds",
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
        self._merchants: dict[str, MerchantMetrics] = {}
        self._methods: dict[str, MethodMetrics] = {}

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
        span = record.span
        if span is not None:
            context = span.get_span_context()
            if context.trace_flags.sampled:
                exemplar = {"trace_id": format(context.trace_id, "032x")}
                bound.handling_seconds.observe(record.duration, exemplar)
                return
        bound.handling_seconds.observe(record.duration)


class CallbackCounter(Collector):
    """A counter whose value is read from a callable at scrape time: for counts kept by code
    that must not depend on prometheus_client on its hot path (the log writer's drops, the
    SQLite store's transactions). `labels`: the one labelled sample's label values."""

    def __init__(
        self,
        name: str,
        documentation: str,
        read: Callable[[], float],
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._read = read
        self._labels = dict(labels or {})

    def collect(self) -> Iterator[Metric]:
        if not self._labels:
            yield CounterMetricFamily(self._name, self._documentation, value=self._read())
            return
        family = CounterMetricFamily(self._name, self._documentation, labels=tuple(self._labels))
        family.add_metric(tuple(self._labels.values()), self._read())
        yield family


IN_FLIGHT_HELP = "Unary RPCs running now (health checks excluded), of PAYMENTS_MAX_CONCURRENT_RPCS."
LIMIT_HELP = "The concurrency limit (PAYMENTS_MAX_CONCURRENT_RPCS)."
SHED_HELP = "RPCs refused with RESOURCE_EXHAUSTED because the concurrency limit was reached."


class LoadGauges(Collector):
    """The load-shedding counts, read at scrape time from the limiter's plain integers."""

    def __init__(self, in_flight: Callable[[], int], rejected: Callable[[], int], limit: int):
        self._in_flight = in_flight
        self._rejected = rejected
        self._limit = limit

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("payments_rpcs_in_flight", IN_FLIGHT_HELP, value=self._in_flight())
        yield GaugeMetricFamily("payments_rpcs_max_in_flight", LIMIT_HELP, value=self._limit)
        yield CounterMetricFamily("payments_rpcs_shed", SHED_HELP, value=self._rejected())

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("payments_rpcs_in_flight", IN_FLIGHT_HELP)
        yield GaugeMetricFamily("payments_rpcs_max_in_flight", LIMIT_HELP)
        yield CounterMetricFamily("payments_rpcs_shed", SHED_HELP)


def new_registry() -> CollectorRegistry:
    """A registry with the default process, platform and GC collectors."""
    registry = CollectorRegistry(auto_describe=True)
    process_collector.ProcessCollector(registry=registry)
    platform_collector.PlatformCollector(registry=registry)
    gc_collector.GCCollector(registry=registry)
    return registry


def start_metrics_server(address: str, registry: CollectorRegistry) -> tuple[WSGIServer, int]:
    """Serve `/metrics` (text or OpenMetrics, by the scraper's Accept header) on `address`,
    with bounded threads and a read timeout (`metrics_http`).

    Returns the server (call `shutdown()` to stop it) and the bound port (for port 0).
    """
    from payments_service.observability.metrics_http import serve_metrics  # noqa: PLC0415

    host, _, port = address.rpartition(":")
    bind = host.strip("[]") or "0.0.0.0"  # noqa: S104 - ":9464" means every interface
    server = serve_metrics(bind, int(port), registry)
    registry.register(
        CallbackCounter(
            "payments_metrics_http_refused",
            "Connections to /metrics closed at once because every worker was busy.",
            lambda: server.refused,
        )
    )
    return server, int(server.server_port)
