"""The tracing decorator of the processor port: one CLIENT span per charge.

It wraps any `PaymentProcessor`, so processor adapters stay free of tracing. The span is a leaf
(nothing runs inside it that starts a span or logs), so it is started with `start_span` and
never made current: that skips a context attach/detach. Used as a context manager, the SDK's
span still records an exception (cancellation included), sets ERROR and ends. Attributes are
set in one call at span start.

The in-memory store gets no spans: a span for a dictionary operation costs more to create and
export than the operation itself and tells a reader nothing (ARCHITECTURE.md, "Span tree").
Durable stores emit database CLIENT spans where they do I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.trace import SpanKind

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from payments_service.domain.model import Outcome, Payment
    from payments_service.domain.ports import PaymentProcessor


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
