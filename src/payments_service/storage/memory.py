"""In-memory payment repository with idempotency-key retention.

Atomicity: every method runs to completion without an `await`, and the server runs on one
asyncio event loop, so `claim` is a single atomic step: "insert if the key is absent, else
return what is there". A durable store gets the same guarantee from a unique index.

Expiry (one rule, `_expired`): a payment is gone once its monotonic deadline (claim time +
ttl on `Clock.monotonic`, never the wall clock) has passed AND it is finished (terminal status
and first response recorded). `get`, `claim` and `record` all ask that rule, so a key and its
payment expire together: GetPayment and a replay never disagree, whenever the memory itself is
reclaimed. A payment still settling past its deadline is kept until it finishes (its settlement
timeout bounds that), and it does not hold up the others: the eviction walk moves it aside
(`_overdue`) and `record` evicts it the moment it finishes.

Eviction is amortised O(1): payments are claimed in monotonic order, so the oldest deadlines sit
at the front of a deque. Each claim evicts a few expired payments and `purge_expired` (driven by
the ExpirySweeper timer) evicts in batches.

Restart: everything is lost when the process exits. A client that retries a key after a restart
creates a second payment. Use a durable store to keep idempotency across restarts and replicas.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from payments_service.domain.errors import PaymentNotFoundError
from payments_service.domain.ports import Claim

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from payments_service.domain.model import Outcome, Payment
    from payments_service.domain.ports import Clock

# A claim evicts up to this many expired payments: more than it adds, so the claims alone keep
# up with any steady rate, and no single claim stalls the loop on a large backlog.
CLAIM_EVICTION_BATCH = 8


def _finished(payment: Payment) -> bool:
    return payment.status.is_terminal and payment.first_response is not None


@dataclass(slots=True)
class _Entry:
    payment: Payment
    deadline: float  # on Clock.monotonic


class InMemoryPaymentRepository:
    def __init__(self, *, ttl: timedelta, clock: Clock) -> None:
        self._ttl = ttl.total_seconds()
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._id_by_key: dict[str, str] = {}
        # (deadline, payment_id) in claim order; ids removed early are skipped when reached.
        self._expiry: deque[tuple[float, str]] = deque()
        # Past their deadline but unfinished; `record` evicts each as soon as it finishes.
        self._overdue: set[str] = set()

    def __len__(self) -> int:
        """Number of payments held (live, or expired and not yet evicted)."""
        return len(self._entries)

    async def claim(self, candidate: Payment) -> Claim:
        now = self._clock.monotonic()
        self._evict(now, CLAIM_EVICTION_BATCH)
        existing_id = self._id_by_key.get(candidate.idempotency_key)
        if existing_id is not None:
            entry = self._entries[existing_id]
            if not self._expired(entry, now):
                return Claim(entry.payment, created=False)
            self._remove(entry)
        self._entries[candidate.payment_id] = _Entry(candidate, now + self._ttl)
        self._id_by_key[candidate.idempotency_key] = candidate.payment_id
        self._expiry.append((now + self._ttl, candidate.payment_id))
        return Claim(candidate, created=True)

    async def get(self, payment_id: str) -> Payment | None:
        entry = self._entries.get(payment_id)
        if entry is None:
            return None
        if self._expired(entry, self._clock.monotonic()):
            self._remove(entry)
            return None
        return entry.payment

    async def record(
        self,
        payment_id: str,
        *,
        at: datetime,
        outcome: Outcome | None = None,
        first_response: Outcome | None = None,
    ) -> Payment:
        entry = self._entries.get(payment_id)
        if entry is None or self._expired(entry, self._clock.monotonic()):
            raise PaymentNotFoundError(payment_id)
        payment = entry.payment
        if outcome is not None:
            payment = payment.settled(outcome, at)
        if first_response is not None:
            payment = payment.answered(first_response)
        entry.payment = payment
        if payment_id in self._overdue and _finished(payment):
            self._remove(entry)  # finished past its deadline: the rule says it is gone
        return payment

    async def purge_expired(self, *, limit: int) -> int:
        return self._evict(self._clock.monotonic(), max(limit, 0))

    def _expired(self, entry: _Entry, now: float) -> bool:
        """Past its deadline and finished. A payment still settling (or whose first answer is
        not recorded yet) is kept past its deadline, so a short TTL never loses a payment in
        flight; its settlement timeout bounds how long."""
        return entry.deadline <= now and _finished(entry.payment)

    def _evict(self, now: float, limit: int | None) -> int:
        """Evict up to `limit` (None: all) expired payments from the front of the deadline
        order; unfinished ones past their deadline move to `_overdue` instead of blocking."""
        evicted = 0
        while self._expiry and self._expiry[0][0] <= now:
            if limit is not None and evicted >= limit:
                break
            _, payment_id = self._expiry.popleft()
            entry = self._entries.get(payment_id)
            if entry is None:
                continue  # already removed by get, claim or record
            if _finished(entry.payment):
                self._remove(entry)
                evicted += 1
            else:
                self._overdue.add(payment_id)
        return evicted

    def _remove(self, entry: _Entry) -> None:
        payment = entry.payment
        del self._entries[payment.payment_id]
        del self._id_by_key[payment.idempotency_key]
        self._overdue.discard(payment.payment_id)
