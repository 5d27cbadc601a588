"""Tracing decorators for the ports: one span per store operation and per processor call.

They wrap any `PaymentRepository` / `PaymentProcessor`, so adapters stay free of tracing and
a durable store gets the same spans for free. These spans are leaves (nothing runs inside
them that starts a span or logs), so they are started with `start_span` and never made
current: that skips a context attach/detach and a context-manager frame per span, the
cheapest correct way to use the SDK here. Attributes are set in one call at span start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.trace import SpanKind, Status, StatusCode

if TYPE_CHECKING:
    from datetime import datetime

    from opentelemetry.trace import Span, Tracer
    from opentelemetry.util.types import AttributeValue

    from payments_service.domain.model import Outcome, Payment
    from payments_service.domain.ports import Claim, PaymentProcessor, PaymentRepository


def _failed(span: Span, error: BaseException) -> None:
    """What `start_as_current_span` would do for an exception: record it, mark the span."""
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


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
        span = self._start("claim")
        try:
            claim = await self._inner.claim(candidate)
        except BaseException as error:  # cancellation too: the span must still end
            _failed(span, error)
            raise
        span.set_attribute("payment.idempotent_replay", not claim.created)
        span.end()
        return claim

    async def get(self, payment_id: str) -> Payment | None:
        span = self._start("get", payment_id)
        try:
            payment = await self._inner.get(payment_id)
        except BaseException as error:  # cancellation too: the span must still end
            _failed(span, error)
            raise
        span.end()
        return payment

    async def record(
        self,
        payment_id: str,
        *,
        at: datetime,
        outcome: Outcome | None = None,
        first_response: Outcome | None = None,
    ) -> Payment:
        span = self._start("record", payment_id)
        try:
            payment = await self._inner.record(
                payment_id, at=at, outcome=outcome, first_response=first_response
            )
        except BaseException as error:  # cancellation too: the span must still end
            _failed(span, error)
            raise
        span.end()
        return payment


class TracedProcessor:
    def __init__(self, inner: PaymentProcessor, tracer: Tracer, name: str) -> None:
        self._inner = inner
        self._tracer = tracer
        self._name = name

    async def charge(self, payment: Payment) -> Outcome:
        span = self._tracer.start_span(
            "PaymentProcessor.charge",
            kind=SpanKind.CLIENT,
            attributes={
                "peer.service": self._name,
                "payment.id": payment.payment_id,
                "payment.currency": payment.request.currency,
                "payment.amount_minor": payment.request.amount_minor,
            },
        )
        try:
            outcome = await self._inner.charge(payment)
        except BaseException as error:  # cancellation too: the span must still end
            _failed(span, error)
            raise
        span.set_attribute("payment.status", outcome.status.value)
        span.end()
        return outcome
