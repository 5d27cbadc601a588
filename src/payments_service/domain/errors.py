"""Domain errors, and the failures the repository port may raise. Plain exceptions;
`transport.error_table` maps them to statuses, in one place.

The store failures (`StoreUnavailableError`, `StoreFullError`, `StoreReadOnlyError`) are part of
the `PaymentRepository` contract: every store adapter translates its driver's errors into them,
so the application and the error table never see a driver's exception types. Each has a `kind`
(unavailable, full, readonly): the label of `payments_store_errors_total`, where any other
failure of a store operation counts as `other`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


class PaymentsError(Exception):
    """Base of every error the domain raises on purpose."""


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One broken rule on one request field (`field` uses the proto field name)."""

    field: str
    description: str


class ValidationError(PaymentsError):
    """The request breaks one or more rules; `violations` lists every one of them."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))


class IdempotencyKeyReusedError(PaymentsError):
    """The idempotency key already belongs to a payment with a different payload."""

    def __init__(self, idempotency_key: str, payment_id: str) -> None:
        self.idempotency_key = idempotency_key
        self.payment_id = payment_id
        super().__init__(
            "idempotency key was already used with a different payload; "
            "use a new key for a new payment"
        )


class PaymentNotFoundError(PaymentsError):
    """No payment has this id (or it has outlived the store's retention)."""

    def __init__(self, payment_id: str) -> None:
        self.payment_id = payment_id
        super().__init__(f"payment {payment_id} not found")


class ResponsePendingError(PaymentsError):
    """A replay arrived while the first call for its key is still running and did not finish
    within the wait; the client may retry the same request later."""

    def __init__(self, idempotency_key: str) -> None:
        self.idempotency_key = idempotency_key
        super().__init__("a request with this idempotency key is still in progress; retry later")


class StoreError(PaymentsError):
    """A failure of the payment store itself (not of the request): one of the kinds below."""

    kind: ClassVar[str]


class StoreUnavailableError(StoreError):
    """The payment store cannot be reached (connection refused or lost, the database shutting
    down, no connection within the timeout); the operation may or may not have happened, and a
    retry with the same idempotency key is safe."""

    kind = "unavailable"

    def __init__(self, message: str = "the payment store is unavailable; retry shortly") -> None:
        super().__init__(message)


class StoreNotReadyError(StoreUnavailableError):
    """The payment store is not open yet (the server is still connecting to it at startup)."""

    def __init__(self) -> None:
        super().__init__("the payment store is not ready yet; retry shortly")


class StoreFullError(StoreError):
    """The payment store has no room for a new payment; nothing was stored. Replays and
    lookups still work. `retry_after` is how many seconds until room is expected (the memory
    store: until its oldest payment expires), None when nobody can tell (a full disk)."""

    kind = "full"

    def __init__(self, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__("payment store is full; no payment was created, retry later")


class StoreReadOnlyError(StoreError):
    """The payment store refuses writes (a read-only file or database, a permission denied):
    an operator must act; reads still work."""

    kind = "readonly"

    def __init__(self) -> None:
        super().__init__("the payment store refuses writes; retry later")


STORE_ERROR_KINDS = ("unavailable", "full", "readonly", "other")  # `other`: any other failure


class RateLimitedError(PaymentsError):
    """A rate limit refused the request before any work: the merchant's request rate
    (`scope` merchant) or the new payments for one order (`scope` order). Nothing was stored;
    `retry_after` is how many seconds until the request could succeed."""

    def __init__(self, scope: str, limit: str, retry_after: float) -> None:
        self.scope = scope
        self.limit = limit
        self.retry_after = retry_after
        what = "requests of this merchant" if scope == "merchant" else "new payments for this order"
        super().__init__(
            f"rate limited: too many {what} ({limit}); nothing was done, retry after the delay"
        )
