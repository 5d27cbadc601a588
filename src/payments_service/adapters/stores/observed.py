"""Store observability: a decorator for any `PaymentRepository` (and a durable store's crash
recovery, `StalledSettlements`) that emits one database CLIENT span per operation and feeds the
latency histogram (`observability.metrics.StoreMetrics`).

Spans follow the OpenTelemetry database semantic conventions: name `{operation} {table}`,
`db.system.name` (sqlite | postgresql), `db.operation.name`, `db.collection.name` (the table),
`db.namespace` and `server.address`/`server.port` where they apply, and on failure `error.type`
with status ERROR. Never a parameter value (no keys, ids or amounts), and never an exception
message (a driver may quote values in one): only the exception's type.

Failed operations are counted by kind in `errors` (`payments_store_errors_total{kind}`: the
store errors' own kind, `other` for anything else; a payment not found is an answer, not a
failure), and one that failed because the store could not be reached is handed to
`on_unavailable` (the store's health check, `health.StoreHealth.suspect`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TypeVar

from opentelemetry.trace import SpanKind

from payments_service.domain.errors import (
    STORE_ERROR_KINDS,
    PaymentsError,
    StoreError,
    StoreUnavailableError,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from datetime import datetime

    from opentelemetry.util.types import AttributeValue
    from prometheus_client import Histogram

    from payments_service.domain.model import Outcome, Payment
    from payments_service.domain.ports import Claim, PaymentRepository, StalledSettlements
    from payments_service.observability.metrics import StoreMetrics
    from payments_service.observability.tracing import LeafSpans, ServiceTracerProvider

T = TypeVar("T")
TABLE = "payments"
OPERATIONS = ("claim", "get", "record", "purge_expired", "take_stalled", "oldest_pending")


class ObservedRepository:
    """Wraps `inner` (and `stalled`, a durable store's recovery side); behaviour unchanged,
    every operation spanned and timed.

    The spans are leaf spans (`ServiceTracerProvider.leaf_spans`): a store call has no child
    span, and its name and attributes are known before it runs."""

    def __init__(
        self,
        inner: PaymentRepository,
        *,
        stalled: StalledSettlements | None = None,
        system: str,
        tracer_provider: ServiceTracerProvider | None,
        metrics: StoreMetrics | None = None,
        namespace: str | None = None,
        server_address: str | None = None,
        server_port: int | None = None,
        on_unavailable: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._inner = inner
        self._stalled = stalled
        self._on_unavailable = on_unavailable
        self.errors = dict.fromkeys(STORE_ERROR_KINDS, 0)  # failed operations, by kind
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
            if isinstance(exc, Exception):
                self._failed(exc)
            raise
        observed.finish(start_ns, started, None)
        return result

    def _failed(self, error: Exception) -> None:
        if isinstance(error, StoreError):
            self.errors[error.kind] += 1
            if isinstance(error, StoreUnavailableError) and self._on_unavailable is not None:
                self._on_unavailable(error)
        elif not isinstance(error, PaymentsError):  # PaymentNotFoundError is an answer
            self.errors["other"] += 1

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

    async def take_stalled(self, *, limit: int) -> list[Payment]:
        if self._stalled is None:  # a store without crash recovery has nothing stalled
            return []
        return await self._observe("take_stalled", self._stalled.take_stalled(limit=limit))

    async def oldest_pending(self) -> datetime | None:
        if self._stalled is None:
            return None
        return await self._observe("oldest_pending", self._stalled.oldest_pending())


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
