"""The PostgreSQL store's connection lender, with fake connections: bounded, fair to waiters,
never losing a connection to a cancellation, dropping what it cannot trust, and never
reconnecting in a tight loop to a database that refuses."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from payments_service.adapters.stores.backoff import Backoff
from payments_service.adapters.stores.connections import (
    ConnectionLender,
    LenderClosedError,
    NoConnectionError,
)


class FakeConnection:
    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False
        self.terminated = False

    def is_closed(self) -> bool:
        return self.closed or self.terminated

    def terminate(self) -> None:
        self.terminated = True

    async def close(self, *, timeout: float | None = None) -> None:
        self.closed = True


class FakeDatabase:
    """Opens numbered fake connections; `refuse` makes the next opens fail."""

    def __init__(self) -> None:
        self.numbers = itertools.count(1)
        self.opened: list[FakeConnection] = []
        self.refuse = 0

    async def connect(self) -> FakeConnection:
        if self.refuse:
            self.refuse -= 1
            raise ConnectionRefusedError("database down")
        connection = FakeConnection(next(self.numbers))
        self.opened.append(connection)
        return connection


class Clock:
    """The lender's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lender(
    database: FakeDatabase,
    max_size: int,
    clock: Clock | None = None,
    *,
    wait_timeout: float | None = None,
) -> ConnectionLender[FakeConnection]:
    # No jitter (random() = 1): the delays are exactly 0.1, 0.2, 0.4 ... 2.0 s.
    return ConnectionLender(
        database.connect,
        max_size=max_size,
        wait_timeout=wait_timeout,
        backoff=Backoff(random=lambda: 1.0),
        monotonic=clock or Clock(),
    )


async def queue_waiters(
    pool: ConnectionLender[FakeConnection], count: int
) -> list[asyncio.Task[FakeConnection]]:
    """Start `count` acquires and return once each is queued as a waiter. asyncio runs ready
    callbacks in FIFO order, so a callback scheduled after the tasks runs after their first
    steps: a deterministic hand-over, not a timed wait."""
    tasks = [asyncio.ensure_future(pool.acquire()) for _ in range(count)]
    loop = asyncio.get_running_loop()
    started = loop.create_future()
    loop.call_soon(started.set_result, None)
    await started
    assert pool.waiting == count
    return tasks


async def test_connections_open_on_demand_up_to_max_size_and_are_reused_lifo() -> None:
    database = FakeDatabase()
    pool = lender(database, max_size=2)
    first, second = await pool.acquire(), await pool.acquire()
    assert (pool.size, pool.idle) == (2, 0)
    pool.release(first)
    pool.release(second)
    assert (pool.size, pool.idle) == (2, 2)
    assert await pool.acquire() is second  # the most recently used
    assert len(database.opened) == 2


async def test_a_released_connection_goes_to_the_longest_waiter() -> None:
    pool = lender(FakeDatabase(), max_size=1)
    only = await pool.acquire()
    early, late = await queue_waiters(pool, 2)
    pool.release(only)
    assert await early is only
    assert not late.done()
    pool.release(only)
    assert await late is only


@pytest.mark.parametrize("closed_by_server", [False, True])
async def test_an_untrusted_connection_is_dropped_and_its_slot_goes_to_a_waiter(
    closed_by_server: bool,
) -> None:
    database = FakeDatabase()
    pool = lender(database, max_size=1)
    broken = await pool.acquire()
    (waiter,) = await queue_waiters(pool, 1)
    if closed_by_server:
        broken.closed = True
        pool.release(broken)
    else:
        pool.release(broken, reusable=False)
    replacement = await waiter
    assert replacement is not broken
    assert broken.is_closed()
    assert (pool.size, len(database.opened)) == (1, 2)


async def test_a_cancelled_waiter_loses_nobody_a_connection() -> None:
    pool = lender(FakeDatabase(), max_size=1)
    only = await pool.acquire()
    (waiter,) = await queue_waiters(pool, 1)
    pool.release(only)  # handed to the waiter ...
    waiter.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (pool.size, pool.idle) == (1, 1)
    assert await pool.acquire() is only


async def test_a_failed_open_frees_its_slot() -> None:
    database, clock = FakeDatabase(), Clock()
    pool = lender(database, max_size=1, clock=clock)
    database.refuse = 1
    with pytest.raises(ConnectionRefusedError):
        await pool.acquire()
    assert pool.size == 0
    clock.now += 0.1  # the backoff
    assert (await pool.acquire()).number == 1


async def test_after_a_failed_connect_none_is_tried_until_its_backoff_which_doubles() -> None:
    database, clock = FakeDatabase(), Clock()
    pool = lender(database, max_size=2, clock=clock)
    database.refuse = 3
    attempts = 0
    for delay in (0.1, 0.2, 0.4):
        with pytest.raises(ConnectionRefusedError):
            await pool.acquire()
        attempts += 1
        for _ in range(5):  # every acquire meanwhile fails at once, without connecting
            with pytest.raises(NoConnectionError, match="the last connect failed"):
                await pool.acquire()
        clock.now += delay - 0.001
        with pytest.raises(NoConnectionError):
            await pool.acquire()
        clock.now += 0.001
    assert (database.refuse, pool.size) == (0, 0)  # three connects tried, no more
    first = await pool.acquire()  # the database is back: connected, and the backoff reset
    database.refuse = 1
    with pytest.raises(ConnectionRefusedError):
        await pool.acquire()
    clock.now += 0.1  # the first delay again
    second = await pool.acquire()
    assert (first.number, second.number, attempts) == (1, 2, 3)


async def test_a_database_known_reachable_again_ends_the_backoff() -> None:
    database, clock = FakeDatabase(), Clock()
    pool = lender(database, max_size=1, clock=clock)
    database.refuse = 1
    with pytest.raises(ConnectionRefusedError):
        await pool.acquire()
    with pytest.raises(NoConnectionError):
        await pool.acquire()
    pool.reachable()  # the store's health check connected
    assert (await pool.acquire()).number == 1  # at once, the clock has not moved


async def test_a_failed_connect_fails_the_waiters_it_would_have_served_at_once() -> None:
    database, clock = FakeDatabase(), Clock()
    pool = lender(database, max_size=1, clock=clock)
    lent = await pool.acquire()
    waiters = await queue_waiters(pool, 3)
    database.refuse = 1
    pool.release(lent, reusable=False)  # its slot goes to the first waiter, whose connect fails
    with pytest.raises(ConnectionRefusedError):
        await waiters[0]
    for waiter in waiters[1:]:  # the slot passes on, and each fails at once (backoff)
        with pytest.raises(NoConnectionError):
            await waiter
    assert (pool.size, pool.waiting, len(database.opened)) == (0, 0, 1)


async def test_an_acquire_waits_for_a_connection_at_most_the_wait_timeout() -> None:
    pool = lender(FakeDatabase(), max_size=1, wait_timeout=0.05)
    only = await pool.acquire()
    with pytest.raises(NoConnectionError, match=r"within 0\.05 s"):
        await pool.acquire()
    assert pool.waiting == 0
    pool.release(only)
    assert await pool.acquire() is only


async def test_close_closes_idle_connections_now_and_lent_ones_on_return() -> None:
    pool = lender(FakeDatabase(), max_size=2)
    lent, idle = await pool.acquire(), await pool.acquire()
    pool.release(idle)
    await pool.close()
    assert idle.closed
    assert not lent.is_closed()
    pool.release(lent)
    assert lent.terminated
    assert pool.size == 0
    with pytest.raises(LenderClosedError):
        await pool.acquire()


async def test_close_fails_the_waiters() -> None:
    pool = lender(FakeDatabase(), max_size=1)
    await pool.acquire()
    (waiter,) = await queue_waiters(pool, 1)
    await pool.close()
    with pytest.raises(LenderClosedError):
        await waiter


def test_max_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        lender(FakeDatabase(), max_size=0)


async def test_a_connection_closed_while_idle_is_never_lent() -> None:
    database = FakeDatabase()
    pool = lender(database, max_size=2)
    connection = await pool.acquire()
    pool.release(connection)
    connection.closed = True  # the server restarted, or cut the idle socket
    replacement = await pool.acquire()
    assert replacement is not connection
    assert connection.terminated
    assert (pool.size, len(database.opened)) == (1, 2)  # opened in the dead one's slot


async def test_a_freed_slot_is_reserved_for_the_longest_waiter() -> None:
    pool = lender(FakeDatabase(), max_size=1)
    broken = await pool.acquire()
    (waiter,) = await queue_waiters(pool, 1)
    newcomer = asyncio.ensure_future(pool.acquire())  # arrives in the same loop turn
    pool.release(broken, reusable=False)  # the slot goes to the waiter ...
    replacement = await waiter
    assert not newcomer.done()  # ... and the newcomer did not overtake it
    assert pool.waiting == 1
    pool.release(replacement)
    assert await newcomer is replacement


async def test_a_connection_handed_to_a_waiter_cancelled_after_close_is_closed() -> None:
    pool = lender(FakeDatabase(), max_size=1)
    connection = await pool.acquire()
    (waiter,) = await queue_waiters(pool, 1)
    pool.release(connection)  # handed to the waiter ...
    await pool.close()  # ... the store closes ...
    waiter.cancel()  # ... and the waiter is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert connection.terminated
    assert (pool.size, pool.idle) == (0, 0)


async def test_a_waiter_handed_a_slot_just_before_close_gets_closed() -> None:
    database = FakeDatabase()
    pool = lender(database, max_size=1)
    broken = await pool.acquire()
    (waiter,) = await queue_waiters(pool, 1)
    pool.release(broken, reusable=False)  # a slot handed to the waiter ...
    await pool.close()  # ... the store closes before the waiter runs
    with pytest.raises(LenderClosedError):
        await waiter
    assert (pool.size, len(database.opened)) == (0, 1)  # nothing opened after close
