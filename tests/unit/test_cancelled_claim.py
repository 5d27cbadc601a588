"""A caller cancelled while the store is still claiming does not orphan the payment."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from payments_service.adapters.stores.memory import InMemoryPaymentRepository
from payments_service.bootstrap import build_service
from payments_service.domain.model import Payment, PaymentStatus
from payments_service.domain.ports import Claim
from tests.conftest import TEST_SETTINGS
from tests.fakes import FakeClock, SequentialIds


class SlowClaimRepository(InMemoryPaymentRepository):
    """`claim` starts, then finishes only when `release` is set (a slow database commit).
    With `commits_when_cancelled`, the insert lands even if the caller is cancelled meanwhile,
    as a database commit already sent does; without, the cancelled claim never happened."""

    def __init__(self, clock: FakeClock, *, commits_when_cancelled: bool) -> None:
        super().__init__(ttl=timedelta(hours=1), clock=clock)
        self.claiming = asyncio.Event()
        self.release = asyncio.Event()
        self._commits_when_cancelled = commits_when_cancelled

    async def claim(self, candidate: Payment) -> Claim:
        self.claiming.set()
        commit = asyncio.ensure_future(self._commit(candidate))
        if self._commits_when_cancelled:
            return await asyncio.shield(commit)
        return await commit

    async def _commit(self, candidate: Payment) -> Claim:
        await self.release.wait()
        return await super().claim(candidate)


@pytest.mark.parametrize("commits", [True, False], ids=["claim-committed", "claim-lost"])
async def test_a_call_cancelled_during_its_claim_leaves_one_settled_payment(
    clock: FakeClock, commits: bool
) -> None:
    repository = SlowClaimRepository(clock, commits_when_cancelled=commits)
    service = build_service(TEST_SETTINGS, clock=clock, ids=SequentialIds(), repository=repository)
    fields = {"amount_minor": 1250, "currency": "EUR", "order_id": "o", "idempotency_key": "k"}
    fields["merchant_id"] = "default"
    call = asyncio.ensure_future(service.request_payment(**fields, metadata={}))  # type: ignore[arg-type]
    await repository.claiming.wait()
    call.cancel()
    repository.release.set()
    # The retry finds the payment the cancelled call created (its settled answer), or, when
    # that claim never landed, creates the one payment itself. Never two, never an orphan.
    retry = await service.request_payment(**fields, metadata={})  # type: ignore[arg-type]
    assert retry.replayed is commits
    assert retry.response.status is PaymentStatus.SUCCEEDED
    assert await service.drain(5) == 0
    assert len(repository) == 1
    payment = await repository.get("default", retry.payment.payment_id)
    assert payment is not None
    assert payment.payment_id == f"pay_{1 if commits else 2:032x}"
    assert payment.status is PaymentStatus.SUCCEEDED
