"""Store observability: a decorator for any `PaymentRepository` that emits one database CLIENT
span per operation and feeds a latency histogram; plus pool gauges for PostgreSQL.

Spans follow the OpenTelemetry database semantic conventions: name `{operation} {table}`,
`db.system.name` (sqlite | postgresql), `db.operation.name`, `db.collection.name` (the table),
`db.namespace` and `server.address`/`server.port` where they apply, and on failure `error.type`
with status ERROR. Never a parameter value (no keys, ids or amounts), and never an exception
message (a driver may quote values in one): only the exception's type.

Metrics (on an injected registry): `payments_store_operation_seconds{store,operation}` and, for
a pool, `payments_store_pool_connections{store,state=idle|in_use}` and
`payments_store_pool_max_connections{store}`.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Gauge, Histogram

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from opentelemetry.trace import Tracer
    from opentelemetry.util.types import AttributeValue
    from prometheus_client import CollectorRegistry

    from payments_service.domain.model import Outcome, Payment
    from payments_service.domain.ports import Claim, PaymentRepository

TABLE = "payments"
OPERATIONS = ("claim", "get", "record", "purge_expired")
# Store calls are sub-millisecond (SQLite) to milliseconds (PostgreSQL over a network).
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class PoolStats(Protocol):
    def pool_size(self) -> int: ...
    def pool_idle(self) -> int: ...
    def pool_max_size(self) -> int: ...


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

    def watch_pool(self, store: str, pool: PoolStats) -> None:
        """Gauges read at scrape time from `pool`."""
        self.pool_connections.labels(store=store, state="idle").set_function(pool.pool_idle)
        self.pool_connections.labels(store=store, state="in_use").set_function(
            lambda: pool.pool_size() - pool.pool_idle()
        )
        self.pool_max_connections.labels(store=store).set_function(pool.pool_max_size)


class ObservedRepository:
    """Wraps `inner`; behaviour unchanged, every operation spanned and timed."""

    def __init__(
        self,
        inner: PaymentRepository,
        *,
        system: str,
        tracer: Tracer,
        metrics: StoreMetrics | None = None,
        namespace: str | None = None,
        server_address: str | None = None,
        server_port: int | None = None,
    ) -> None:
        self._inner = inner
        self._tracer = tracer
        self._system = system
        self._timers = (
            {op: metrics.operation_seconds.labels(store=system, operation=op) for op in OPERATIONS}
            if metrics is not None
            else {}
        )
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
        self._attributes = {op: {**base, "db.operation.name": op} for op in OPERATIONS}

    @property
    def inner(self) -> PaymentRepository:
        return self._inner

    @contextmanager
    def _observe(self, operation: str) -> Iterator[None]:
        started = time.perf_counter()
        with self._tracer.start_span(
            f"{operation} {TABLE}",
            kind=SpanKind.CLIENT,
            attributes=self._attributes[operation],
            record_exception=False,  # its message may quote a value; the type is enough
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except BaseException as exc:
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(Status(StatusCode.ERROR))
                raise
            finally:
                timer = self._timers.get(operation)
                if timer is not None:
                    timer.observe(time.perf_counter() - started)

    async def claim(self, candidate: Payment) -> Claim:
        with self._observe("claim"):
            return await self._inner.claim(candidate)

    async def get(self, merchant_id: str, payment_id: str) -> Payment | None:
        with self._observe("get"):
            return await self._inner.get(merchant_id, payment_id)

    async def record(
        self,
        payment_id: str,
        *,
        at: datetime,
        outcome: Outcome | None = None,
        first_response: Outcome | None = None,
    ) -> Payment:
        with self._observe("record"):
            return await self._inner.record(
                payment_id, at=at, outcome=outcome, first_response=first_response
            )

    async def purge_expired(self, *, limit: int) -> int:
        with self._observe("purge_expired"):
            return await self._inner.purge_expired(limit=limit)
