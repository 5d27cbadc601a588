"""Domain errors. Plain exceptions; `transport.error_table` maps them to gRPC, in one place."""

from __future__ import annotations

from dataclasses import dataclass


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
        fields = ", ".join(dict.fromkeys(v.field for v in violations))
        super().__init__(f"invalid request: {len(violations)} violation(s) in {fields}")


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


class StoreFullError(PaymentsError):
    """The payment store has no room for a new payment (its memory cap is reached); nothing
    was stored. Replays and lookups still work. `retry_after` is how many seconds until the
    oldest payment expires and frees room (bounded by the store)."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__("payment store is full; no payment was created, retry later")


class ResponsePendingError(PaymentsError):
    """A replay arrived while the first call for its key is still running and did not finish
    within the wait; the client may retry the same request later."""

    def __init__(self, idempotency_key: str) -> None:
        self.idempotency_key = idempotency_key
        super().__init__("a request with this idempotency key is still in progress; retry later")


UNAUTHENTICATED_MESSAGE = "a valid API key is required: send authorization: Bearer <api key>"


class UnauthenticatedError(PaymentsError):
    """The caller sent no API key, a malformed one or an unknown one.

    The message is the same in every case, so it says nothing about which keys or merchants
    exist; `reason` (missing, malformed, unknown) is for the server's own use and is never sent.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(UNAUTHENTICATED_MESSAGE)


class StoreNotReadyError(PaymentsError):
    """The payment store is not open yet (the server is still connecting to it at startup)."""

    def __init__(self) -> None:
        super().__init__("the payment store is not ready yet; retry shortly")
