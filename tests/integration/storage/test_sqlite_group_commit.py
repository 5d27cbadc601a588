"""SQLite group commit: the store's one thread runs every operation queued meanwhile as one
transaction, and no operation's result is delivered before that transaction's COMMIT.

Each test parks the thread inside an unbatched job, queues operations (in call order, no
sleeping), then releases it: what was queued meanwhile runs as one batch, deterministically.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from payments_service.adapters.stores.sqlite import GroupCommitThread, SqlitePaymentRepository
from payments_service.domain.model import Outcome, Payment, PaymentRequest, PaymentStatus
from tests.fakes import FakeClock

INSERT = "INSERT INTO t (id, v) VALUES (?, 'x')"


class Rig:
    """A group-commit thread on a fresh WAL database with a table t(id, v) and a child table
    whose foreign key is checked only at COMMIT."""

    def __init__(self, thread: GroupCommitThread, path: Path) -> None:
        self.thread = thread
        self.path = path
        self.release = threading.Event()

    def park(self) -> asyncio.Future[bool]:
        """Hold the thread until `release` is set; what is queued meanwhile is one batch.
        Returns once the thread is inside the parked job, so it has taken its batch already."""
        running = threading.Event()

        def parked() -> bool:
            running.set()
            return self.release.wait(10)

        future = self.thread.enqueue(parked, writes=None)
        assert running.wait(10), "the store thread never ran the parked job"
        return future

    def insert(self, row_id: int) -> asyncio.Future[int]:
        return self.thread.enqueue(lambda db: db.execute(INSERT, (row_id,)).rowcount, writes=True)

    async def ids(self) -> list[int]:
        found = await self.thread.submit(
            lambda db: db.execute("SELECT id FROM t ORDER BY id").fetchall(), writes=False
        )
        return [row[0] for row in found]

    async def settle(self, *futures: asyncio.Future[Any]) -> list[Any]:
        self.release.set()
        return await asyncio.gather(*futures, return_exceptions=True)


def _connect(thread: GroupCommitThread, path: Path, busy_timeout: float) -> None:
    db = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS child (id INTEGER PRIMARY KEY, "
        "t_id INTEGER REFERENCES t (id) DEFERRABLE INITIALLY DEFERRED)"
    )
    thread.connection = db


def _disconnect(thread: GroupCommitThread) -> None:
    assert thread.connection is not None
    thread.connection.close()
    thread.connection = None


async def open_rig(tmp_path: Path, *, max_batch: int = 64, busy_timeout: float = 5.0) -> Rig:
    thread = GroupCommitThread(max_batch)
    path = tmp_path / "g.db"
    await thread.submit(lambda: _connect(thread, path, busy_timeout), writes=None)
    return Rig(thread, path)


async def close_rig(rig: Rig) -> None:
    rig.release.set()
    await rig.thread.submit(lambda: _disconnect(rig.thread), writes=None)
    await rig.thread.stop()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    opened = await open_rig(tmp_path)
    yield opened
    await close_rig(opened)


async def test_operations_queued_together_commit_as_one_transaction(rig: Rig) -> None:
    parked = rig.park()
    inserted = [rig.insert(i) for i in range(20)]
    assert await rig.settle(parked, *inserted) == [True] + [1] * 20
    assert (rig.thread.transactions, rig.thread.operations) == (1, 20)
    assert await rig.ids() == list(range(20))


@pytest.mark.parametrize(("max_batch", "queued", "transactions"), [(3, 7, 3), (1, 4, 4), (8, 8, 1)])
async def test_max_batch_bounds_the_operations_of_one_transaction(
    tmp_path: Path, max_batch: int, queued: int, transactions: int
) -> None:
    rig = await open_rig(tmp_path, max_batch=max_batch)
    try:
        parked = rig.park()
        await rig.settle(parked, *(rig.insert(i) for i in range(queued)))
        assert (rig.thread.transactions, rig.thread.operations) == (transactions, queued)
    finally:
        await close_rig(rig)


async def test_a_failing_statement_fails_only_its_own_operation(rig: Rig) -> None:
    parked = rig.park()
    first, duplicate, other = rig.insert(1), rig.insert(1), rig.insert(2)
    _, *outcomes = await rig.settle(parked, first, duplicate, other)
    assert outcomes[0] == 1
    assert isinstance(outcomes[1], sqlite3.IntegrityError)
    assert outcomes[2] == 1
    assert await rig.ids() == [1, 2]
    assert rig.thread.transactions == 1


def _end_the_transaction(db: sqlite3.Connection) -> None:
    db.execute("ROLLBACK")  # what SQLite does itself on a full disk or an I/O error
    raise sqlite3.OperationalError("database or disk is full")


async def test_an_error_that_ends_the_transaction_fails_every_operation_in_it(rig: Rig) -> None:
    parked = rig.park()
    before = rig.insert(1)
    ending = rig.thread.enqueue(_end_the_transaction, writes=True)
    after = rig.insert(2)
    _, *outcomes = await rig.settle(parked, before, ending, after)
    assert all(isinstance(o, sqlite3.OperationalError) for o in outcomes), outcomes
    assert await rig.ids() == []  # nothing of the batch was kept: nobody was told otherwise
    assert rig.thread.transactions == 0


async def test_a_failed_commit_fails_every_operation_and_keeps_nothing(rig: Rig) -> None:
    parked = rig.park()
    valid = rig.insert(1)
    orphan = rig.thread.enqueue(
        lambda db: db.execute("INSERT INTO child (id, t_id) VALUES (1, 99)").rowcount,
        writes=True,
    )  # the statement succeeds; the deferred foreign key fails the COMMIT
    _, *outcomes = await rig.settle(parked, valid, orphan)
    assert all(isinstance(o, sqlite3.IntegrityError) for o in outcomes), outcomes
    assert await rig.ids() == []
    assert rig.thread.transactions == 0


LOCKED = "locked"


@pytest.mark.parametrize(
    ("queued", "expected"),
    [
        (["read", "read"], [0, 0]),
        (["write", "write"], [LOCKED, LOCKED]),
        (["write", "read"], [LOCKED, 0]),  # the read is not held up by the batch's writes
    ],
    ids=["reads", "writes", "a read queued with a write"],
)
async def test_only_writes_wait_for_another_processes_write_lock(
    tmp_path: Path, queued: list[str], expected: list[object]
) -> None:
    rig = await open_rig(tmp_path, busy_timeout=0.0)  # a lock conflict fails at once
    other = sqlite3.connect(rig.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        parked = rig.park()
        jobs = [
            rig.insert(number)
            if kind == "write"
            else rig.thread.enqueue(
                lambda db: db.execute("SELECT count(*) FROM t").fetchone()[0], writes=False
            )
            for number, kind in enumerate(queued)
        ]
        _, *outcomes = await rig.settle(parked, *jobs)
        assert [
            LOCKED if isinstance(o, sqlite3.OperationalError) and "locked" in str(o) else o
            for o in outcomes
        ] == expected
    finally:
        other.execute("ROLLBACK")
        other.close()
        await close_rig(rig)


async def test_a_cancelled_caller_does_not_stop_its_operation(rig: Rig) -> None:
    parked = rig.park()
    abandoned = rig.insert(7)
    abandoned.cancel()
    await rig.settle(parked)
    assert await rig.ids() == [7]  # it ran and committed; its result went nowhere


async def test_stop_finishes_what_is_queued(tmp_path: Path) -> None:
    rig = await open_rig(tmp_path)
    parked = rig.park()
    queued = rig.insert(3)
    rig.release.set()
    await rig.thread.submit(lambda: _disconnect(rig.thread), writes=None)
    await rig.thread.stop()
    assert await parked is True
    assert await queued == 1
    with sqlite3.connect(rig.path) as db:
        assert db.execute("SELECT id FROM t").fetchall() == [(3,)]


async def test_jobs_queued_before_the_queue_closes_run_in_the_last_batch(tmp_path: Path) -> None:
    rig = await open_rig(tmp_path)
    parked = rig.park()
    queued = rig.insert(4)
    disconnected = rig.thread.enqueue(lambda: _disconnect(rig.thread), writes=None)
    rig.thread.close_queue()  # the stop marker is queued behind them
    await rig.settle(parked, queued, disconnected)
    await rig.thread.stop()
    assert queued.result() == 1
    assert rig.thread.transactions == 1


async def test_operations_without_a_connection_fail_with_closed(tmp_path: Path) -> None:
    thread = GroupCommitThread(4)
    operation: Callable[[sqlite3.Connection], int] = lambda db: 1  # noqa: E731
    try:
        with pytest.raises(RuntimeError, match="closed"):
            await thread.submit(operation, writes=True)
    finally:
        await thread.stop()


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommitThread(0)


async def test_a_job_submitted_once_the_queue_is_closed_fails_at_once(tmp_path: Path) -> None:
    rig = await open_rig(tmp_path)
    await rig.thread.submit(lambda: _disconnect(rig.thread), writes=None)
    rig.thread.close_queue()
    with pytest.raises(RuntimeError, match="closed"):
        await rig.insert(5)  # not queued behind the stop marker, where nothing would run it
    await rig.thread.stop()
    with pytest.raises(RuntimeError, match="closed"):
        await rig.insert(6)  # and no new thread is started


def _interrupt(db: sqlite3.Connection) -> None:
    raise SystemExit(3)


async def test_an_interrupted_operation_fails_alone_and_the_thread_lives_on(rig: Rig) -> None:
    with pytest.raises(RuntimeError, match="interrupted: SystemExit"):
        await rig.thread.submit(_interrupt, writes=True)
    assert await rig.insert(8) == 1
    assert await rig.ids() == [8]


async def test_a_failed_replacement_of_an_expired_key_keeps_the_old_payment(
    tmp_path: Path,
) -> None:
    """The claim's DELETE of an expired owner and its INSERT are one unit (a SAVEPOINT): when
    the INSERT fails, the DELETE is undone too, although the batch commits."""
    clock = FakeClock()
    repository = await SqlitePaymentRepository.open(
        str(tmp_path / "p.db"), ttl=timedelta(seconds=1), clock=clock
    )
    done = Outcome(PaymentStatus.SUCCEEDED, "ok")

    def candidate(payment_id: str, key: str) -> Payment:
        request = PaymentRequest(1250, "EUR", "o", key, merchant_id="default")
        now = clock.now()
        pending = Outcome(PaymentStatus.PENDING, "processing")
        return Payment(payment_id, request, request.fingerprint(), now, now, pending)

    try:
        await repository.claim(candidate("pay_old", "k1"))
        await repository.record("pay_old", at=clock.now(), outcome=done, first_response=done)
        await repository.claim(candidate("pay_two", "k2"))
        clock.advance(5)  # pay_old has expired and is finished: k1 may be replaced
        with pytest.raises(sqlite3.IntegrityError):  # the new row's id is taken
            await repository.claim(candidate("pay_two", "k1"))
        with sqlite3.connect(tmp_path / "p.db") as db:
            ids = {row[0] for row in db.execute("SELECT payment_id FROM payments")}
        assert ids == {"pay_old", "pay_two"}  # the failed claim changed nothing
        assert (await repository.claim(candidate("pay_new", "k1"))).created
    finally:
        await repository.close()
