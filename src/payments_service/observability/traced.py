"""Tracing decorators for the ports: one span per store operation and per processor call.

They wrap any `PaymentRepository` / `PaymentProcessor`, so adapters stay free of tracing and
a durable store gets the same spans for free. These spans are leaves (nothing runs inside
them that starts a span or logs), so they are started with `start_span` and never made
current: that skips a context attach/detach per span. Used as a context manager, the SDK's
span still records an exception (cancellation included), sets ERROR and ends. Attributes are
set in one call at span start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.trace import SpanKind

if TYPE_CHECKING:
    from datetime import datetime

    from opentelemetry.trace import Span, Tracer
    from opentelemetry.util.types import AttributeValue

    from payments_service.domain.model import Outcome, Payment
    from payments_service.domain.ports import Claim, PaymentProcessor, PaymentRepository


class TracedRepository:
    def __init__(self, inner: PaymentRepository, tracer: Tracer, system: str) -> None:
        self._inner = inner
        self._tracer = tracer
        self._system = system

    def _start(self, operation: str, payment_id: str | None = None) -> Span:
        attributes: dict[str, AttributeValue] = {
            "db.system.name": self._system,
            "db.operation.name": operation,
        }
        if payment_id is not None:
            attributes["payment.id"] = payment_id
        return self._tracer.start_span(f"PaymentRepository.{operation}", attributes=attributes)

    async def claim(self, candidate: Payment) -> Claim:
        with self._start("claim") as span:
            claim = await self._inner.claim(candidate)
            span.set_attribute("payment.idempotent_replay", not claim.created)
            return claim

    async def get(self, payment_id: str) -> Payment | None:
        with self._start("get", payment_id):
            return await self._inner.get(payment_id)

    async def record(
        self,
        payment_id: str,
        *,
        at: datetime,
        outcome: Outcome | None = None,
        first_response: Outcome | None = None,
    ) -> Payment:
        with self._start("record", payment_id):
            return await self._inner.record(
                payment_id, at=at, outcome=outcome, first_response=first_response
            )

    async def purge_expired(self, *, limit: int) -> int:
        # No span: the expiry timer calls this every second outside any request, and a root
        # span per tick would bury the request traces.
        return await self._inner.purge_expired(limit=limit)


class TracedProcessor:
    def __init__(self, inner: PaymentProcessor, tracer: Tracer, name: str) -> None:
        self._inner = inner
        self._tracer = tracer
        self._name = name

    async def charge(self, payment: Payment) -> Outcome:
        with self._tracer.start_span(
            "PaymentProcessor.charge",
            kind=SpanKind.CLIENT,
            attributes={
                "peer.service": self._name,
                "payment.id": payment.payment_id,
                "payment.currency": payment.request.currency,
                "payment.amount_minor": payment.request.amount_minor,
            },
        ) as span:
            outcome = await self._inner.charge(payment)
            span.set_attribute("payment.status", outcome.status.value)
            return outcome
