"""A caller cancelled while the store is still claiming does not orphan the payment."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from payments_service.bootstrap import build_service
from payments_service.domain.model import Payment, PaymentStatus
from payments_service.domain.ports import Claim
from payments_service.storage.memory import InMemoryPaymentRepository
from tests.conftest import TEST_SETTINGS
from tests.fakes import FakeClock, SequentialIds


class SlowClaimRepository(InMemoryPaymentRepository):
    """`claim` starts, then finishes only when `release` is set (a slow database commit)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(ttl=timedelta(hours=1), clock=clock)
        self.claiming = asyncio.Event()
        self.release = asyncio.Event()

    async def claim(self, candidate: Payment) -> Claim:
        self.claiming.set()
        await self.release.wait()
        return await super().claim(candidate)


async def test_a_call_cancelled_during_its_claim_still_settles_the_payment_it_created(
    clock: FakeClock,
) -> None:
    repository = SlowClaimRepository(clock)
    service = build_service(TEST_SETTINGS, clock=clock, ids=SequentialIds(), repository=repository)
    fields = {"amount_minor": 1250, "currency": "EUR", "order_id": "o", "idempotency_key": "k"}
    call = asyncio.ensure_future(service.request_payment(**fields, metadata={}))  # type: ignore[arg-type]
    await repository.claiming.wait()
    call.cancel()
    repository.release.set()
    # The retry finds the payment the cancelled call created, and its settled answer.
    replay = await service.request_payment(**fields, metadata={})  # type: ignore[arg-type]
    assert replay.replayed
    assert replay.response.status is PaymentStatus.SUCCEEDED
    assert await service.drain(5) == 0
