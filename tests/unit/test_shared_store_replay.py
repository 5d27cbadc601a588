"""A replay on a replica that does not own the key waits for the owner's answer in the store."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from payments_service.adapters.stores.memory import InMemoryPaymentRepository
from payments_service.application.service import PROCESSING
from payments_service.bootstrap import build_service
from payments_service.domain.model import Outcome, Payment, PaymentRequest, PaymentStatus
from tests.conftest import TEST_SETTINGS
from tests.fakes import FakeClock, SequentialIds

ANSWER = Outcome(PaymentStatus.SUCCEEDED, "answered by another replica")


class WatchedRepository(InMemoryPaymentRepository):
    """Sets `looked_up` whenever `get` runs: the replay is polling."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(ttl=timedelta(hours=1), clock=clock)
        self.looked_up = asyncio.Event()

    async def get(self, merchant_id: str, payment_id: str) -> Payment | None:
        self.looked_up.set()
        return await super().get(merchant_id, payment_id)


async def test_a_replay_polls_the_store_until_the_owning_replica_records_its_answer(
    clock: FakeClock,
) -> None:
    repository = WatchedRepository(clock)
    service = build_service(TEST_SETTINGS, clock=clock, ids=SequentialIds(), repository=repository)
    fields = {
        "merchant_id": "alice",
        "amount_minor": 1250,
        "currency": "EUR",
        "order_id": "o-1",
        "idempotency_key": "k",
    }
    owned = PaymentRequest(**fields)  # type: ignore[arg-type]
    now = clock.now()
    payment_id = "pay_" + "e" * 32
    await repository.claim(Payment(payment_id, owned, owned.fingerprint(), now, now, PROCESSING))

    replay = asyncio.ensure_future(service.request_payment(**fields, metadata={}))  # type: ignore[arg-type]
    await repository.looked_up.wait()  # the first look found no answer yet
    await repository.record(payment_id, at=now, outcome=ANSWER, first_response=ANSWER)
    result = await asyncio.wait_for(replay, timeout=5)
    assert (result.replayed, result.response, result.payment.payment_id) == (
        True,
        ANSWER,
        payment_id,
    )
