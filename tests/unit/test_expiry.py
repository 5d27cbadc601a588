"""The expiry timer: purges on its own schedule, in batches, and survives a failing store."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import pytest
from structlog.testing import capture_logs

from payments_service.adapters.stores.memory import InMemoryPaymentRepository
from payments_service.adapters.system import SystemClock
from payments_service.application.expiry import ExpirySweeper
from payments_service.bootstrap import build_service
from payments_service.domain.errors import StoreUnavailableError
from payments_service.domain.model import Payment, PaymentRequest
from tests.conftest import TEST_SETTINGS
from tests.fakes import FakeClock, SequentialIds
from tests.polling import until
from tests.unit.test_memory_repository import SUCCEEDED

TTL = timedelta(seconds=60)


async def filled_store(clock: FakeClock, count: int) -> InMemoryPaymentRepository:
    repository = InMemoryPaymentRepository(ttl=TTL, clock=clock)
    for i in range(count):
        request = PaymentRequest(100, "EUR", "order", f"key-{i}", merchant_id="default")
        now = clock.now()
        await repository.claim(
            Payment(f"pay_{i}", request, request.fingerprint(), now, now, SUCCEEDED, SUCCEEDED)
        )
    return repository


class CountingStore:
    """Wraps a store and records each batch the sweeper asked for and got."""

    def __init__(self, inner: InMemoryPaymentRepository) -> None:
        self.inner = inner
        self.batches: list[int] = []

    async def purge_expired(self, *, limit: int) -> int:
        purged = await self.inner.purge_expired(limit=limit)
        self.batches.append(purged)
        return purged


class FlakyStore:
    """Fails on its first purge (a lost connection), then works."""

    def __init__(self) -> None:
        self.calls = 0

    async def purge_expired(self, *, limit: int) -> int:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("store unreachable")
        return 0


async def test_one_sweep_purges_every_expired_payment_in_batches_of_the_limit(
    clock: FakeClock,
) -> None:
    store = CountingStore(await filled_store(clock, 25))
    clock.advance(TTL.total_seconds())
    assert await ExpirySweeper(store, limit=10).sweep_once() == 25
    assert store.batches == [10, 10, 5]
    assert len(store.inner) == 0


async def test_a_sweep_with_nothing_expired_purges_nothing(clock: FakeClock) -> None:
    store = CountingStore(await filled_store(clock, 3))
    assert await ExpirySweeper(store, limit=10).sweep_once() == 0
    assert len(store.inner) == 3


async def test_the_timer_evicts_expired_payments_without_any_new_claim(clock: FakeClock) -> None:
    repository = await filled_store(clock, 5)
    clock.advance(TTL.total_seconds())
    sweeper = ExpirySweeper(repository, interval=0.01)
    sweeper.start()
    try:
        await until(lambda: len(repository) == 0)
    finally:
        await sweeper.stop()


class UnreachableStore:
    """A store in an outage: every purge fails as a store adapter reports it."""

    def __init__(self) -> None:
        self.calls = 0

    async def purge_expired(self, *, limit: int) -> int:
        self.calls += 1
        raise StoreUnavailableError


@pytest.mark.parametrize(
    ("store", "logged"),
    [
        # An unexpected failure (a lost connection no adapter translated): with its stack.
        (FlakyStore, ("expiry_sweep_failed", "error")),
        # A store error: the outage is reported elsewhere (health, calls), not at each tick.
        (UnreachableStore, ("expiry_sweep_skipped", "debug")),
    ],
    ids=["unexpected", "store-error"],
)
async def test_a_failing_purge_is_logged_and_the_timer_keeps_going(
    store: type[FlakyStore | UnreachableStore], logged: tuple[str, str]
) -> None:
    purger = store()
    sweeper = ExpirySweeper(purger, interval=0.01)
    with capture_logs() as logs:
        sweeper.start()
        try:
            await until(lambda: purger.calls >= 3)
        finally:
            await sweeper.stop()
    assert {(line["event"], line["log_level"]) for line in logs} == {logged}


async def test_stop_ends_the_timer_and_is_safe_to_repeat(clock: FakeClock) -> None:
    sweeper = ExpirySweeper(await filled_store(clock, 1), interval=0.01)
    await sweeper.stop()  # never started: nothing to do
    others = asyncio.all_tasks()
    sweeper.start()
    sweeper.start()  # already running: still the same timer
    (timer,) = asyncio.all_tasks() - others
    await sweeper.stop()
    assert timer.cancelled()
    await sweeper.stop()


@pytest.mark.parametrize(("interval", "limit"), [(0, 10), (-1, 10), (1, 0)])
def test_a_non_positive_interval_or_limit_is_refused(interval: float, limit: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        ExpirySweeper(
            CountingStore(InMemoryPaymentRepository(ttl=TTL, clock=FakeClock())),
            interval=interval,
            limit=limit,
        )


def test_the_system_clock_gives_utc_wall_time_and_a_monotonic_reading() -> None:
    clock = SystemClock()
    first = clock.monotonic()
    assert clock.now().tzinfo is UTC
    assert clock.monotonic() >= first


async def test_the_service_purges_through_its_repository(clock: FakeClock) -> None:
    service = build_service(TEST_SETTINGS, clock=clock, ids=SequentialIds())
    await service.request_payment(
        merchant_id="default",
        amount_minor=100,
        currency="EUR",
        order_id="o",
        idempotency_key="k",
        metadata={},
    )
    clock.advance(TEST_SETTINGS.idempotency_ttl_seconds)
    assert await ExpirySweeper(service).sweep_once() == 1
    assert await ExpirySweeper(service).sweep_once() == 0
