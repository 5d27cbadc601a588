"""Crash recovery on the durable stores: stalled settlements are taken by exactly one process,
then resumed through the idempotent processor or failed once their deadline passed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from payments_service.adapters.simulated_processor import SUCCEEDED, SimulatedProcessor
from payments_service.application.recovery import DEADLINE_PASSED, SettlementRecovery
from payments_service.application.service import PROCESSING
from payments_service.domain.model import Outcome, Payment, PaymentRequest, PaymentStatus
from payments_service.domain.ports import PaymentProcessor, StalledSettlements
from payments_service.observability.metrics import register_sampled, settlement_series
from tests.fakes import FailingProcessor, FakeClock
from tests.stores import LEASE, Replicas, SqlRepository, replica_opener

TTL = timedelta(hours=1)
Repository = SqlRepository


@pytest.fixture(params=["sqlite", "postgresql"])
async def opener(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Replicas]:
    """Opens replicas (own thread or own pool) of one database."""
    async with replica_opener(request.param, tmp_path, clock, TTL) as open_one:
        yield open_one


def recovery_of(
    repository: Repository,
    clock: FakeClock,
    *,
    processor: PaymentProcessor,
    deadline: timedelta = timedelta(minutes=10),
    stalled: StalledSettlements | None = None,
) -> SettlementRecovery:
    """Crash recovery over `repository` (and, unless given, its own stalled settlements)."""
    return SettlementRecovery(
        stalled=repository if stalled is None else stalled,
        repository=repository,
        processor=processor,
        clock=clock,
        deadline=deadline,
        charge_timeout=5,
    )


async def stored(repository: Repository, payment: Payment) -> Payment:
    """`payment` as the store holds it now (it must be there)."""
    found = await repository.get(payment.merchant_id, payment.payment_id)
    assert found is not None
    return found


def candidate(clock: FakeClock, number: int) -> Payment:
    request = PaymentRequest(100, "EUR", "o", f"key-{number}", merchant_id="default")
    now = clock.now()
    return Payment(f"pay_{number:032x}", request, request.fingerprint(), now, now, PROCESSING)


async def test_only_pending_payments_past_their_lease_are_taken_and_then_re_leased(
    opener: Replicas, clock: FakeClock
) -> None:
    repository = await opener()
    for number in range(3):
        await repository.claim(candidate(clock, number))
    settled = Outcome(PaymentStatus.SUCCEEDED, "ok")
    await repository.record(candidate(clock, 2).payment_id, at=clock.now(), outcome=settled)
    assert await repository.take_stalled(limit=10) == []  # leases still running
    clock.advance(LEASE.total_seconds())
    taken = await repository.take_stalled(limit=10)
    assert sorted(p.payment_id for p in taken) == [candidate(clock, n).payment_id for n in (0, 1)]
    assert await repository.take_stalled(limit=10) == []  # re-leased to the taker
    clock.advance(LEASE.total_seconds())
    assert len(await repository.take_stalled(limit=1)) == 1  # bounded batch


async def test_replicas_taking_stalled_payments_at_once_never_share_one(
    opener: Replicas, clock: FakeClock
) -> None:
    replicas = [await opener() for _ in range(3)]
    for number in range(30):
        await replicas[0].claim(candidate(clock, number))
    clock.advance(LEASE.total_seconds())
    batches = await asyncio.gather(*(r.take_stalled(limit=7) for r in replicas for _ in range(3)))
    taken = [p.payment_id for batch in batches for p in batch]
    assert len(taken) == len(set(taken)) == 30


async def test_recovery_resumes_a_stalled_payment_and_records_its_first_response(
    opener: Replicas, clock: FakeClock
) -> None:
    repository = await opener()
    stalled = candidate(clock, 1)
    await repository.claim(stalled)
    processor = SimulatedProcessor()
    recovery = recovery_of(repository, clock, processor=processor)
    assert await recovery.recover_once() == 0  # the owner's lease is still running
    clock.advance(LEASE.total_seconds())
    assert await recovery.recover_once() == 1
    resumed = await stored(repository, stalled)
    assert (resumed.outcome, resumed.first_response) == (SUCCEEDED, SUCCEEDED)
    assert processor.charge(stalled) == SUCCEEDED  # charging again returns the same charge
    assert processor.charges_made == 1


async def test_recovery_fails_a_stalled_payment_whose_deadline_passed(
    opener: Replicas, clock: FakeClock
) -> None:
    repository = await opener()
    stalled = candidate(clock, 1)
    await repository.claim(stalled)
    processor = SimulatedProcessor()
    recovery = recovery_of(repository, clock, processor=processor, deadline=LEASE)
    clock.advance(LEASE.total_seconds())
    assert await recovery.recover_once() == 1
    failed = await stored(repository, stalled)
    assert (failed.outcome, failed.first_response) == (DEADLINE_PASSED, DEADLINE_PASSED)
    assert processor.charges_made == 0


async def test_a_processor_failure_leaves_the_payment_for_a_later_round_never_pending_forever(
    opener: Replicas, clock: FakeClock
) -> None:
    repository = await opener()
    stalled = candidate(clock, 1)
    await repository.claim(stalled)
    recovery = recovery_of(repository, clock, processor=FailingProcessor(), deadline=LEASE * 3)
    clock.advance(LEASE.total_seconds())
    assert await recovery.recover_once() == 1
    still = await stored(repository, stalled)
    assert still.status is PaymentStatus.PENDING
    clock.advance(LEASE.total_seconds() * 2)  # the new lease ran out, and so did the deadline
    assert await recovery.recover_once() == 1
    final = await stored(repository, stalled)
    assert final.outcome == DEADLINE_PASSED


async def test_the_recovery_loop_runs_at_once_and_survives_a_failing_round(
    opener: Replicas, clock: FakeClock
) -> None:
    repository = await opener()
    await repository.claim(candidate(clock, 1))
    clock.advance(LEASE.total_seconds())
    rounds = asyncio.Event()

    class FlakyStalled:
        calls = 0

        async def take_stalled(self, *, limit: int) -> list[Payment]:
            FlakyStalled.calls += 1
            if FlakyStalled.calls == 1:
                raise ConnectionError("database restarting")
            rounds.set()
            return await repository.take_stalled(limit=limit)

        async def oldest_pending(self) -> datetime | None:
            return await repository.oldest_pending()

    recovery = recovery_of(
        repository, clock, processor=SimulatedProcessor(), stalled=FlakyStalled()
    )
    running = asyncio.ensure_future(recovery.run(interval=0.01))
    try:
        await asyncio.wait_for(rounds.wait(), timeout=5)
    finally:
        running.cancel()
    assert FlakyStalled.calls >= 2


async def test_each_round_measures_the_oldest_pending_payment_for_its_gauge(
    opener: Replicas, clock: FakeClock
) -> None:
    repository = await opener()
    recovery = recovery_of(repository, clock, processor=SimulatedProcessor())
    registry = CollectorRegistry()
    register_sampled(registry, settlement_series(recovery.oldest_pending_age, 600.0))

    def gauges() -> tuple[float | None, float | None]:
        return (
            registry.get_sample_value("payments_pending_oldest_age_seconds"),
            registry.get_sample_value("payments_settlement_deadline_seconds"),
        )

    await recovery.measure()
    assert gauges() == (0.0, 600.0)  # nothing PENDING
    first = candidate(clock, 1)
    await repository.claim(first)
    clock.advance(30)
    second = candidate(clock, 2)
    await repository.claim(second)
    clock.advance(10)
    await recovery.measure()
    assert gauges() == (40.0, 600.0)
    clock.advance(5)  # between rounds the age keeps growing from the last reading
    assert gauges() == (45.0, 600.0)
    await repository.record(first.payment_id, at=clock.now(), outcome=SUCCEEDED)
    await recovery.measure()
    assert gauges() == (15.0, 600.0)  # a settled payment no longer counts
    await repository.record(second.payment_id, at=clock.now(), outcome=SUCCEEDED)
    await recovery.measure()
    assert gauges() == (0.0, 600.0)
