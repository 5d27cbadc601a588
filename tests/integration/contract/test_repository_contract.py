"""The PaymentRepository contract (domain/ports.py), run against every store: memory, SQLite
and PostgreSQL. A new store joins by adding itself to tests/stores.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from payments_service.domain.errors import PaymentNotFoundError
from payments_service.domain.model import Outcome, Payment, PaymentRequest, PaymentStatus
from payments_service.domain.ports import PaymentRepository
from tests.fakes import FakeClock
from tests.stores import STORES, open_repository

TTL = timedelta(minutes=10)
PENDING = Outcome(PaymentStatus.PENDING, "processing")
ACCEPTED = Outcome(PaymentStatus.PENDING, "accepted; poll GetPayment")
SUCCEEDED = Outcome(PaymentStatus.SUCCEEDED, "ok")
FAILED = Outcome(PaymentStatus.FAILED, "declined")


@pytest.fixture(params=STORES)
async def repository(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[PaymentRepository]:
    async with open_repository(request.param, tmp_path, clock, TTL) as opened:
        yield opened


def candidate(
    clock: FakeClock,
    payment_id: str,
    key: str = "key-1",
    metadata: dict[str, str] | None = None,
    *,
    merchant: str = "default",
    amount_minor: int = 1250,
) -> Payment:
    """A payment as the service claims it: PENDING, no first response yet."""
    request = PaymentRequest(
        amount_minor, "EUR", "order-42", key, metadata or {}, merchant_id=merchant
    )
    now = clock.now()
    return Payment(payment_id, request, request.fingerprint(), now, now, PENDING)


async def finish(repository: PaymentRepository, payment_id: str, clock: FakeClock) -> Payment:
    return await repository.record(
        payment_id, at=clock.now(), outcome=SUCCEEDED, first_response=SUCCEEDED
    )


async def test_of_many_concurrent_claims_of_one_key_exactly_one_creates(
    repository: PaymentRepository, clock: FakeClock
) -> None:
    claims = await asyncio.gather(
        *(repository.claim(candidate(clock, f"pay_{i:032x}")) for i in range(64))
    )
    assert sum(claim.created for claim in claims) == 1
    (winner,) = [claim.payment for claim in claims if claim.created]
    assert all(claim.payment == winner for claim in claims)
    assert await repository.get("default", winner.payment_id) == winner


async def test_a_later_claim_returns_the_stored_payment_field_for_field(
    repository: PaymentRepository, clock: FakeClock
) -> None:
    metadata = {"note": "café ☕", "simulate": "slow", "empty": "", "nul": "a\x00b"}
    first = await repository.claim(candidate(clock, "pay_1", metadata=metadata))
    clock.advance(5)
    again = await repository.claim(candidate(clock, "pay_2"))
    assert (first.created, again.created) == (True, False)
    assert again.payment == first.payment
    assert again.payment.created_at == first.payment.created_at  # to the microsecond
    assert dict(again.payment.request.metadata) == metadata
    assert await repository.get("default", "pay_2") is None


async def test_the_outcome_is_final_and_the_first_response_is_write_once(
    repository: PaymentRepository, clock: FakeClock
) -> None:
    await repository.claim(candidate(clock, "pay_1"))
    answered = await repository.record("pay_1", at=clock.now(), first_response=ACCEPTED)
    assert (answered.outcome, answered.first_response) == (PENDING, ACCEPTED)
    clock.advance(1)
    settled = await repository.record("pay_1", at=clock.now(), outcome=SUCCEEDED)
    assert (settled.outcome, settled.updated_at) == (SUCCEEDED, clock.now())
    clock.advance(1)
    late = await repository.record("pay_1", at=clock.now(), outcome=FAILED, first_response=FAILED)
    assert (late.outcome, late.first_response) == (SUCCEEDED, ACCEPTED)
    assert late.updated_at == settled.updated_at
    assert await repository.get("default", "pay_1") == late


async def test_concurrent_writers_see_one_winner_for_outcome_and_first_response(
    repository: PaymentRepository, clock: FakeClock
) -> None:
    await repository.claim(candidate(clock, "pay_1"))
    outcomes = [Outcome(PaymentStatus.FAILED, f"writer {i}") for i in range(20)]
    results = await asyncio.gather(
        *(repository.record("pay_1", at=clock.now(), outcome=o, first_response=o) for o in outcomes)
    )
    stored = await repository.get("default", "pay_1")
    assert stored is not None
    assert stored.outcome in outcomes
    assert stored.first_response == stored.outcome
    # Every writer got the row as it stands after its own update: the winner's values.
    assert all(r.outcome == stored.outcome for r in results)
    assert all(r.first_response == stored.first_response for r in results)


async def test_get_of_an_unknown_id_is_none(repository: PaymentRepository) -> None:
    assert await repository.get("default", "pay_" + "f" * 32) is None


@pytest.mark.parametrize("fields", [{"outcome": SUCCEEDED}, {"first_response": ACCEPTED}])
async def test_record_of_an_unknown_id_raises_not_found(
    repository: PaymentRepository, clock: FakeClock, fields: dict[str, Outcome]
) -> None:
    with pytest.raises(PaymentNotFoundError):
        await repository.record("pay_" + "f" * 32, at=clock.now(), **fields)


async def test_a_key_is_remembered_for_the_ttl_then_a_claim_creates_a_new_payment(
    repository: PaymentRepository, clock: FakeClock
) -> None:
    await repository.claim(candidate(clock, "pay_1"))
    await finish(repository, "pay_1", clock)
    clock.advance(TTL.total_seconds() - 1)
    assert not (await repository.claim(candidate(clock, "pay_2"))).created
    assert await repository.get("default", "pay_1") is not None
    clock.advance(1)
    assert await repository.get("default", "pay_1") is None
    renewed = await repository.claim(candidate(clock, "pay_3"))
    assert (renewed.created, renewed.payment.payment_id) == (True, "pay_3")
    assert await repository.get("default", "pay_3") == renewed.payment


async def test_a_payment_still_settling_outlives_its_ttl(
    repository: PaymentRepository, clock: FakeClock
) -> None:
    await repository.claim(candidate(clock, "pay_1"))
    clock.advance(TTL.total_seconds() + 1)
    assert await repository.purge_expired(limit=10) == 0
    assert not (await repository.claim(candidate(clock, "pay_2"))).created
    assert await repository.get("default", "pay_1") is not None
    await finish(repository, "pay_1", clock)
    assert await repository.get("default", "pay_1") is None
    # Finished and past its TTL: gone at once (memory) or at the next purge (SQL stores).
    assert await repository.purge_expired(limit=10) in (0, 1)
    assert (await repository.claim(candidate(clock, "pay_3"))).created


async def test_purge_expired_deletes_finished_expired_payments_in_bounded_batches(
    repository: PaymentRepository, clock: FakeClock
) -> None:
    for i in range(5):
        await repository.claim(candidate(clock, f"pay_old{i}", key=f"old-{i}"))
        await finish(repository, f"pay_old{i}", clock)
    await repository.claim(candidate(clock, "pay_unanswered", key="unanswered"))
    await repository.record("pay_unanswered", at=clock.now(), outcome=SUCCEEDED)
    clock.advance(TTL.total_seconds() / 2)
    await repository.claim(candidate(clock, "pay_new", key="new"))
    await finish(repository, "pay_new", clock)
    clock.advance(TTL.total_seconds() / 2)  # no claim after this: memory evicts on claim

    assert await repository.purge_expired(limit=2) == 2
    assert await repository.purge_expired(limit=10) == 3
    assert await repository.purge_expired(limit=10) == 0
    for i in range(5):
        assert await repository.get("default", f"pay_old{i}") is None
    # No first response recorded: not finished, so kept; the newer payment is within its TTL.
    assert await repository.get("default", "pay_unanswered") is not None
    assert await repository.get("default", "pay_new") is not None


# Tenancy: a payment belongs to its merchant; keys are unique per merchant, reads are scoped.


async def test_two_merchants_claiming_one_key_get_two_independent_payments(
    repository: PaymentRepository, clock: FakeClock
) -> None:
    alice = await repository.claim(candidate(clock, "pay_alice", merchant="alice"))
    bob = await repository.claim(candidate(clock, "pay_bob", merchant="bob"))
    assert (alice.created, bob.created) == (True, True)
    assert (alice.payment.merchant_id, bob.payment.merchant_id) == ("alice", "bob")
    await finish(repository, "pay_alice", clock)
    # Each merchant's key still names its own payment.
    again = await repository.claim(candidate(clock, "pay_bob_2", merchant="bob"))
    assert (again.created, again.payment.payment_id) == (False, "pay_bob")
    stored = await repository.get("alice", "pay_alice")
    assert stored is not None
    assert (stored.merchant_id, stored.status) == ("alice", PaymentStatus.SUCCEEDED)


async def test_of_concurrent_claims_of_one_key_by_two_merchants_one_per_merchant_creates(
    repository: PaymentRepository, clock: FakeClock
) -> None:
    merchants = ("alice", "bob")
    claims = await asyncio.gather(
        *(
            repository.claim(candidate(clock, f"pay_{i:032x}", merchant=merchants[i % 2]))
            for i in range(40)
        )
    )
    for merchant in merchants:
        mine = [c for c in claims if c.payment.merchant_id == merchant]
        assert len(mine) == 20
        assert sum(c.created for c in mine) == 1
        assert len({c.payment.payment_id for c in mine}) == 1


@pytest.mark.parametrize("finished", [False, True], ids=["pending", "finished"])
async def test_get_of_another_merchants_payment_is_none_like_an_unknown_id(
    repository: PaymentRepository, clock: FakeClock, finished: bool
) -> None:
    await repository.claim(candidate(clock, "pay_alice", merchant="alice"))
    if finished:
        await finish(repository, "pay_alice", clock)
    assert await repository.get("bob", "pay_alice") is None
    assert await repository.get("default", "pay_alice") is None
    assert await repository.get("bob", "pay_" + "f" * 32) is None
    owned = await repository.get("alice", "pay_alice")
    assert owned is not None  # looking from elsewhere changed nothing
    assert owned.merchant_id == "alice"


async def test_a_conflicting_payload_meets_only_the_same_merchants_payment(
    repository: PaymentRepository, clock: FakeClock
) -> None:
    original = await repository.claim(candidate(clock, "pay_alice", merchant="alice"))
    # Another merchant's different payload under the same key: a new payment of its own.
    other = await repository.claim(candidate(clock, "pay_bob", merchant="bob", amount_minor=9))
    assert (other.created, other.payment.payment_id) == (True, "pay_bob")
    # The same merchant's different payload: the store returns that merchant's payment, whose
    # fingerprint differs: what the service answers ALREADY_EXISTS.
    clash = await repository.claim(candidate(clock, "pay_x", merchant="alice", amount_minor=9))
    assert (clash.created, clash.payment) == (False, original.payment)
    assert clash.payment.fingerprint != other.payment.fingerprint


async def test_one_merchants_key_expiring_leaves_another_merchants_payment_alone(
    repository: PaymentRepository, clock: FakeClock
) -> None:
    await repository.claim(candidate(clock, "pay_alice", merchant="alice"))
    await finish(repository, "pay_alice", clock)
    clock.advance(TTL.total_seconds() / 2)
    await repository.claim(candidate(clock, "pay_bob", merchant="bob"))
    await finish(repository, "pay_bob", clock)
    clock.advance(TTL.total_seconds() / 2)
    renewed = await repository.claim(candidate(clock, "pay_alice_2", merchant="alice"))
    assert (renewed.created, renewed.payment.payment_id) == (True, "pay_alice_2")
    replay = await repository.claim(candidate(clock, "pay_bob_2", merchant="bob"))
    assert (replay.created, replay.payment.payment_id) == (False, "pay_bob")
