"""The observability side of `domain.ports.PaymentObserver`: the payment domain metrics, and
the payment facts that the span and the access line of the current call report (emitted with
`record.report_payment`; the observation point collects them when the call ends)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from payments_service.observability.record import PaymentFacts, report_payment

if TYPE_CHECKING:
    from payments_service.domain.errors import FieldViolation
    from payments_service.domain.model import Outcome, Payment
    from payments_service.observability.metrics import Metrics


class TelemetryObserver:
    def __init__(self, metrics: Metrics | None) -> None:
        self._metrics = metrics

    def rejected(self, merchant_id: str, violations: tuple[FieldViolation, ...]) -> None:
        if self._metrics is not None:
            self._metrics.for_merchant(merchant_id).rejected.inc()

    def created(self, payment: Payment) -> None:
        if self._metrics is not None:
            self._metrics.for_merchant(payment.merchant_id).created.inc()
        _report(payment, replayed=False)

    def replayed(self, payment: Payment) -> None:
        if self._metrics is not None:
            self._metrics.for_merchant(payment.merchant_id).replayed.inc()
        _report(payment, replayed=True, status=payment.first_response)

    def conflicted(self, payment: Payment) -> None:
        if self._metrics is not None:
            self._metrics.for_merchant(payment.merchant_id).conflicts.inc()

    def answered(self, payment: Payment, response: Outcome) -> None:
        _report(payment, replayed=False, status=response)

    def settled(self, payment: Payment) -> None:
        if self._metrics is not None:
            self._metrics.for_merchant(payment.merchant_id).settled[payment.status].inc()

    def looked_up(self, payment: Payment) -> None:
        _report(payment, replayed=None, status=payment.outcome)


def _report(payment: Payment, *, replayed: bool | None, status: Outcome | None = None) -> None:
    request = payment.request
    report_payment(
        PaymentFacts(
            payment.payment_id,
            request.currency,
            request.amount_minor,
            None if status is None else status.status.value,
            replayed,
        )
    )
