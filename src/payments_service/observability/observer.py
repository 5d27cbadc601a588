"""The observability side of `application.observer.PaymentObserver`: domain metrics, and the
payment fields that spans and access-log lines report for the current call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from payments_service.calls import current_call

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
        _annotate(payment, replayed=False)

    def replayed(self, payment: Payment) -> None:
        if self._metrics is not None:
            self._metrics.for_merchant(payment.merchant_id).replayed.inc()
        _annotate(payment, replayed=True, status=payment.first_response)

    def conflicted(self, payment: Payment) -> None:
        if self._metrics is not None:
            self._metrics.for_merchant(payment.merchant_id).conflicts.inc()

    def answered(self, payment: Payment, response: Outcome) -> None:
        _annotate(payment, replayed=False, status=response)

    def settled(self, payment: Payment) -> None:
        if self._metrics is not None:
            self._metrics.for_merchant(payment.merchant_id).settled[payment.status].inc()

    def looked_up(self, payment: Payment) -> None:
        _annotate(payment, replayed=None, status=payment.outcome)


def _annotate(payment: Payment, *, replayed: bool | None, status: Outcome | None = None) -> None:
    state = current_call()
    if state is None:  # not inside an RPC (e.g. a background settlement)
        return
    state.payment_id = payment.payment_id
    state.currency = payment.request.currency
    state.amount_minor = payment.request.amount_minor
    state.replayed = replayed
    if status is not None:
        state.payment_status = status.status.value
