"""What the SQL stores share: the column list, and rows to payments and back.

Both stores keep one row per payment in `payments` (see migrations/*/0001_initial.sql), owned
by its `merchant_id` (0003): idempotency keys are unique per merchant, and every statement
that finds a payment for a caller has `merchant_id = ?` in its WHERE clause. The
expiry rule is the memory store's: a payment expires `ttl` after creation, but only once it is
finished (terminal outcome and first response recorded), so a short TTL never loses a payment
still in flight.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol

from payments_service.domain.model import Outcome, Payment, PaymentRequest, PaymentStatus

TABLE = "payments"
COLUMNS = (
    "payment_id",
    "idempotency_key",
    "fingerprint",
    "amount_minor",
    "currency",
    "order_id",
    "metadata",
    "created_at",
    "updated_at",
    "expires_at",
    "status",
    "message",
    "first_status",
    "first_message",
    "lease_until",
    "merchant_id",
)
TIMESTAMP_COLUMNS = (7, 8, 9, 14)  # created_at, updated_at, expires_at, lease_until
SELECT_COLUMNS = ", ".join(COLUMNS)
# A row whose retention has passed and that is finished (the memory store's rule).
FINISHED = "status <> 'PENDING' AND first_status IS NOT NULL"


def values(payment: Payment, expires_at: datetime, lease_until: datetime) -> tuple[Any, ...]:
    """The row of a freshly claimed payment, in COLUMNS order (timestamps as datetimes)."""
    first = payment.first_response
    return (
        payment.payment_id,
        payment.idempotency_key,
        payment.fingerprint,
        payment.request.amount_minor,
        payment.request.currency,
        payment.request.order_id,
        json.dumps(dict(payment.request.metadata), ensure_ascii=False, sort_keys=True),
        payment.created_at,
        payment.updated_at,
        expires_at,
        payment.outcome.status.value,
        payment.outcome.message,
        first.status.value if first is not None else None,
        first.message if first is not None else None,
        lease_until,
        payment.merchant_id,
    )


class Row(Protocol):
    """A result row by column name: sqlite3.Row and asyncpg.Record both are."""

    def __getitem__(self, key: str, /) -> Any: ...


def payment(row: Row, timestamp: Callable[[Any], datetime] | None = None) -> Payment:
    """The payment in `row`; `timestamp` converts the store's time columns to datetimes."""

    def at(column: str) -> datetime:
        value = row[column]
        if timestamp is not None:
            return timestamp(value)
        assert isinstance(value, datetime)  # noqa: S101 - the driver returns timestamptz so
        return value

    metadata: dict[str, str] = json.loads(row["metadata"])
    request = PaymentRequest(
        amount_minor=row["amount_minor"],
        currency=row["currency"],
        order_id=row["order_id"],
        idempotency_key=row["idempotency_key"],
        metadata=MappingProxyType(metadata),
        merchant_id=row["merchant_id"],
    )
    first = None
    if row["first_status"] is not None:
        first = Outcome(PaymentStatus(row["first_status"]), row["first_message"])
    return Payment(
        payment_id=row["payment_id"],
        request=request,
        fingerprint=row["fingerprint"],
        created_at=at("created_at"),
        updated_at=at("updated_at"),
        outcome=Outcome(PaymentStatus(row["status"]), row["message"]),
        first_response=first,
    )


def expired(expires_at: datetime, found: Payment, now: datetime) -> bool:
    """Past retention and finished: a claim may replace it, `get` no longer returns it."""
    return expires_at <= now and found.status.is_terminal and found.first_response is not None


def record_arguments(
    at: datetime, outcome: Outcome | None, first_response: Outcome | None
) -> tuple[str | None, str | None, datetime, str | None, str | None]:
    """(outcome status, outcome message, at, first status, first message) for the update."""
    return (
        outcome.status.value if outcome is not None else None,
        outcome.message if outcome is not None else None,
        at,
        first_response.status.value if first_response is not None else None,
        first_response.message if first_response is not None else None,
    )
