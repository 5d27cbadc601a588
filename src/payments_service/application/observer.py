"""What the application reports about payments, as a port.

The service calls these hooks at the moments an operator cares about; the observability
adapter turns them into domain metrics and per-call annotations (span attributes, access-log
fields). The default does nothing, so the service runs the same with observability off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from payments_service.domain.errors import FieldViolation
    from payments_service.domain.model import Outcome, Payment


class PaymentObserver(Protocol):
    def rejected(self, merchant_id: str, violations: tuple[FieldViolation, ...]) -> None:
        """A request of `merchant_id` failed validation; nothing was stored."""

    def created(self, payment: Payment) -> None:
        """A new payment was stored for a new idempotency key."""

    def replayed(self, payment: Payment) -> None:
        """A request repeated an earlier one (same key, same payload)."""

    def conflicted(self, payment: Payment) -> None:
        """A request reused a key with a different payload."""

    def answered(self, payment: Payment, response: Outcome) -> None:
        """The call that created `payment` answered `response`."""

    def settled(self, payment: Payment) -> None:
        """`payment` reached its final status (SUCCEEDED or FAILED)."""

    def looked_up(self, payment: Payment) -> None:
        """GetPayment found `payment`."""


class NullObserver:
    """Observes nothing: the default when observability is off."""

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
