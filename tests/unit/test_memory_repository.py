"""The in-memory repository: atomic claim, retention for the TTL, bounded memory."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from payments_service.domain.errors import PaymentNotFoundError
from payments_service.domain.model import Outcome, Payment, PaymentRequest, PaymentStatus
from payments_service.storage.memory import InMemoryPaymentRepository
from tests.fakes import FakeClock

TTL = timedelta(hours=24)
PENDING = Outcome(PaymentStatus.PENDING, "processing")
SUCCEEDED = Outcome(PaymentStatus.SUCCEEDED, "ok")
FAILED = Outcome(PaymentStatus.FAILED, "declined")


def make_payment(
    clock: FakeClock, payment_id: str, key: str = "key-1", *, settled: bool = True
) -> Payment:
    """A payment as the store sees it: finished (outcome and first answer recorded) unless
    `settled=False`, which leaves it PENDING with no first answer, as right after a claim."""
    request = PaymentRequest(1250, "EUR", "order-42", key)
    now = clock.now()
    if settled:
        return Payment(payment_id, request, request.fingerprint(), now, now, SUCCEEDED, SUCCEEDED)
    return Payment(payment_id, request, request.fingerprint(), now, now, PENDING)


@pytest.fixture
def repository(clock: FakeClock) -> InMemoryPaymentRepository:
    return InMemoryPaymentRepository(ttl=TTL, clock=clock)


async def test_first_claim_creates_and_later_claims_return_the_same_payment(
    repository: InMemoryPaymentRepository, clock: FakeClock
) -> None:
    first = await repository.claim(make_payment(clock, "pay_1"))
    second = await repository.claim(make_payment(clock, "pay_2"))
    assert (first.created, second.created) == (True, False)
    assert second.payment.payment_id == "pay_1"
    assert await repository.get("pay_2") is None
    assert len(repository) == 1


async def test_concurrent_claims_of_one_key_create_exactly_one(
    repository: InMemoryPaymentRepository, clock: FakeClock
) -> None:
    claims = await asyncio.gather(
        *(repository.claim(make_payment(clock, f"pay_{i}")) for i in range(100))
    )
    assert sum(claim.created for claim in claims) == 1
    assert {claim.payment.payment_id for claim in claims} == {"pay_0"}


async def test_outcome_is_final_and_first_response_is_write_once(
    repository: InMemoryPaymentRepository, clock: FakeClock
) -> None:
    await repository.claim(make_payment(clock, "pay_1", settled=False))
    answered = await repository.record("pay_1", at=clock.now(), first_response=PENDING)
    assert (answered.outcome, answered.first_response) == (PENDING, PENDING)
    clock.advance(1)
    settled = await repository.record("pay_1", at=clock.now(), outcome=SUCCEEDED)
    assert settled.updated_at == clock.now()
    again = await repository.record(
        "pay_1", at=clock.now(), outcome=FAILED, first_response=SUCCEEDED
    )
    assert (again.outcome, again.first_response) == (SUCCEEDED, PENDING)
    assert await repository.get("pay_1") == again


async def test_recording_on_an_unknown_payment_raises_not_found(
    repository: InMemoryPaymentRepository, clock: FakeClock
) -> None:
    with pytest.raises(PaymentNotFoundError):
        await repository.record("pay_missing", at=clock.now(), outcome=SUCCEEDED)


async def test_a_key_is_remembered_until_the_ttl_then_starts_a_new_payment(
    repository: InMemoryPaymentRepository, clock: FakeClock
) -> None:
    await repository.claim(make_payment(clock, "pay_1"))
    clock.advance(TTL.total_seconds() - 1)
    assert not (await repository.claim(make_payment(clock, "pay_2"))).created
    assert await repository.get("pay_1") is not None
    clock.advance(1)
    assert await repository.get("pay_1") is None
    renewed = await repository.claim(make_payment(clock, "pay_3"))
    assert renewed.created
    assert renewed.payment.payment_id == "pay_3"


async def test_memory_stays_bounded_by_rate_times_ttl(
    repository: InMemoryPaymentRepository, clock: FakeClock
) -> None:
    # One payment per minute for three days with a 24 h TTL: never more than 24 h worth held.
    per_day = 24 * 60
    peak = 0
    for i in range(3 * per_day):
        await repository.claim(make_payment(clock, f"pay_{i}", key=f"key-{i}"))
        peak = max(peak, len(repository))
        clock.advance(60)
    assert peak == per_day
    assert len(repository) == per_day


async def test_a_payment_still_settling_is_never_evicted_by_a_short_ttl(
    repository: InMemoryPaymentRepository, clock: FakeClock
) -> None:
    await repository.claim(make_payment(clock, "pay_1", settled=False))
    clock.advance(TTL.total_seconds() + 1)
    await repository.claim(make_payment(clock, "pay_2", key="key-2"))  # triggers eviction
    settled = await repository.record(
        "pay_1", at=clock.now(), outcome=SUCCEEDED, first_response=SUCCEEDED
    )
    assert settled.status is PaymentStatus.SUCCEEDED
    await repository.claim(make_payment(clock, "pay_3", key="key-3"))
    assert await repository.get("pay_1") is None
    assert len(repository) == 2  # pay_1 evicted once settled; pay_2 and pay_3 remain
