"""Group commit on one SQLite connection, kept off the event loop.

One thread per executor. It creates the connection (`connect`, given to `open`), runs every
operation on it and closes it: no other thread ever touches the connection, and sqlite3's
`check_same_thread` would refuse if one did. The event loop only queues operations and awaits
their futures; one thread also serialises the operations on the one connection.

Operations queue for the thread; each time it wakes it takes everything queued (up to
`max_batch`) and runs it, in one of three ways, each an operation `fn(connection)`:

- `write(fn)`: the writes of a batch run as ONE `BEGIN IMMEDIATE` transaction with one COMMIT,
  hence one WAL fsync (IMMEDIATE takes the write lock first, so two processes cannot both read
  "absent"). No result is delivered before that COMMIT returned, so an acknowledged write is as
  durable as with a transaction per operation. A statement that fails rolls back only itself,
  and an operation of several statements runs them under `atomically` (a SAVEPOINT), so one
  operation's error undoes that operation alone and the others of the batch commit; an error
  that ends the whole transaction (disk full, I/O error), or a failed COMMIT, fails them all.
- `read(fn)`: on its own, outside the batch's transaction, so a read never waits behind another
  process's write lock.
- `exclusive(fn)`: alone, in its place in the queue, outside any transaction of the executor
  (the writes queued before it commit first): for work that manages its own transaction, such
  as migrations.

Every result of a batch goes back to its event loop in one callback. Under load a batch carries
many calls, so the fsync and the thread hand-off are paid once for all of them. An operation
that raises fails alone; a BaseException (SystemExit, KeyboardInterrupt) is handed to its caller
as a RuntimeError and never ends the thread. `close()` takes no more operations (later ones fail
at once with "closed", never queued where nothing would run them), runs those already queued,
then closes the connection and ends the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import queue
import sqlite3
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")
# Most operations one transaction carries: bounds how long one COMMIT keeps the write lock from
# another process sharing the file, and how much one failed COMMIT can fail.
MAX_BATCH = 64
CLOSED = "the SQLite store is closed"
THREAD_NAME = "sqlite-store"  # the executor's thread, as thread dumps and profilers show it


class _Kind(enum.Enum):
    READ = enum.auto()
    WRITE = enum.auto()
    EXCLUSIVE = enum.auto()


@dataclass(slots=True)
class _Job:
    """One operation waiting for the thread, and where its outcome goes."""

    operation: Callable[..., Any]
    kind: _Kind
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


_Outcome = tuple[_Job, bool, Any]  # the job, whether it succeeded, its result or its exception


class GroupCommitExecutor:
    """Runs operations on one SQLite connection on its own thread, writes in group commits
    (see the module's docstring). Made by `open`, ended by `close`."""

    def __init__(self, *, max_batch: int = MAX_BATCH) -> None:
        """Not yet open: every operation fails with "closed" until `open` made it."""
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._close_error: Exception | None = None
        self._transactions = 0
        self._operations = 0

    @classmethod
    async def open(
        cls, connect: Callable[[], sqlite3.Connection], *, max_batch: int = MAX_BATCH
    ) -> GroupCommitExecutor:
        """Start the thread and run `connect` on it; the caller must `close()` the executor."""
        executor = cls(max_batch=max_batch)
        loop = asyncio.get_running_loop()
        connected: asyncio.Future[None] = loop.create_future()
        executor._thread = threading.Thread(
            target=executor._serve,
            args=(_Job(connect, _Kind.EXCLUSIVE, connected, loop),),
            name=THREAD_NAME,
            daemon=True,
        )
        executor._thread.start()
        try:
            await connected
        except BaseException:
            await executor.close()
            raise
        return executor

    @property
    def transactions(self) -> int:
        """Transactions committed since the executor opened."""
        return self._transactions

    @property
    def operations(self) -> int:
        """Operations those transactions carried (divided by `transactions`: the mean batch)."""
        return self._operations

    def read(self, operation: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run `operation(connection)` outside any transaction. Queued at once, in call order."""
        return self._submit(_Kind.READ, operation)

    def write(self, operation: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run `operation(connection)` in the batch's transaction; its result only once that
        transaction committed. Queued at once, in call order."""
        return self._submit(_Kind.WRITE, operation)

    def exclusive(self, operation: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run `operation(connection)` alone, outside any transaction of the executor: it
        manages its own. Queued at once, in call order."""
        return self._submit(_Kind.EXCLUSIVE, operation)

    def close(self) -> asyncio.Future[None]:
        """Take no more operations, at once; the future is done once those queued ran, the
        connection is closed and the thread ended. Final, and safe to repeat."""
        if not self._closing:
            self._closing = True
            if self._thread is not None:
                self._queue.put(None)  # the stop marker, behind everything queued so far
        return asyncio.ensure_future(self._join())

    async def _join(self) -> None:
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        error, self._close_error = self._close_error, None
        if error is not None:
            raise error

    def _submit(self, kind: _Kind, operation: Callable[..., T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._closing or self._thread is None:  # nothing would ever run it
            future.set_exception(RuntimeError(CLOSED))
            return future
        self._queue.put(_Job(operation, kind, future, loop))
        return future

    # Everything below runs on the executor's thread.

    def _serve(self, connecting: _Job) -> None:
        connected, connection = _call(connecting.operation)
        _deliver([(connecting, connected, None if connected else connection)])
        if not connected:
            return
        try:
            self._serve_batches(connection)
        finally:
            try:
                connection.close()
            except Exception as error:  # re-raised by `close()` on the loop
                self._close_error = error

    def _serve_batches(self, db: sqlite3.Connection) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch = [job]
            stopping = False
            while len(batch) < self._max_batch:
                try:
                    queued = self._queue.get_nowait()
                except queue.Empty:
                    break
                if queued is None:
                    stopping = True
                    break
                batch.append(queued)
            _deliver(self._execute(db, batch))
            if stopping:
                return

    def _execute(self, db: sqlite3.Connection, batch: list[_Job]) -> list[_Outcome]:
        """Exclusive jobs run in their place; between them, the reads run first, each on its
        own, then the writes as one transaction. Reordering is safe: the operations of one
        batch were all submitted before any of their results was delivered, so they are
        concurrent."""
        outcomes: list[_Outcome] = []
        writes: list[_Job] = []
        for job in batch:
            if job.kind is _Kind.WRITE:
                writes.append(job)
                continue
            if job.kind is _Kind.EXCLUSIVE:
                outcomes += self._transaction(db, writes)
                writes = []
            outcomes.append((job, *_call(job.operation, db)))
        outcomes += self._transaction(db, writes)
        return outcomes

    def _transaction(self, db: sqlite3.Connection, group: list[_Job]) -> list[_Outcome]:
        """Run the writes of `group` as one transaction; none succeeds unless its COMMIT does."""
        if not group:
            return []
        committed, outcomes = _in_transaction(db, group)
        if committed:
            self._transactions += 1
            self._operations += len(group)
        return outcomes


def atomically(db: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
    """`body`'s statements all kept or all undone, inside the batch's transaction (a failing
    statement undoes only itself, so an operation of several statements needs a SAVEPOINT)."""
    db.execute("SAVEPOINT operation")
    try:
        result = body(db)
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK TO operation")
            db.execute("RELEASE operation")
        raise
    db.execute("RELEASE operation")
    return result


def _in_transaction(db: sqlite3.Connection, group: list[_Job]) -> tuple[bool, list[_Outcome]]:
    """(whether it committed, the outcomes) of `group` run in one transaction."""
    try:
        # IMMEDIATE takes the write lock first: of two processes, one waits (busy timeout)
        # instead of both reading "absent".
        db.execute("BEGIN IMMEDIATE")
    except Exception as error:  # every caller in the group gets it
        return False, _all_failed(group, error)
    outcomes: list[_Outcome] = []
    for job in group:
        succeeded, value = _call(job.operation, db)
        if not succeeded and not db.in_transaction:
            # The error ended the whole transaction (disk full, I/O error): nothing in it was
            # kept, so no job in it succeeded.
            return False, _all_failed(group, value)
        outcomes.append((job, succeeded, value))
    try:
        db.execute("COMMIT")
    except Exception as error:  # every caller in the group gets it
        if db.in_transaction:
            with contextlib.suppress(Exception):
                db.execute("ROLLBACK")
        return False, _all_failed(group, error)
    return True, outcomes


def _call(operation: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
    try:
        return True, operation(*args)
    except Exception as error:  # handed to the caller, on its loop
        return False, error
    except BaseException as error:  # not re-raised on the loop (asyncio lets these escape it)
        return False, RuntimeError(f"the store operation was interrupted: {type(error).__name__}")


def _all_failed(group: list[_Job], error: BaseException) -> list[_Outcome]:
    return [(job, False, error) for job in group]


def _deliver(outcomes: list[_Outcome]) -> None:
    """Hand the outcomes to their event loops: one callback per loop per batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody awaits these
            loop.call_soon_threadsafe(_settle, settled)


def _settle(outcomes: list[_Outcome]) -> None:
    for job, succeeded, value in outcomes:
        if job.future.done():  # the caller was cancelled; the operation ran anyway
            continue
        if succeeded:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)
