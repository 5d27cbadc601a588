"""The in-memory repository: atomic claim, retention for the TTL, bounded memory."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from payments_service.adapters.stores.memory import InMemoryPaymentRepository
from payments_service.domain.errors import PaymentNotFoundError
from payments_service.domain.model import Outcome, Payment, PaymentRequest, PaymentStatus
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
    request = PaymentRequest(1250, "EUR", "order-42", key, merchant_id="default")
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
    assert await repository.get("default", "pay_2") is None
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
    assert await repository.get("default", "pay_1") == again


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
    assert await repository.get("default", "pay_1") is not None
    clock.advance(1)
    assert await repository.get("default", "pay_1") is None
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
    assert await repository.get("default", "pay_1") is None
    assert len(repository) == 2  # pay_1 evicted once settled; pay_2 and pay_3 remain


async def finish(repository: InMemoryPaymentRepository, clock: FakeClock, payment_id: str) -> None:
    await repository.record(payment_id, at=clock.now(), outcome=SUCCEEDED, first_response=SUCCEEDED)


@pytest.mark.parametrize(
    ("elapsed", "alive"),
    [(TTL.total_seconds() - 1, True), (TTL.total_seconds(), False)],
)
async def test_get_and_a_replay_agree_behind_a_settling_head(
    repository: InMemoryPaymentRepository, clock: FakeClock, elapsed: float, alive: bool
) -> None:
    # The audit's case: the oldest payment is still settling, a finished one sits behind it.
    await repository.claim(make_payment(clock, "pay_1", settled=False))
    await repository.claim(make_payment(clock, "pay_2", key="key-2"))
    clock.advance(elapsed)
    found = await repository.get("default", "pay_2")
    claim = await repository.claim(make_payment(clock, "pay_3", key="key-2"))
    assert (found is not None, not claim.created) == (alive, alive)
    assert claim.payment.payment_id == ("pay_2" if alive else "pay_3")


async def test_a_replay_after_expiry_never_returns_what_get_no_longer_finds(
    repository: InMemoryPaymentRepository, clock: FakeClock
) -> None:
    # The other order: the claim comes first, then the lookup; still one answer.
    await repository.claim(make_payment(clock, "pay_1", settled=False))
    await repository.claim(make_payment(clock, "pay_2", key="key-2"))
    clock.advance(TTL.total_seconds())
    assert (await repository.claim(make_payment(clock, "pay_3", key="key-2"))).created
    assert await repository.get("default", "pay_2") is None


async def test_a_settling_head_does_not_block_eviction_of_finished_payments_behind_it(
    repository: InMemoryPaymentRepository, clock: FakeClock
) -> None:
    await repository.claim(make_payment(clock, "pay_1", settled=False))
    for i in range(2, 5):
        await repository.claim(make_payment(clock, f"pay_{i}", key=f"key-{i}"))
    clock.advance(TTL.total_seconds() + 1)
    assert await repository.purge_expired(limit=100) == 3
    assert len(repository) == 1
    assert await repository.get("default", "pay_1") is not None  # still settling: kept
    await finish(repository, clock, "pay_1")
    assert len(repository) == 0  # evicted the moment it finished
    assert await repository.get("default", "pay_1") is None


async def test_a_settling_payment_past_its_deadline_still_replays_and_records(
    repository: InMemoryPaymentRepository, clock: FakeClock
) -> None:
    await repository.claim(make_payment(clock, "pay_1", settled=False))
    clock.advance(TTL.total_seconds() + 1)
    await repository.purge_expired(limit=10)
    assert not (await repository.claim(make_payment(clock, "pay_2"))).created
    answered = await repository.record("pay_1", at=clock.now(), first_response=PENDING)
    assert answered.first_response == PENDING
    assert len(repository) == 1  # answered but not settled: not finished, so kept


@pytest.mark.parametrize("step_seconds", [2 * TTL.total_seconds(), -2 * TTL.total_seconds()])
async def test_a_wall_clock_step_neither_expires_a_key_early_nor_late(
    repository: InMemoryPaymentRepository, clock: FakeClock, step_seconds: float
) -> None:
    await repository.claim(make_payment(clock, "pay_1"))
    clock.step_wall_clock(step_seconds)  # NTP step or `date -s`: monotonic time does not move
    assert await repository.purge_expired(limit=10) == 0
    assert await repository.get("default", "pay_1") is not None
    assert not (await repository.claim(make_payment(clock, "pay_2"))).created
    clock.advance(TTL.total_seconds())  # real time passes: the TTL is measured on it alone
    assert await repository.get("default", "pay_1") is None
    assert (await repository.claim(make_payment(clock, "pay_3"))).created


async def test_created_at_stays_wall_clock_time(
    repository: InMemoryPaymentRepository, clock: FakeClock
) -> None:
    clock.step_wall_clock(3600)
    claim = await repository.claim(make_payment(clock, "pay_1"))
    assert claim.payment.created_at == clock.now()


async def test_purge_expired_deletes_at_most_limit_per_call(
    repository: InMemoryPaymentRepository, clock: FakeClock
) -> None:
    for i in range(10):
        await repository.claim(make_payment(clock, f"pay_{i}", key=f"key-{i}"))
    clock.advance(TTL.total_seconds())
    batches = [await repository.purge_expired(limit=4) for _ in range(4)]
    assert batches == [4, 4, 2, 0]
    assert len(repository) == 0


@pytest.mark.parametrize("limit", [0, -1])
async def test_purge_expired_with_a_non_positive_limit_deletes_nothing(
    repository: InMemoryPaymentRepository, clock: FakeClock, limit: int
) -> None:
    await repository.claim(make_payment(clock, "pay_1"))
    clock.advance(TTL.total_seconds())
    assert await repository.purge_expired(limit=limit) == 0
    assert len(repository) == 1


async def test_purge_expired_keeps_payments_inside_their_retention(
    repository: InMemoryPaymentRepository, clock: FakeClock
) -> None:
    await repository.claim(make_payment(clock, "pay_1"))
    clock.advance(TTL.total_seconds() - 1)
    await repository.claim(make_payment(clock, "pay_2", key="key-2"))
    clock.advance(1)
    assert await repository.purge_expired(limit=10) == 1
    assert await repository.get("default", "pay_2") is not None


async def test_recording_on_an_expired_payment_raises_not_found(
    repository: InMemoryPaymentRepository, clock: FakeClock
) -> None:
    await repository.claim(make_payment(clock, "pay_1"))
    clock.advance(TTL.total_seconds())
    with pytest.raises(PaymentNotFoundError):
        await repository.record("pay_1", at=clock.now(), outcome=FAILED)


async def test_a_key_whose_payment_expired_starts_a_new_payment_even_before_eviction(
    repository: InMemoryPaymentRepository, clock: FakeClock
) -> None:
    # More expired payments than one claim evicts: the key's own entry is still in memory
    # when the claim looks it up, and the rule alone decides.
    for i in range(20):
        await repository.claim(make_payment(clock, f"pay_{i}", key=f"key-{i}"))
    clock.advance(TTL.total_seconds())
    renewed = await repository.claim(make_payment(clock, "pay_new", key="key-19"))
    assert (renewed.created, renewed.payment.payment_id) == (True, "pay_new")
    assert await repository.get("default", "pay_19") is None
