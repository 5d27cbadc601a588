"""SQLite group commit: the executor's one thread runs every write queued meanwhile as one
transaction, and no operation's result is delivered before that transaction's COMMIT.

Each test parks the thread inside an exclusive job, queues operations (queued at the call, in
call order, no sleeping), then releases it: what was queued meanwhile runs as one batch,
deterministically.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from payments_service.adapters.stores.group_commit import (
    THREAD_NAME,
    GroupCommitExecutor,
    atomically,
)
from payments_service.domain.model import Outcome, Payment, PaymentRequest, PaymentStatus
from tests.fakes import FakeClock
from tests.stores import open_sqlite

INSERT = "INSERT INTO t (id, v) VALUES (?, 'x')"


class Rig:
    """An executor on a fresh WAL database with a table t(id, v) and a child table whose
    foreign key is checked only at COMMIT."""

    def __init__(self, executor: GroupCommitExecutor, path: Path) -> None:
        self.executor = executor
        self.path = path
        self.release = threading.Event()

    def park(self) -> asyncio.Future[bool]:
        """Hold the thread until `release` is set; what is queued meanwhile is one batch.
        Returns once the thread is inside the parked job, so it has taken its batch already."""
        running = threading.Event()

        def parked(db: sqlite3.Connection) -> bool:
            running.set()
            return self.release.wait(10)

        future = self.executor.exclusive(parked)
        assert running.wait(10), "the store thread never ran the parked job"
        return future

    def insert(self, row_id: int) -> asyncio.Future[int]:
        return self.executor.write(lambda db: db.execute(INSERT, (row_id,)).rowcount)

    async def ids(self) -> list[int]:
        found = await self.executor.read(
            lambda db: db.execute("SELECT id FROM t ORDER BY id").fetchall()
        )
        return [row[0] for row in found]

    async def settle(self, *futures: asyncio.Future[Any]) -> list[Any]:
        self.release.set()
        return await asyncio.gather(*futures, return_exceptions=True)


def _connect(
    path: Path, busy_timeout: float, factory: type[sqlite3.Connection] = sqlite3.Connection
) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout, factory=factory)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS child (id INTEGER PRIMARY KEY, "
        "t_id INTEGER REFERENCES t (id) DEFERRABLE INITIALLY DEFERRED)"
    )
    return db


async def open_rig(tmp_path: Path, *, max_batch: int = 64, busy_timeout: float = 5.0) -> Rig:
    path = tmp_path / "g.db"
    executor = await GroupCommitExecutor.open(
        partial(_connect, path, busy_timeout), max_batch=max_batch
    )
    return Rig(executor, path)


async def close_rig(rig: Rig) -> None:
    rig.release.set()
    await rig.executor.close()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    opened = await open_rig(tmp_path)
    yield opened
    await close_rig(opened)


async def test_operations_queued_together_commit_as_one_transaction(rig: Rig) -> None:
    parked = rig.park()
    inserted = [rig.insert(i) for i in range(20)]
    assert await rig.settle(parked, *inserted) == [True] + [1] * 20
    assert (rig.executor.transactions, rig.executor.operations) == (1, 20)
    assert await rig.ids() == list(range(20))


@pytest.mark.parametrize(("max_batch", "queued", "transactions"), [(3, 7, 3), (1, 4, 4), (8, 8, 1)])
async def test_max_batch_bounds_the_operations_of_one_transaction(
    tmp_path: Path, max_batch: int, queued: int, transactions: int
) -> None:
    rig = await open_rig(tmp_path, max_batch=max_batch)
    try:
        parked = rig.park()
        await rig.settle(parked, *(rig.insert(i) for i in range(queued)))
        assert (rig.executor.transactions, rig.executor.operations) == (transactions, queued)
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
    assert rig.executor.transactions == 1


def _end_the_transaction(db: sqlite3.Connection) -> None:
    db.execute("ROLLBACK")  # what SQLite does itself on a full disk or an I/O error
    raise sqlite3.OperationalError("database or disk is full")


@pytest.mark.parametrize(
    "operation",
    [_end_the_transaction, partial(atomically, body=_end_the_transaction)],
    ids=["alone", "under a savepoint"],
)
async def test_an_error_that_ends_the_transaction_fails_every_operation_in_it(
    rig: Rig, operation: Callable[[sqlite3.Connection], None]
) -> None:
    parked = rig.park()
    before = rig.insert(1)
    ending = rig.executor.write(operation)
    after = rig.insert(2)
    _, *outcomes = await rig.settle(parked, before, ending, after)
    assert all(isinstance(o, sqlite3.OperationalError) for o in outcomes), outcomes
    assert await rig.ids() == []  # nothing of the batch was kept: nobody was told otherwise
    assert rig.executor.transactions == 0


async def test_a_failed_commit_fails_every_operation_and_keeps_nothing(rig: Rig) -> None:
    parked = rig.park()
    valid = rig.insert(1)
    orphan = rig.executor.write(
        lambda db: db.execute("INSERT INTO child (id, t_id) VALUES (1, 99)").rowcount
    )  # the statement succeeds; the deferred foreign key fails the COMMIT
    _, *outcomes = await rig.settle(parked, valid, orphan)
    assert all(isinstance(o, sqlite3.IntegrityError) for o in outcomes), outcomes
    assert await rig.ids() == []
    assert rig.executor.transactions == 0


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
            else rig.executor.read(lambda db: db.execute("SELECT count(*) FROM t").fetchone()[0])
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
    await rig.executor.exclusive(lambda _db: None)  # runs after the writes queued before it
    assert await rig.ids() == [7]  # it ran and committed; its result went nowhere


async def test_an_exclusive_job_runs_alone_after_the_writes_queued_before_it(rig: Rig) -> None:
    parked = rig.park()
    before = rig.insert(1)
    exclusive = rig.executor.exclusive(lambda db: (db.in_transaction, db.total_changes))
    read = rig.executor.read(lambda db: db.in_transaction)
    after = rig.insert(2)
    _, *outcomes = await rig.settle(parked, before, exclusive, read, after)
    # Outside any transaction, once the insert queued before it committed; the read too.
    assert outcomes == [1, (False, 1), False, 1]
    assert (rig.executor.transactions, rig.executor.operations) == (2, 2)


async def test_close_finishes_what_is_queued(tmp_path: Path) -> None:
    rig = await open_rig(tmp_path)
    parked = rig.park()
    queued = rig.insert(3)
    rig.release.set()
    await rig.executor.close()
    assert await parked is True
    assert await queued == 1
    with sqlite3.connect(rig.path) as db:
        assert db.execute("SELECT id FROM t").fetchall() == [(3,)]


async def test_jobs_queued_before_close_run_in_the_last_batch(tmp_path: Path) -> None:
    rig = await open_rig(tmp_path)
    parked = rig.park()
    queued = rig.insert(4)
    closing = rig.executor.close()  # the stop marker is queued behind them, at once
    await rig.settle(parked, queued)
    await closing
    assert queued.result() == 1
    assert rig.executor.transactions == 1


async def test_an_executor_that_was_never_opened_refuses_every_operation() -> None:
    executor = GroupCommitExecutor(max_batch=4)
    with pytest.raises(RuntimeError, match="closed"):
        await executor.write(lambda db: 1)
    await executor.close()


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommitExecutor(max_batch=0)


async def test_an_operation_submitted_once_closing_fails_at_once(tmp_path: Path) -> None:
    rig = await open_rig(tmp_path)
    closing = rig.executor.close()
    with pytest.raises(RuntimeError, match="closed"):
        await rig.insert(5)  # not queued behind the stop marker, where nothing would run it
    await closing
    with pytest.raises(RuntimeError, match="closed"):
        await rig.insert(6)  # and no new thread is started
    await rig.executor.close()  # again: nothing to do


def _interrupt(db: sqlite3.Connection) -> None:
    raise SystemExit(3)


async def test_an_interrupted_operation_fails_alone_and_the_thread_lives_on(rig: Rig) -> None:
    with pytest.raises(RuntimeError, match="interrupted: SystemExit"):
        await rig.executor.write(_interrupt)
    assert await rig.insert(8) == 1
    assert await rig.ids() == [8]


async def test_a_failed_connect_fails_open_and_leaves_no_thread(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    missing = tmp_path / "no such folder" / "g.db"
    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        await GroupCommitExecutor.open(partial(_connect, missing, 1.0))
    assert {thread for thread in threading.enumerate() if thread.name == THREAD_NAME} <= before


class _CloseFails(sqlite3.Connection):
    def close(self) -> None:
        super().close()
        raise sqlite3.OperationalError("disk I/O error")


async def test_a_failure_to_close_the_connection_is_raised_by_close(tmp_path: Path) -> None:
    executor = await GroupCommitExecutor.open(
        partial(_connect, tmp_path / "g.db", 1.0, _CloseFails)
    )
    assert await executor.write(lambda db: db.execute(INSERT, (1,)).rowcount) == 1
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        await executor.close()
    await executor.close()  # reported once; the thread has ended


async def test_a_failed_replacement_of_an_expired_key_keeps_the_old_payment(
    tmp_path: Path,
) -> None:
    """The claim's DELETE of an expired owner and its INSERT are one unit (a SAVEPOINT): when
    the INSERT fails, the DELETE is undone too, although the batch commits."""
    clock = FakeClock()
    repository = await open_sqlite(tmp_path / "p.db", ttl=timedelta(seconds=1), clock=clock)
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
