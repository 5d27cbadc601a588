"""In-memory payment repository with idempotency-key retention and a byte budget.

Atomicity: every method runs to completion without an `await`, and the server runs on one
asyncio event loop, so `claim` is a single atomic step: "insert if the key is absent, else
return what is there". A durable store gets the same guarantee from a unique index.

Tenancy: keys are indexed per merchant (merchant -> key -> payment id), so one key of two
merchants is two payments, and `get` answers None for another merchant's payment. Nested dicts
rather than (merchant, key) tuples: no extra object per payment, one small dict per merchant.

Expiry (one rule, `_expired`): a payment is gone once its monotonic deadline (claim time +
ttl on `Clock.monotonic`, never the wall clock) has passed AND it is finished (terminal status
and first response recorded). `get`, `claim` and `record` all ask that rule, so a key and its
payment expire together: GetPayment and a replay never disagree, whenever the memory itself is
reclaimed. A payment still settling past its deadline is kept until it finishes (its settlement
timeout bounds that), and it does not hold up the others: the eviction walk moves it aside
(`_overdue`) and `record` evicts it the moment it finishes.

Eviction is amortised O(1): payments are claimed in monotonic order, so the oldest deadlines sit
at the front of a deque. Each claim evicts a few expired payments, `purge_expired` (driven by
the ExpirySweeper timer) evicts in batches, and a claim that finds the store full evicts every
expired payment before it refuses.

Bounded memory: each payment is accounted by `payment_size` (what its strings occupy plus a
calibrated fixed overhead; docs/memory-store.md has the formula, AI_TRACE.md the measurements).
A new payment that does not fit in `max_bytes` raises StoreFullError and nothing is stored;
replays and `get` keep working.

Restart: everything is lost when the process exits. A client that retries a key after a restart
creates a second payment. Use a durable store to keep idempotency across restarts and replicas.
"""

from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from payments_service.domain.errors import PaymentNotFoundError, StoreFullError
from payments_service.domain.ports import Claim, StoreStats

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from payments_service.domain.model import Outcome, Payment
    from payments_service.domain.ports import Clock

# Fixed bytes per payment besides its strings: the Payment, PaymentRequest, two Outcomes, two
# datetimes, the metadata dict and its read-only proxy, this module's entry, the two index dict
# slots (worst case: right after a table doubles) and the deque slot. Calibrated against
# tracemalloc and VmRSS by scripts/measure_memory_store.py (results in AI_TRACE.md): measured
# <= 574 bytes for an empty-metadata payment after the strings.
ENTRY_OVERHEAD_BYTES = 700
# Bytes per metadata entry besides its two strings: the dict slot, its share of the table and
# malloc's header on a large value (measured <= 87).
METADATA_ITEM_OVERHEAD_BYTES = 100
# A claim evicts up to this many expired payments: more than it adds, so the claims alone keep
# up with any steady rate, and no single claim stalls the loop on a large backlog.
CLAIM_EVICTION_BATCH = 8
# RetryInfo bounds: never "retry now" (a hot loop), never "retry tomorrow" with a 24 h TTL.
MIN_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 300.0


def payment_size(payment: Payment) -> int:
    """The accounted size of `payment` in bytes.

    Strings count with `sys.getsizeof`: CPython's own allocation for the string (header plus
    1, 2 or 4 bytes per character, by the widest character it holds). The UTF-8 length would
    undercount: 499 ASCII characters and one emoji are 503 UTF-8 bytes but 2,076 in memory.
    """
    request = payment.request
    size = (
        ENTRY_OVERHEAD_BYTES
        + sys.getsizeof(payment.payment_id)
        + sys.getsizeof(payment.fingerprint)
        + sys.getsizeof(request.currency)
        + sys.getsizeof(request.order_id)
        + sys.getsizeof(request.idempotency_key)
        + sys.getsizeof(payment.outcome.message)
        + METADATA_ITEM_OVERHEAD_BYTES * len(request.metadata)
    )
    for key, value in request.metadata.items():
        size += sys.getsizeof(key) + sys.getsizeof(value)
    if payment.first_response is not None:
        size += sys.getsizeof(payment.first_response.message)
    return size


def _finished(payment: Payment) -> bool:
    return payment.status.is_terminal and payment.first_response is not None


MIB = 1024 * 1024  # PAYMENTS_MEMORY_STORE_MAX_MIB is in mebibytes


@dataclass(slots=True)
class _Entry:
    payment: Payment
    deadline: float  # on Clock.monotonic
    size: int


class InMemoryPaymentRepository:
    def __init__(self, *, ttl: timedelta, clock: Clock, max_bytes: int | None = None) -> None:
        """`max_bytes` None means unbounded (tests of other behaviour)."""
        self._ttl = ttl.total_seconds()
        self._clock = clock
        self._max_bytes = max_bytes
        self._entries: dict[str, _Entry] = {}
        # merchant_id -> idempotency_key -> payment_id: the (merchant, key) unique index.
        self._id_by_key: dict[str, dict[str, str]] = {}
        # (deadline, payment_id) in claim order; ids removed early are skipped when reached.
        self._expiry: deque[tuple[float, str]] = deque()
        # Past their deadline but unfinished; `record` evicts each as soon as it finishes.
        self._overdue: set[str] = set()
        self._bytes = 0
        self._rejected_full = 0

    def __len__(self) -> int:
        """Number of payments held (live, or expired and not yet evicted)."""
        return len(self._entries)

    def stats(self) -> StoreStats:
        return StoreStats(
            payments=len(self._entries),
            bytes_used=self._bytes,
            max_bytes=self._max_bytes or 0,
            rejected_full=self._rejected_full,
        )

    async def claim(self, candidate: Payment) -> Claim:
        now = self._clock.monotonic()
        self._evict(now, CLAIM_EVICTION_BATCH)
        keys = self._id_by_key.get(candidate.merchant_id)
        existing_id = None if keys is None else keys.get(candidate.idempotency_key)
        if existing_id is not None:
            entry = self._entries[existing_id]
            if not self._expired(entry, now):
                return Claim(entry.payment, created=False)
            self._remove(entry)
        size = payment_size(candidate)
        if not self._fits(size):
            self._evict(now, None)
            if not self._fits(size):
                self._rejected_full += 1
                raise StoreFullError(self._retry_after(now))
        self._entries[candidate.payment_id] = _Entry(candidate, now + self._ttl, size)
        self._id_by_key.setdefault(candidate.merchant_id, {})[candidate.idempotency_key] = (
            candidate.payment_id
        )
        self._expiry.append((now + self._ttl, candidate.payment_id))
        self._bytes += size
        return Claim(candidate, created=True)

    async def get(self, merchant_id: str, payment_id: str) -> Payment | None:
        entry = self._entries.get(payment_id)
        if entry is None or entry.payment.merchant_id != merchant_id:
            return None  # another merchant's payment is as absent as an unknown one
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
        size = payment_size(payment)
        self._bytes += size - entry.size
        entry.payment, entry.size = payment, size
        if payment_id in self._overdue and _finished(payment):
            self._remove(entry)  # finished past its deadline: the rule says it is gone
        return payment

    async def purge_expired(self, *, limit: int) -> int:
        return self._evict(self._clock.monotonic(), max(limit, 0))

    def _fits(self, size: int) -> bool:
        return self._max_bytes is None or self._bytes + size <= self._max_bytes

    def _retry_after(self, now: float) -> float:
        """Seconds until the oldest payment's deadline: the earliest a new one may fit."""
        wait = self._expiry[0][0] - now if self._expiry else MIN_RETRY_SECONDS
        return min(max(wait, MIN_RETRY_SECONDS), MAX_RETRY_SECONDS)

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
        keys = self._id_by_key[payment.merchant_id]
        del keys[payment.idempotency_key]
        if not keys:
            del self._id_by_key[payment.merchant_id]
        self._overdue.discard(payment.payment_id)
        self._bytes -= entry.size
