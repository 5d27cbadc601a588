"""Store observability: a decorator for any `PaymentRepository` that emits one database CLIENT
span per operation and feeds a latency histogram; plus pool gauges for PostgreSQL.

Spans follow the OpenTelemetry database semantic conventions: name `{operation} {table}`,
`db.system.name` (sqlite | postgresql), `db.operation.name`, `db.collection.name` (the table),
`db.namespace` and `server.address`/`server.port` where they apply, and on failure `error.type`
with status ERROR. Never a parameter value (no keys, ids or amounts), and never an exception
message (a driver may quote values in one): only the exception's type.

Metrics (on an injected registry): `payments_store_operation_seconds{store,operation}`; for
a pool, `payments_store_pool_connections{store,state=idle|in_use}`,
`payments_store_pool_max_connections{store}` and `payments_store_pool_waiting{store}` (operations
waiting for a connection: the pool is the bottleneck); for SQLite's group commit,
`payments_store_transactions_total{store}` and `payments_store_transaction_operations_total{store}`
(operations / transactions is the mean batch size).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol, TypeVar

from opentelemetry.trace import SpanKind
from prometheus_client import Gauge, Histogram

from payments_service.observability.metrics import CallbackCounter

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from datetime import datetime

    from opentelemetry.util.types import AttributeValue
    from prometheus_client import CollectorRegistry

    from payments_service.domain.model import Outcome, Payment
    from payments_service.domain.ports import Claim, PaymentRepository
    from payments_service.observability.tracing import LeafSpans, ServiceTracerProvider

T = TypeVar("T")
TABLE = "payments"
OPERATIONS = ("claim", "get", "record", "purge_expired")
# Store calls are sub-millisecond (SQLite) to milliseconds (PostgreSQL over a network).
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class PoolStats(Protocol):
    def pool_size(self) -> int: ...
    def pool_idle(self) -> int: ...
    def pool_max_size(self) -> int: ...
    def pool_waiting(self) -> int: ...


class StoreMetrics:
    """The store's Prometheus metrics, registered once on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.operation_seconds = Histogram(
            "payments_store_operation_seconds",
            "Latency of payment store operations (seconds), errors included.",
            ("store", "operation"),
            buckets=STORE_BUCKETS,
            registry=registry,
        )
        self.pool_connections = Gauge(
            "payments_store_pool_connections",
            "Database connections open in the pool, by state.",
            ("store", "state"),
            registry=registry,
        )
        self.pool_max_connections = Gauge(
            "payments_store_pool_max_connections",
            "Largest number of connections the pool may open (PAYMENTS_STORE_POOL_SIZE).",
            ("store",),
            registry=registry,
        )
        self.pool_waiting = Gauge(
            "payments_store_pool_waiting",
            "Store operations waiting for a database connection (every one is lent out).",
            ("store",),
            registry=registry,
        )

    def watch_pool(self, store: str, pool: PoolStats) -> None:
        """Gauges read at scrape time from `pool`."""
        self.pool_connections.labels(store=store, state="idle").set_function(pool.pool_idle)
        self.pool_connections.labels(store=store, state="in_use").set_function(
            lambda: pool.pool_size() - pool.pool_idle()
        )
        self.pool_max_connections.labels(store=store).set_function(pool.pool_max_size)
        self.pool_waiting.labels(store=store).set_function(pool.pool_waiting)

    def watch_transactions(self, store: str, read: Callable[[], tuple[int, int]]) -> None:
        """Group-commit counters read at scrape time from `read` (transactions, operations)."""
        labels = {"store": store}
        self.registry.register(
            CallbackCounter(
                "payments_store_transactions",
                "Transactions the store committed; each carries one or more operations (group "
                "commit: one COMMIT, one fsync, for every operation queued meanwhile).",
                lambda: read()[0],
                labels,
            )
        )
        self.registry.register(
            CallbackCounter(
                "payments_store_transaction_operations",
                "Operations carried by committed transactions (divided by "
                "payments_store_transactions_total: the mean batch size).",
                lambda: read()[1],
                labels,
            )
        )


class ObservedRepository:
    """Wraps `inner`; behaviour unchanged, every operation spanned and timed.

    The spans are leaf spans (`ServiceTracerProvider.leaf_spans`): a store call has no child
    span, and its name and attributes are known before it runs."""

    def __init__(
        self,
        inner: PaymentRepository,
        *,
        system: str,
        tracer_provider: ServiceTracerProvider | None,
        metrics: StoreMetrics | None = None,
        namespace: str | None = None,
        server_address: str | None = None,
        server_port: int | None = None,
    ) -> None:
        self._inner = inner
        base: dict[str, AttributeValue] = {
            "db.system.name": system,
            "db.collection.name": TABLE,
        }
        if namespace:
            base["db.namespace"] = namespace
        if server_address:
            base["server.address"] = server_address
        if server_port is not None:
            base["server.port"] = server_port
        self._operations = {
            op: _Operation(
                None
                if tracer_provider is None
                else tracer_provider.leaf_spans(
                    f"{op} {TABLE}", SpanKind.CLIENT, {**base, "db.operation.name": op}
                ),
                None
                if metrics is None
                else metrics.operation_seconds.labels(store=system, operation=op),
            )
            for op in OPERATIONS
        }

    @property
    def inner(self) -> PaymentRepository:
        return self._inner

    async def _observe(self, operation: str, call: Awaitable[T]) -> T:
        observed = self._operations[operation]
        start_ns = time.time_ns()
        started = time.perf_counter_ns()
        try:
            result = await call
        except BaseException as exc:
            # Only the type: the message may quote a value (a key, an id).
            observed.finish(start_ns, started, type(exc).__qualname__)
            raise
        observed.finish(start_ns, started, None)
        return result

    async def claim(self, candidate: Payment) -> Claim:
        return await self._observe("claim", self._inner.claim(candidate))

    async def get(self, merchant_id: str, payment_id: str) -> Payment | None:
        return await self._observe("get", self._inner.get(merchant_id, payment_id))

    async def record(
        self,
        payment_id: str,
        *,
        at: datetime,
        outcome: Outcome | None = None,
        first_response: Outcome | None = None,
    ) -> Payment:
        return await self._observe(
            "record",
            self._inner.record(payment_id, at=at, outcome=outcome, first_response=first_response),
        )

    async def purge_expired(self, *, limit: int) -> int:
        return await self._observe("purge_expired", self._inner.purge_expired(limit=limit))


class _Operation:
    """One operation's span kind and latency histogram child (either may be off)."""

    __slots__ = ("_spans", "_timer")

    def __init__(self, spans: LeafSpans | None, timer: Histogram | None) -> None:
        self._spans = spans
        self._timer = timer

    def finish(self, start_ns: int, started: int, error_type: str | None) -> None:
        elapsed = time.perf_counter_ns() - started
        if self._spans is not None:
            self._spans.record(start_ns, start_ns + elapsed, error_type)
        if self._timer is not None:
            self._timer.observe(elapsed / 1e9)
