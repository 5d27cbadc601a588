"""Entities and value objects of the payments domain."""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping


class PaymentStatus(enum.Enum):
    """Lifecycle of a payment: PENDING -> SUCCEEDED | FAILED. Terminal states never change."""

    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        return self is not PaymentStatus.PENDING


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """A validated request of merchant `merchant_id` to move `amount_minor` units of `currency`
    for one of its orders.

    `merchant_id` is the tenant: the authenticated caller, never a field of the message. It is
    keyword-only and has no default, so no code path can build a request without deciding whose
    it is. Idempotency keys are scoped by it: (merchant_id, idempotency_key) names a payment.
    """

    amount_minor: int
    currency: str
    order_id: str
    idempotency_key: str
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    merchant_id: str = field(kw_only=True)

    def fingerprint(self) -> str:
        """SHA-256 of the canonical payload (everything but the key and the merchant: those
        are the scope the fingerprint is compared within, not part of the payload).

        Two requests with one key are "the same" exactly when their fingerprints match, so the
        canonical form must not depend on map order: keys are sorted, separators fixed.
        """
        canonical = json.dumps(
            [self.amount_minor, self.currency, self.order_id, sorted(self.metadata.items())],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Outcome:
    """A status with its human-readable message, as the processor or the first response gave it."""

    status: PaymentStatus
    message: str


@dataclass(frozen=True, slots=True)
class Payment:
    """A stored payment.

    `outcome` is the current state (what GetPayment shows). `first_response` is what the
    RequestPayment call that created the payment answered; idempotent replays return it
    unchanged, even after a PENDING payment settles. It is None only while that first call is
    still deciding its answer (at most the processor deadline).
    """

    payment_id: str
    request: PaymentRequest
    fingerprint: str
    created_at: datetime
    updated_at: datetime
    outcome: Outcome
    first_response: Outcome | None = None

    @property
    def idempotency_key(self) -> str:
        return self.request.idempotency_key

    @property
    def merchant_id(self) -> str:
        """The merchant the payment belongs to: only that merchant can read or replay it."""
        return self.request.merchant_id

    @property
    def status(self) -> PaymentStatus:
        return self.outcome.status

    def settled(self, outcome: Outcome, at: datetime) -> Payment:
        """The payment with its final outcome. A terminal payment never changes again."""
        if self.outcome.status.is_terminal:
            return self
        return replace(self, outcome=outcome, updated_at=at)

    def answered(self, response: Outcome) -> Payment:
        """The payment with its first response recorded (only the first one counts)."""
        if self.first_response is not None:
            return self
        return replace(self, first_response=response)
