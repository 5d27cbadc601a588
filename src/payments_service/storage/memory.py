"""In-memory payment repository with idempotency-key retention.

Atomicity: every method runs to completion without an `await`, and the server runs on one
asyncio event loop, so `claim` is a single atomic step: "insert if the key is absent, else
return what is there". A durable store gets the same guarantee from a unique index.

Bounded memory: a payment and its key live for `ttl` after creation (longer only while it is
still settling, which its settlement timeout bounds), then are evicted. Eviction
is amortised O(1): payments are created in clock order, so the oldest sit at the front of a
deque and each `claim` pops the expired ones. Memory is therefore bounded by
(request rate x ttl), not by the process lifetime.

Restart: everything is lost when the process exits. A client that retries a key after a restart
creates a second payment. Use a durable store (SQLite, then PostgreSQL) to keep idempotency
across restarts and replicas.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from payments_service.domain.errors import PaymentNotFoundError
from payments_service.domain.ports import Claim

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from payments_service.domain.model import Outcome, Payment
    from payments_service.domain.ports import Clock


class InMemoryPaymentRepository:
    def __init__(self, *, ttl: timedelta, clock: Clock) -> None:
        self._ttl = ttl
        self._clock = clock
        self._payments: dict[str, Payment] = {}
        self._id_by_key: dict[str, str] = {}
        self._expiry: deque[tuple[datetime, str]] = deque()

    def __len__(self) -> int:
        """Number of payments held (live or not yet evicted)."""
        return len(self._payments)

    async def claim(self, candidate: Payment) -> Claim:
        self._evict_expired(candidate.created_at)
        existing_id = self._id_by_key.get(candidate.idempotency_key)
        if existing_id is not None:
            return Claim(self._payments[existing_id], created=False)
        self._payments[candidate.payment_id] = candidate
        self._id_by_key[candidate.idempotency_key] = candidate.payment_id
        self._expiry.append((candidate.created_at + self._ttl, candidate.payment_id))
        return Claim(candidate, created=True)

    async def get(self, payment_id: str) -> Payment | None:
        payment = self._payments.get(payment_id)
        if payment is None or self._expired(payment, self._clock.now()):
            return None
        return payment

    async def record(
        self,
        payment_id: str,
        *,
        at: datetime,
        outcome: Outcome | None = None,
        first_response: Outcome | None = None,
    ) -> Payment:
        payment = self._payments.get(payment_id)
        if payment is None:
            raise PaymentNotFoundError(payment_id)
        if outcome is not None:
            payment = payment.settled(outcome, at)
        if first_response is not None:
            payment = payment.answered(first_response)
        self._payments[payment_id] = payment
        return payment

    async def purge_expired(self, *, limit: int) -> int:
        # Minimal version so this branch keeps the port; the bounded-memory work replaces it.
        now = self._clock.now()
        purged = 0
        while purged < limit and self._expiry and self._expiry[0][0] <= now:
            payment = self._payments[self._expiry[0][1]]
            if not self._expired(payment, now):
                break
            self._expiry.popleft()
            del self._payments[payment.payment_id]
            del self._id_by_key[payment.idempotency_key]
            purged += 1
        return purged

    def _expired(self, payment: Payment, now: datetime) -> bool:
        """Past the TTL and finished. A payment still settling (or whose first answer is not
        recorded yet) is kept past its TTL, so a short TTL can never lose a payment in flight;
        settlement is bounded by its own timeout, so memory stays bounded."""
        return (
            payment.created_at + self._ttl <= now
            and payment.status.is_terminal
            and payment.first_response is not None
        )

    def _evict_expired(self, now: datetime) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            payment = self._payments[self._expiry[0][1]]
            if not self._expired(payment, now):
                return  # the oldest is still settling; try again on the next claim
            self._expiry.popleft()
            del self._payments[payment.payment_id]
            del self._id_by_key[payment.idempotency_key]
