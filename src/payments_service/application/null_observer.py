"""The `PaymentObserver` (domain/ports.py) that observes nothing: the service's default, so it
runs the same with observability off."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from payments_service.domain.errors import FieldViolation
    from payments_service.domain.model import Outcome, Payment


class NullObserver:
    """Observes nothing."""

    def rejected(self, merchant_id: str, violations: tuple[FieldViolation, ...]) -> None:
        pass

    def created(self, payment: Payment) -> None:
        pass

    def replayed(self, payment: Payment) -> None:
        pass

    def conflicted(self, payment: Payment) -> None:
        pass

    def answered(self, payment: Payment, response: Outcome) -> None:
        pass

    def settled(self, payment: Payment) -> None:
        pass

    def looked_up(self, payment: Payment) -> None:
        pass
