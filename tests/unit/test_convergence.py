"""Convergence after a store outage: a key whose first call failed before its answer was
recorded answers a retry with the first call's payment as soon as that call's time is up (the
processor deadline plus FIRST_ANSWER_MARGIN_SECONDS after it started), not after the settlement
lease; and never takes over a payment whose first call is still deciding."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from payments_service.adapters.simulated_processor import SUCCEEDED, SimulatedProcessor
from payments_service.adapters.stores.memory import InMemoryPaymentRepository
from payments_service.application.service import FIRST_ANSWER_MARGIN_SECONDS, PaymentService
from payments_service.bootstrap import build_service
from payments_service.domain.errors import ResponsePendingError, StoreUnavailableError
from payments_service.domain.model import Outcome, Payment
from payments_service.domain.ports import Claim
from tests.conftest import TEST_SETTINGS
from tests.fakes import FakeClock, HangingProcessor, SequentialIds
from tests.unit.test_service import request

# A first call's time: it records its first answer within this, or never will.
BOUND = TEST_SETTINGS.processor_timeout_seconds + FIRST_ANSWER_MARGIN_SECONDS
FIRST_ID = SequentialIds().new_payment_id()  # what the first call creates


class OutageStore(InMemoryPaymentRepository):
    """A real in-memory store with an outage switch: `fail_claims_after_commit` loses the
    answer of claims that were stored (a connection lost after COMMIT); `fail_records` fails
    records before anything is stored. Both raise what a store adapter raises."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(ttl=timedelta(hours=1), clock=clock)
        self.fail_claims_after_commit = False
        self.fail_records = False

    async def claim(self, candidate: Payment) -> Claim:
        claimed = await super().claim(candidate)
        if self.fail_claims_after_commit:
            raise StoreUnavailableError
        return claimed

    async def record(
        self,
        payment_id: str,
        *,
        at: object,
        outcome: Outcome | None = None,
        first_response: Outcome | None = None,
    ) -> Payment:
        if self.fail_records:
            raise StoreUnavailableError
        return await super().record(
            payment_id,
            at=at,  # type: ignore[arg-type]
            outcome=outcome,
            first_response=first_response,
        )


def service_on(
    store: OutageStore, clock: FakeClock, processor: object | None = None
) -> PaymentService:
    return build_service(
        TEST_SETTINGS,
        clock=clock,
        ids=SequentialIds(),
        repository=store,
        processor=processor or SimulatedProcessor(),  # type: ignore[arg-type]
    )


@pytest.fixture
def store(clock: FakeClock) -> OutageStore:
    return OutageStore(clock)


async def test_a_retry_within_the_first_calls_time_waits_and_one_after_it_converges(
    store: OutageStore, clock: FakeClock
) -> None:
    processor = SimulatedProcessor()
    service = service_on(store, clock, processor)
    store.fail_records = True  # the store goes away after the claim: the answer is lost
    with pytest.raises(StoreUnavailableError):
        await service.request_payment(**request())
    store.fail_records = False  # the store is back

    clock.advance(BOUND - 0.001)  # the first call could still be recording its answer
    with pytest.raises(ResponsePendingError):
        await service.request_payment(**request())

    clock.advance(0.001)  # its time is up: the retry finishes the first call's payment
    result = await service.request_payment(**request())
    assert (result.payment.payment_id, result.response, result.replayed) == (
        FIRST_ID,
        SUCCEEDED,
        True,
    )
    assert processor.charges_made == 1  # charged once: the retry got the first charge's outcome
    again = await service.request_payment(**request())
    assert again.payment == result.payment


async def test_a_claim_stored_but_not_acknowledged_is_the_payment_a_retry_gets(
    store: OutageStore, clock: FakeClock
) -> None:
    service = service_on(store, clock)
    store.fail_claims_after_commit = True
    with pytest.raises(StoreUnavailableError):
        await service.request_payment(**request())
    store.fail_claims_after_commit = False
    stored = await store.get("default", FIRST_ID)
    assert stored is not None
    assert stored.first_response is None  # claimed, never charged, never answered

    clock.advance(BOUND)
    result = await service.request_payment(**request())
    assert result.payment.payment_id == stored.payment_id
    assert result.response == SUCCEEDED


async def test_another_replica_takes_over_what_a_failed_call_left(
    store: OutageStore, clock: FakeClock
) -> None:
    first, second = service_on(store, clock), service_on(store, clock)
    store.fail_records = True
    with pytest.raises(StoreUnavailableError):
        await first.request_payment(**request())
    store.fail_records = False
    clock.advance(BOUND)
    result = await second.request_payment(**request())
    assert result.payment.payment_id == FIRST_ID
    assert result.response == SUCCEEDED


async def test_a_first_call_still_deciding_in_this_process_is_never_taken_over(
    store: OutageStore, clock: FakeClock
) -> None:
    processor = CountingHangingProcessor()
    service = service_on(store, clock, processor)
    first = asyncio.ensure_future(service.request_payment(**request()))
    await processor.called.wait()
    clock.advance(BOUND * 10)  # long past its time, but its call is alive here
    replay = asyncio.ensure_future(service.request_payment(**request()))
    processor.release.set()
    answered, replayed = await asyncio.gather(first, replay)
    assert replayed.payment == answered.payment
    assert replayed.response == answered.response
    assert replayed.replayed is True
    assert processor.charges == 1  # the replay waited for the first call; it charged nothing


class CountingHangingProcessor(HangingProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.charges = 0

    async def charge(self, payment: Payment) -> Outcome:
        self.charges += 1
        return await super().charge(payment)
