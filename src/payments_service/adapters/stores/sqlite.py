"""SQLite payment repository: durable on one host, shared by processes on that host.

Never on the event loop: the connection lives on one dedicated worker thread and every
operation runs there, so the loop only awaits. One thread also serialises this process's
operations on its one connection.

Group commit. Operations queue for the thread; each time it wakes it takes everything queued
(up to MAX_BATCH operations) and runs its writes as ONE transaction with one COMMIT, hence one
WAL fsync, then hands every result back to the event loop in one callback. No operation's result is
delivered before that COMMIT returned, so an acknowledged claim is as durable as before; under
load a batch carries many calls, and the fsync and the thread hand-off are paid once for all of
them. A statement that fails rolls back only itself in SQLite, and an operation of several
statements runs them under a SAVEPOINT, so one operation's error undoes that operation alone and
leaves the others of the batch intact; an error that ends the whole transaction, or a failed
COMMIT, fails them all. Reads run on their own, outside the batch's transaction, so a read never
waits behind another process's write lock.

- WAL mode (readers never block the writer) and a busy timeout (a writer waits for another
  process's transaction instead of failing at once); synchronous=FULL by default, so a
  committed claim survives a power cut, not only a killed process (NORMAL is a setting).
- claim: inside the batch's BEGIN IMMEDIATE transaction, INSERT … ON CONFLICT DO NOTHING on
  the unique index over (merchant_id, idempotency_key). Inserted: done (one statement). Else
  the key is taken: if its payment has expired and is finished it is deleted and the INSERT
  repeated (both under a SAVEPOINT); otherwise SELECT the owner of the merchant's key (a replay).
- get: by payment id AND merchant: another merchant's payment is not found.
- record: one conditional UPDATE … RETURNING: the outcome only while PENDING, the first response
  only while NULL (first write wins).
- purge_expired: deletes up to `limit` finished rows in expiry order through their index.
- take_stalled: PENDING rows whose settlement lease ran out (their owner died), re-leased to
  this process in the same BEGIN IMMEDIATE transaction, so two processes never take one.
- the writes of a batch run in one BEGIN IMMEDIATE transaction (the write lock first, so two
  processes cannot both read "absent").
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from payments_service.adapters.stores import migrations, rows
from payments_service.domain.errors import PaymentNotFoundError
from payments_service.domain.ports import Claim

if TYPE_CHECKING:
    from collections.abc import Callable

    from payments_service.domain.model import Outcome, Payment
    from payments_service.domain.ports import Clock

T = TypeVar("T")
DEFAULT_BUSY_TIMEOUT_SECONDS = 10.0
# PAYMENTS_STORE_SQLITE_SYNCHRONOUS: full survives power loss; normal (WAL) survives a killed
# process but may lose the last commits to an OS crash or power cut, for about twice the speed.
SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL"}
DEFAULT_LEASE = timedelta(seconds=36)  # Settings.settlement_lease_seconds with the defaults
# Most operations one transaction carries: bounds how long one COMMIT keeps the write lock from
# another process sharing the file, and how much one failed COMMIT can fail.
MAX_BATCH = 64
_CLOSED = "the SQLite store is closed"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# Every read for a caller is scoped by merchant (the unique index is (merchant_id, key)).
_SELECT_BY_KEY = (
    f"SELECT {rows.SELECT_COLUMNS} FROM payments WHERE merchant_id = ? AND idempotency_key = ?"
)
_SELECT_BY_ID = (
    f"SELECT {rows.SELECT_COLUMNS} FROM payments WHERE payment_id = ? AND merchant_id = ?"
)
_DELETE_EXPIRED_KEY = (
    "DELETE FROM payments WHERE merchant_id = ? AND idempotency_key = ? AND expires_at <= ? "
    f"AND {rows.FINISHED}"
)
_INSERT = (
    f"INSERT INTO payments ({rows.SELECT_COLUMNS}) "
    f"VALUES ({', '.join('?' for _ in rows.COLUMNS)}) "
    "ON CONFLICT (merchant_id, idempotency_key) DO NOTHING"
)
# Every SET expression reads the row as it was before the update: `status = 'PENDING'` is the
# old status, so an outcome lands only on a PENDING payment, and the first response only once.
_RECORD = f"""
UPDATE payments SET
    status = CASE WHEN status = 'PENDING' AND :status IS NOT NULL THEN :status ELSE status END,
    message = CASE WHEN status = 'PENDING' AND :status IS NOT NULL THEN :message ELSE message END,
    updated_at = CASE WHEN status = 'PENDING' AND :status IS NOT NULL THEN :at ELSE updated_at END,
    first_status = COALESCE(first_status, :first_status),
    first_message = CASE WHEN first_status IS NULL AND :first_status IS NOT NULL
                         THEN :first_message ELSE first_message END
WHERE payment_id = :payment_id
RETURNING {rows.SELECT_COLUMNS}
"""
_STALLED = f"""
SELECT {rows.SELECT_COLUMNS} FROM payments
WHERE status = 'PENDING' AND lease_until <= ? ORDER BY lease_until LIMIT ?
"""
_PURGE = f"""
DELETE FROM payments WHERE payment_id IN (
    SELECT payment_id FROM payments WHERE expires_at <= ? AND {rows.FINISHED}
    ORDER BY expires_at LIMIT ?
)
"""


def to_micros(at: datetime) -> int:
    return (at - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    return _EPOCH + value * _MICROSECOND


class SqlitePaymentRepository:
    system = "sqlite"

    def __init__(
        self,
        path: str,
        *,
        ttl: timedelta,
        clock: Clock,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
        synchronous: str = "full",
        lease: timedelta = DEFAULT_LEASE,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._path = path
        self._lease = lease
        self._synchronous = synchronous
        self._ttl = ttl
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._thread = GroupCommitThread(max_batch)

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        ttl: timedelta,
        clock: Clock,
        migrate: bool = True,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
        synchronous: str = "full",
        lease: timedelta = DEFAULT_LEASE,
        max_batch: int = MAX_BATCH,
    ) -> SqlitePaymentRepository:
        """Connect (and by default migrate); the caller must `close()` it."""
        repository = cls(
            path,
            ttl=ttl,
            clock=clock,
            busy_timeout=busy_timeout,
            synchronous=synchronous,
            lease=lease,
            max_batch=max_batch,
        )
        try:
            await repository._run(repository._connect)
            if migrate:
                await repository._run(repository._migrate)
        except BaseException:
            await repository.close()
            raise
        return repository

    async def close(self) -> None:
        if self._thread.connection is not None:
            await self._run(self._disconnect)
        await self._thread.stop()

    def transactions(self) -> tuple[int, int]:
        """(transactions committed, operations they carried) since the store opened: their
        ratio is the group commit's mean batch size (the store metrics read it)."""
        return self._thread.transactions, self._thread.operations

    async def migrate(self) -> int:
        """Apply pending migrations; return how many were applied."""
        return await self._run(self._migrate)

    async def claim(self, candidate: Payment) -> Claim:
        now = to_micros(candidate.created_at)
        scope = (candidate.merchant_id, candidate.idempotency_key)
        created = candidate.created_at
        row_values = list(rows.values(candidate, created + self._ttl, created + self._lease))
        for index in rows.TIMESTAMP_COLUMNS:
            row_values[index] = to_micros(row_values[index])

        def claim(db: sqlite3.Connection) -> sqlite3.Row | None:
            """None: `candidate` was inserted; else the row of the live payment owning the key.
            A new key costs one statement (each statement is a GIL hand-off with the loop)."""
            if db.execute(_INSERT, row_values).rowcount == 1:
                return None

            # The key is taken: by a live payment (a replay), or by an expired, finished one,
            # which is replaced: DELETE and INSERT together or not at all.
            def replace_expired_owner(db: sqlite3.Connection) -> bool:
                if db.execute(_DELETE_EXPIRED_KEY, (*scope, now)).rowcount == 0:
                    return False
                db.execute(_INSERT, row_values)
                return True

            if _atomically(db, replace_expired_owner):
                return None
            owner: sqlite3.Row = db.execute(_SELECT_BY_KEY, scope).fetchone()
            return owner

        row = await self._thread.submit(claim, writes=True)
        if row is None:
            return Claim(candidate, created=True)
        return Claim(rows.payment(row, from_micros), created=False)

    async def get(self, merchant_id: str, payment_id: str) -> Payment | None:
        row = await self._thread.submit(
            partial(_fetch, _SELECT_BY_ID, (payment_id, merchant_id)), writes=False
        )
        if row is None:
            return None
        found = rows.payment(row, from_micros)
        if rows.expired(from_micros(row["expires_at"]), found, self._clock.now()):
            return None
        return found

    async def record(
        self,
        payment_id: str,
        *,
        at: datetime,
        outcome: Outcome | None = None,
        first_response: Outcome | None = None,
    ) -> Payment:
        status, message, _, first_status, first_message = rows.record_arguments(
            at, outcome, first_response
        )
        arguments = {
            "payment_id": payment_id,
            "status": status,
            "message": message,
            "at": to_micros(at),
            "first_status": first_status,
            "first_message": first_message,
        }
        row = await self._thread.submit(partial(_fetch, _RECORD, arguments), writes=True)
        if row is None:
            raise PaymentNotFoundError(payment_id)
        return rows.payment(row, from_micros)

    async def purge_expired(self, *, limit: int) -> int:
        now = to_micros(self._clock.now())

        def purge(db: sqlite3.Connection) -> int:
            return db.execute(_PURGE, (now, limit)).rowcount

        return await self._thread.submit(purge, writes=True)

    async def take_stalled(self, *, limit: int) -> list[Payment]:
        now = self._clock.now()
        lease_until = to_micros(now + self._lease)

        def take(db: sqlite3.Connection) -> list[sqlite3.Row]:
            found: list[sqlite3.Row] = db.execute(_STALLED, (to_micros(now), limit)).fetchall()
            db.executemany(
                "UPDATE payments SET lease_until = ? WHERE payment_id = ?",
                [(lease_until, row["payment_id"]) for row in found],
            )
            return found

        def take_atomically(db: sqlite3.Connection) -> list[sqlite3.Row]:
            return _atomically(db, take)  # no lease moves unless all of them do

        # In the batch's BEGIN IMMEDIATE transaction: another process taking stalled payments
        # waits for the write lock, then sees the new leases.
        found = await self._thread.submit(take_atomically, writes=True)
        return [rows.payment(row, from_micros) for row in found]

    async def _run(self, function: Callable[[], T]) -> T:
        """Run `function` on the store's thread outside any batch transaction (it manages its
        own: connecting, migrating, closing)."""
        return await self._thread.submit(function, writes=None)

    # Everything below runs on the store's thread.

    def _db(self) -> sqlite3.Connection:
        if self._thread.connection is None:
            raise RuntimeError(_CLOSED)
        return self._thread.connection

    def _connect(self) -> None:
        connection = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            isolation_level=None,  # autocommit; transactions are explicit
            check_same_thread=True,  # created on the store's thread and only ever used there
        )
        try:
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(f"PRAGMA synchronous = {SYNCHRONOUS[self._synchronous]}")
            connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        except BaseException:
            connection.close()
            raise
        self._thread.connection = connection

    def _disconnect(self) -> None:
        self._db().close()
        self._thread.connection = None

    def _migrate(self) -> int:
        db = self._db()
        # EXCLUSIVE: another process starting at the same moment waits, then finds it done.
        db.execute("BEGIN EXCLUSIVE")
        try:
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {migrations.SCHEMA_VERSION_TABLE} ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
            )
            current = db.execute(
                f"SELECT COALESCE(MAX(version), 0) FROM {migrations.SCHEMA_VERSION_TABLE}"
            ).fetchone()[0]
            todo = migrations.pending(current, migrations.load("sqlite"))
            for migration in todo:
                for statement in _statements(migration.sql):
                    db.execute(statement)
                db.execute(
                    f"INSERT INTO {migrations.SCHEMA_VERSION_TABLE} VALUES (?, ?, ?)",
                    (migration.version, migration.name, to_micros(self._clock.now())),
                )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return len(todo)


def _fetch(sql: str, arguments: Any, db: sqlite3.Connection) -> sqlite3.Row | None:
    # fetchall: a statement with RETURNING is complete only once it has been stepped to the end.
    found: list[sqlite3.Row] = db.execute(sql, arguments).fetchall()
    return found[0] if found else None


@dataclass(slots=True)
class _Job:
    """One operation waiting for the store's thread. `writes`: True for a batched operation
    that writes, False for one that only reads, None for one that runs outside any batch
    transaction; a batched operation is called with the connection, an unbatched one with
    nothing."""

    operation: Callable[..., Any]
    writes: bool | None
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


_Outcome = tuple[_Job, bool, Any]  # the job, whether it succeeded, its result or its exception


class GroupCommitThread:
    """The one thread that owns the connection, and its queue of jobs (group commit: see the
    module's docstring). Started by the first job, stopped by `stop()`."""

    def __init__(self, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.connection: sqlite3.Connection | None = None  # only the thread uses it
        self.transactions = 0  # committed
        self.operations = 0  # operations they carried
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closing = False

    async def submit(self, operation: Callable[..., T], *, writes: bool | None) -> T:
        """Run `operation` on the thread: batched (called with the connection) when `writes`
        is True or False, on its own (called with nothing) when None."""
        return await self.enqueue(operation, writes=writes)

    def enqueue(self, operation: Callable[..., T], *, writes: bool | None) -> asyncio.Future[T]:
        """`submit` without awaiting: queued at once, in call order (on the event loop)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._closing:  # the stop marker is queued (or the thread is gone): nothing would run it
            future.set_exception(RuntimeError(_CLOSED))
            return future
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="sqlite-store", daemon=True)
            self._thread.start()
        self._queue.put(_Job(operation, writes, future, loop))
        return future

    def close_queue(self) -> None:
        """Take no more jobs (a later one fails at once with "closed"): those queued so far
        still run, then the thread ends. Final: the thread is not started again."""
        if not self._closing:
            self._closing = True
            if self._thread is not None:
                self._queue.put(None)

    async def stop(self) -> None:
        """Finish the queued jobs, then end the thread."""
        if self._thread is None:
            self.close_queue()
            return
        self.close_queue()
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def _serve(self) -> None:
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
            _deliver(self._execute(batch))
            if stopping:
                return

    def _execute(self, batch: list[_Job]) -> list[_Outcome]:
        """Unbatched jobs run in their place; between them, the reads run first, each on its
        own (no transaction, so never behind another process's write lock), then the writes
        as one transaction. Reordering is safe: operations of one batch were all submitted
        before any of their results was delivered, so they are concurrent."""
        outcomes: list[_Outcome] = []
        writes: list[_Job] = []
        for job in batch:
            if job.writes is None:
                outcomes += self._transaction(writes)
                writes = []
                outcomes.append((job, *_call(job.operation)))
            elif job.writes:
                writes.append(job)
            else:
                outcomes.append(self._read(job))
        outcomes += self._transaction(writes)
        return outcomes

    def _read(self, job: _Job) -> _Outcome:
        if self.connection is None:
            return job, False, RuntimeError(_CLOSED)
        return (job, *_call(job.operation, self.connection))

    def _transaction(self, group: list[_Job]) -> list[_Outcome]:
        """Run the writes of `group` as one transaction; none succeeds unless its COMMIT does."""
        db = self.connection
        if not group:
            return []
        if db is None:
            return _all_failed(group, RuntimeError(_CLOSED))
        committed, outcomes = _in_transaction(db, group)
        if committed:
            self.transactions += 1
            self.operations += len(group)
        return outcomes


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


def _atomically(db: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
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


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would COMMIT our transaction)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip() and not pending.strip().startswith("--"):
        statements.append(pending.strip())
    return statements
