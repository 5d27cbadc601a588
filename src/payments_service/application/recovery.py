"""Recovery of settlements a crash interrupted (durable stores only).

A payment's settlement task lives in the process that created it. If that process dies, the
payment would stay PENDING forever. Each process therefore runs `SettlementRecovery`: every
`interval` it asks the store for PENDING payments whose settlement lease ran out
(`take_stalled`, which re-leases them to this process, so of several replicas exactly one gets
each payment), and for each:

- its settlement deadline (created_at + PAYMENTS_SETTLEMENT_DEADLINE_SECONDS) has passed: it is
  marked FAILED;
- otherwise the charge is resumed. The processor port is idempotent by payment id, so if the
  dead process had already charged, this returns that charge's outcome instead of charging again.

The outcome is recorded with first-write-wins, and becomes the first response too if the dead
process never recorded one (its caller got no answer; a retry now replays this one).

Each round also reads the oldest PENDING payment's `created_at`, for
`payments_pending_oldest_age_seconds`: a payment still PENDING past its settlement deadline
means recovery is not doing its job (the PaymentsSettlementOverdue alert).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from payments_service.application.settlement import charged
from payments_service.domain.errors import StoreError
from payments_service.domain.model import Outcome, PaymentStatus

if TYPE_CHECKING:
    from payments_service.domain.model import Payment
    from payments_service.domain.ports import (
        Clock,
        PaymentProcessor,
        PaymentRepository,
        StalledSettlements,
    )

log = structlog.get_logger(__name__)

DEADLINE_PASSED = Outcome(
    PaymentStatus.FAILED, "payment settlement was interrupted and its deadline passed"
)
BATCH = 100


class SettlementRecovery:
    def __init__(
        self,
        *,
        stalled: StalledSettlements,
        repository: PaymentRepository,
        processor: PaymentProcessor,
        clock: Clock,
        deadline: timedelta,
        charge_timeout: float,
    ) -> None:
        self._stalled = stalled
        self._repository = repository
        self._processor = processor
        self._clock = clock
        self._deadline = deadline
        self._charge_timeout = charge_timeout
        self._oldest_pending: datetime | None = None  # as of the last round that read it

    def oldest_pending_age(self) -> float:
        """Seconds since the oldest PENDING payment (as of the last round) was created; 0 when
        none was PENDING. Read at scrape time."""
        oldest = self._oldest_pending
        if oldest is None:
            return 0.0
        return max(0.0, (self._clock.now() - oldest).total_seconds())

    async def recover_once(self, limit: int = BATCH) -> int:
        """Resume or fail up to `limit` stalled payments; return how many were handled."""
        payments = await self._stalled.take_stalled(limit=limit)
        await asyncio.gather(*(self._recover(payment) for payment in payments))
        return len(payments)

    async def measure(self) -> None:
        """Read the oldest PENDING payment's `created_at` (for `oldest_pending_age`)."""
        self._oldest_pending = await self._stalled.oldest_pending()

    async def run(self, interval: float) -> None:
        """Recover at once (a restart), then every `interval` seconds until cancelled."""
        while True:
            try:
                while await self.recover_once() == BATCH:
                    pass  # a backlog: keep going
                await self.measure()
            except StoreError as error:  # reported by the store's health check and the calls
                log.debug("settlement_recovery_skipped", store_error=error.kind)
            except Exception:
                log.exception("settlement_recovery_failed")
            await asyncio.sleep(interval)

    async def _recover(self, payment: Payment) -> None:
        if self._clock.now() >= payment.created_at + self._deadline:
            outcome: Outcome | None = DEADLINE_PASSED
        else:
            outcome = await self._charge(payment)
        if outcome is None:
            return
        recorded = await self._repository.record(
            payment.payment_id, at=self._clock.now(), outcome=outcome, first_response=outcome
        )
        log.info(
            "payment_recovered",
            payment_id=payment.payment_id,
            status=recorded.status.value,
            resumed=outcome is not DEADLINE_PASSED,
        )

    async def _charge(self, payment: Payment) -> Outcome | None:
        """The processor's final outcome, or None to leave the payment PENDING: its new lease
        runs out and a later round retries, until the deadline marks it FAILED."""
        try:
            outcome = await asyncio.wait_for(
                charged(self._processor, payment), timeout=self._charge_timeout
            )
        except Exception:  # a timeout included
            log.exception("settlement_recovery_charge_failed", payment_id=payment.payment_id)
            return None
        return outcome if outcome.status.is_terminal else None
