"""Crash recovery on the durable stores: stalled settlements are taken by exactly one process,
then resumed through the idempotent processor or failed once their deadline passed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

import pytest

from payments_service.adapters.simulated_processor import SUCCEEDED, SimulatedProcessor
from payments_service.adapters.stores.postgres import PostgresPaymentRepository
from payments_service.adapters.stores.sqlite import SqlitePaymentRepository
from payments_service.application.recovery import DEADLINE_PASSED, SettlementRecovery
from payments_service.application.service import PROCESSING
from payments_service.domain.model import Outcome, Payment, PaymentRequest, PaymentStatus
from tests.fakes import FailingProcessor, FakeClock
from tests.stores import postgres_schema

TTL = timedelta(hours=1)
LEASE = timedelta(seconds=30)
Repository = SqlitePaymentRepository | PostgresPaymentRepository
Opener = Callable[[], Awaitable[Repository]]


@pytest.fixture(params=["sqlite", "postgresql"])
async def opener(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Opener]:
    """Opens replicas (own thread or own pool) of one database, all with a 30 s lease."""
    async with AsyncExitStack() as stack:
        if request.param == "sqlite":
            path = str(tmp_path / "shared.db")

            async def open_sqlite() -> Repository:
                repository = await SqlitePaymentRepository.open(
                    path, ttl=TTL, clock=clock, lease=LEASE
                )
                stack.push_async_callback(repository.close)
                return repository

            yield open_sqlite
        else:
            location = await stack.enter_async_context(postgres_schema())

            async def open_postgres() -> Repository:
                repository = await PostgresPaymentRepository.open(
                    location.dsn, password=location.password, ttl=TTL, clock=clock, lease=LEASE
                )
                stack.push_async_callback(repository.close)
                return repository

            yield open_postgres


def candidate(clock: FakeClock, number: int) -> Payment:
    request = PaymentRequest(100, "EUR", "o", f"key-{number}", merchant_id="default")
    now = clock.now()
    return Payment(f"pay_{number:032x}", request, request.fingerprint(), now, now, PROCESSING)


async def test_only_pending_payments_past_their_lease_are_taken_and_then_re_leased(
    opener: Opener, clock: FakeClock
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
    opener: Opener, clock: FakeClock
) -> None:
    replicas = [await opener() for _ in range(3)]
    for number in range(30):
        await replicas[0].claim(candidate(clock, number))
    clock.advance(LEASE.total_seconds())
    batches = await asyncio.gather(*(r.take_stalled(limit=7) for r in replicas for _ in range(3)))
    taken = [p.payment_id for batch in batches for p in batch]
    assert len(taken) == len(set(taken)) == 30


async def test_recovery_resumes_a_stalled_payment_and_records_its_first_response(
    opener: Opener, clock: FakeClock
) -> None:
    repository = await opener()
    stalled = candidate(clock, 1)
    await repository.claim(stalled)
    processor = SimulatedProcessor()
    recovery = SettlementRecovery(
        stalled=repository,
        repository=repository,
        processor=processor,
        clock=clock,
        deadline=timedelta(minutes=10),
        charge_timeout=5,
    )
    assert await recovery.recover_once() == 0  # the owner's lease is still running
    clock.advance(LEASE.total_seconds())
    assert await recovery.recover_once() == 1
    resumed = await repository.get("default", stalled.payment_id)
    assert resumed is not None
    assert (resumed.outcome, resumed.first_response) == (SUCCEEDED, SUCCEEDED)
    await processor.charge(stalled)  # charging again returns the same charge
    assert processor.charges_made == 1


async def test_recovery_fails_a_stalled_payment_whose_deadline_passed(
    opener: Opener, clock: FakeClock
) -> None:
    repository = await opener()
    stalled = candidate(clock, 1)
    await repository.claim(stalled)
    processor = SimulatedProcessor()
    recovery = SettlementRecovery(
        stalled=repository,
        repository=repository,
        processor=processor,
        clock=clock,
        deadline=LEASE,
        charge_timeout=5,
    )
    clock.advance(LEASE.total_seconds())
    assert await recovery.recover_once() == 1
    failed = await repository.get("default", stalled.payment_id)
    assert failed is not None
    assert (failed.outcome, failed.first_response) == (DEADLINE_PASSED, DEADLINE_PASSED)
    assert processor.charges_made == 0


async def test_a_processor_failure_leaves_the_payment_for_a_later_round_never_pending_forever(
    opener: Opener, clock: FakeClock
) -> None:
    repository = await opener()
    stalled = candidate(clock, 1)
    await repository.claim(stalled)
    recovery = SettlementRecovery(
        stalled=repository,
        repository=repository,
        processor=FailingProcessor(),
        clock=clock,
        deadline=LEASE * 3,
        charge_timeout=5,
    )
    clock.advance(LEASE.total_seconds())
    assert await recovery.recover_once() == 1
    still = await repository.get("default", stalled.payment_id)
    assert still is not None
    assert still.status is PaymentStatus.PENDING
    clock.advance(LEASE.total_seconds() * 2)  # the new lease ran out, and so did the deadline
    assert await recovery.recover_once() == 1
    final = await repository.get("default", stalled.payment_id)
    assert final is not None
    assert final.outcome == DEADLINE_PASSED


async def test_the_recovery_loop_runs_at_once_and_survives_a_failing_round(
    opener: Opener, clock: FakeClock
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

    recovery = SettlementRecovery(
        stalled=FlakyStalled(),
        repository=repository,
        processor=SimulatedProcessor(),
        clock=clock,
        deadline=timedelta(minutes=10),
        charge_timeout=5,
    )
    running = asyncio.ensure_future(recovery.run(interval=0.01))
    try:
        await asyncio.wait_for(rounds.wait(), timeout=5)
    finally:
        running.cancel()
    assert FlakyStalled.calls >= 2
