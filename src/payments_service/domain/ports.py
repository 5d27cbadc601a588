"""Ports: what the application needs from the outside world, as typing.Protocols.

Adapters (storage, processor) implement them; tests inject deterministic ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Awaitable
    from datetime import datetime

    from payments_service.domain.errors import FieldViolation
    from payments_service.domain.model import Outcome, Payment


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC: what a payment records (`created_at`)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (time.monotonic): what deadlines are measured
        on, so a wall-clock step neither shortens nor stretches a retention."""
        ...


class IdGenerator(Protocol):
    def new_payment_id(self) -> str:
        """A new, unique payment id matching `validation.PAYMENT_ID_SHAPE`."""
        ...


@dataclass(frozen=True, slots=True)
class Claim:
    """What `PaymentRepository.claim` found: the payment that owns the key, and whether this
    call created it (True) or found an earlier one (False)."""

    payment: Payment
    created: bool


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What a bounded store reports for its gauges: payments held, their accounted bytes, the
    cap (0: none), and how many new payments it refused because it was full."""

    payments: int
    bytes_used: int
    max_bytes: int
    rejected_full: int


class PaymentRepository(Protocol):
    """Storage of payments and their idempotency keys.

    The contract a durable store must keep too (SQLite: one transaction with
    INSERT ... ON CONFLICT DO NOTHING then SELECT; PostgreSQL: the same on a unique index over
    (merchant_id, idempotency_key), safe across replicas):

    - tenancy: a payment belongs to its merchant (`Payment.merchant_id`). Keys are scoped by
      merchant: two merchants' claims with one key are two payments. Every read answers only
      for the merchant asked about: `get` of another merchant's payment is None, exactly as
      for an id that does not exist.
    - `claim` is atomic: of any number of concurrent claims with one (merchant, key), exactly
      one creates.
    - a key is remembered for the store's retention (the idempotency TTL); after that a claim
      with the key creates a new payment, and the expired payment may be forgotten.
    - a key and its payment expire together: `get` and `claim` answer from one rule, so a
      payment GetPayment no longer finds is never replayed, and the reverse. A payment that is
      not finished yet (still settling, or its first response not recorded) never expires.
    """

    async def claim(self, candidate: Payment) -> Claim:
        """Insert `candidate` if no live payment of `candidate.merchant_id` holds its
        idempotency key; else return that one (never another merchant's)."""
        ...

    async def get(self, merchant_id: str, payment_id: str) -> Payment | None:
        """The payment with this id if it belongs to `merchant_id`, else None."""
        ...

    async def record(
        self,
        payment_id: str,
        *,
        at: datetime,
        outcome: Outcome | None = None,
        first_response: Outcome | None = None,
    ) -> Payment:
        """Record the final `outcome` (ignored once the payment is terminal) and/or the
        `first_response` the creating call gave (first write wins), in one atomic update.
        Raises PaymentNotFoundError for an unknown (or expired) payment.

        Not scoped by merchant: only the service and crash recovery call it, with ids they
        took from a claimed or leased payment, never with an id a caller sent."""
        ...

    async def purge_expired(self, *, limit: int) -> int:
        """Delete up to `limit` payments whose retention has passed and that are finished
        (terminal status and first response recorded); return how many were deleted."""
        ...


class StalledSettlements(Protocol):
    """What a durable store offers crash recovery (the memory store has nothing to recover:
    its payments die with the process)."""

    async def take_stalled(self, *, limit: int) -> list[Payment]:
        """Up to `limit` PENDING payments whose settlement lease has run out (the process that
        owned them died), each now leased to the caller: of concurrent callers, in this process
        or other replicas, exactly one receives a given payment until the new lease runs out."""
        ...

    async def oldest_pending(self) -> datetime | None:
        """`created_at` of the oldest PENDING payment in the store (any process's, leased or
        not), or None when none is PENDING."""
        ...


class PaymentProcessor(Protocol):
    """The payment network (acquirer/PSP). May be slow and may fail.

    Idempotency guarantee: a charge is identified by `payment.payment_id`. Charging the same
    payment again (crash recovery resumes settlements) never charges twice: it returns the
    outcome of the first charge, waiting for it if it is still running.
    """

    def charge(self, payment: Payment) -> Outcome | Awaitable[Outcome]:
        """Charge the payment (at most once per payment id); its final outcome (SUCCEEDED or
        FAILED). An adapter that decides at once (an in-process processor) returns the Outcome
        itself, so the caller needs no task, wait or timer; one that waits for a network
        returns an awaitable of it (`async def charge`)."""
        ...


class PaymentObserver(Protocol):
    """What the application reports about payments, at the moments an operator cares about.
    The observability adapter turns it into domain metrics and per-call annotations (span
    attributes, access-log fields)."""

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
