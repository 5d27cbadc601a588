"""SQLite payment repository: durable on one host, shared by processes on that host.

Never on the event loop: every operation runs on the one thread of a `GroupCommitExecutor`
(group_commit.py), which creates the connection, runs the operations on it in group commits
(no result before its COMMIT) and closes it. This module is the SQL and the row mapping.

- WAL mode (readers never block the writer) and a busy timeout (a writer waits for another
  process's transaction instead of failing at once); `synchronous` as `SYNCHRONOUS` says.
- claim: a write, so inside the batch's BEGIN IMMEDIATE transaction: INSERT … ON CONFLICT DO
  NOTHING on the unique index over (merchant_id, idempotency_key). Inserted: done (one
  statement). Else the key is taken: if its payment has expired and is finished it is deleted
  and the INSERT repeated (both `atomically`); otherwise SELECT the owner of the merchant's key
  (a replay).
- get: a read, by payment id AND merchant: another merchant's payment is not found.
- record: one conditional UPDATE … RETURNING: the outcome only while PENDING, the first response
  only while NULL (first write wins).
- purge_expired: deletes up to `limit` finished rows in expiry order through their index.
- take_stalled: PENDING rows whose settlement lease ran out (their owner died), re-leased to
  this process in the same BEGIN IMMEDIATE transaction, so two processes never take one.
- migrate: exclusive, under its own BEGIN EXCLUSIVE transaction.
- ping: a read, `SELECT 1 FROM payments` (`health.StoreHealth` asks it).

Every failure of an operation goes through `errors.sqlite_error`: a busy, full, read-only or
failing file becomes the port's store error, anything else stays what sqlite3 raised.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from payments_service.adapters.stores import migrations, rows
from payments_service.adapters.stores.errors import sqlite_error
from payments_service.adapters.stores.group_commit import GroupCommitExecutor, atomically
from payments_service.domain.errors import PaymentNotFoundError
from payments_service.domain.ports import Claim

if TYPE_CHECKING:
    import asyncio

    from payments_service.domain.model import Outcome, Payment
    from payments_service.domain.ports import Clock

T = TypeVar("T")
DEFAULT_BUSY_TIMEOUT_SECONDS = 10.0
# PAYMENTS_STORE_SQLITE_SYNCHRONOUS: full survives power loss; normal (WAL) survives a killed
# process but may lose the last commits to an OS crash or power cut, for about twice the speed.
SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL"}
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
_PING = "SELECT 1 FROM payments LIMIT 1"
# The partial index payments_pending_lease holds exactly the PENDING rows: this reads only them.
_OLDEST_PENDING = "SELECT min(created_at) AS oldest FROM payments WHERE status = 'PENDING'"
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
        executor: GroupCommitExecutor,
        *,
        path: str,
        ttl: timedelta,
        clock: Clock,
        lease: timedelta,
    ) -> None:
        """A repository on an open executor's connection to the database at `path`; it closes
        the executor."""
        self._executor = executor
        self._path = path
        self._ttl = ttl
        self._clock = clock
        self._lease = lease

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        ttl: timedelta,
        clock: Clock,
        lease: timedelta,
        synchronous: str,
        migrate: bool = True,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
    ) -> SqlitePaymentRepository:
        """Connect (and by default migrate); the caller must `close()` it."""
        executor = await GroupCommitExecutor.open(
            partial(connect, path, busy_timeout=busy_timeout, synchronous=synchronous)
        )
        repository = cls(executor, path=path, ttl=ttl, clock=clock, lease=lease)
        if migrate:
            try:
                await repository.migrate()
            except BaseException:
                await repository.close()
                raise
        return repository

    async def close(self) -> None:
        """Finish the operations queued, then close the connection."""
        await self._executor.close()

    def transactions(self) -> tuple[int, int]:
        """(transactions committed, operations they carried) since the store opened: their
        ratio is the group commit's mean batch size (the store metrics read it)."""
        return self._executor.transactions, self._executor.operations

    async def migrate(self) -> int:
        """Apply pending migrations; return how many were applied."""
        return await self._run(
            self._executor.exclusive(partial(_migrate, applied_at=self._clock.now()))
        )

    async def ping(self) -> None:
        """Raise a store error unless the database file can be read."""
        await self._run(self._executor.read(partial(_fetch, _PING, ())))

    async def _run(self, pending: asyncio.Future[T]) -> T:
        """The outcome of an operation queued on the executor; a failure of the file as the
        port's store error (`errors.sqlite_error`)."""
        try:
            return await pending
        except sqlite3.Error as error:
            store_error = sqlite_error(error, self._path)
            if store_error is error:
                raise
            raise store_error from error

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

            if atomically(db, replace_expired_owner):
                return None
            owner: sqlite3.Row = db.execute(_SELECT_BY_KEY, scope).fetchone()
            return owner

        row = await self._run(self._executor.write(claim))
        if row is None:
            return Claim(candidate, created=True)
        return Claim(rows.payment(row, from_micros), created=False)

    async def get(self, merchant_id: str, payment_id: str) -> Payment | None:
        row = await self._run(
            self._executor.read(partial(_fetch, _SELECT_BY_ID, (payment_id, merchant_id)))
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
        row = await self._run(self._executor.write(partial(_fetch, _RECORD, arguments)))
        if row is None:
            raise PaymentNotFoundError(payment_id)
        return rows.payment(row, from_micros)

    async def purge_expired(self, *, limit: int) -> int:
        now = to_micros(self._clock.now())

        def purge(db: sqlite3.Connection) -> int:
            return db.execute(_PURGE, (now, limit)).rowcount

        return await self._run(self._executor.write(purge))

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
            return atomically(db, take)  # no lease moves unless all of them do

        # In the batch's BEGIN IMMEDIATE transaction: another process taking stalled payments
        # waits for the write lock, then sees the new leases.
        found = await self._run(self._executor.write(take_atomically))
        return [rows.payment(row, from_micros) for row in found]

    async def oldest_pending(self) -> datetime | None:
        row = await self._run(self._executor.read(partial(_fetch, _OLDEST_PENDING, ())))
        oldest = None if row is None else row["oldest"]
        return None if oldest is None else from_micros(oldest)


# Everything below runs on the executor's thread.


def connect(path: str, *, busy_timeout: float, synchronous: str) -> sqlite3.Connection:
    """A connection to the database at `path` as the store uses it: WAL, the busy timeout,
    `synchronous` ("full" or "normal"), autocommit (every transaction is explicit)."""
    connection = sqlite3.connect(
        path,
        timeout=busy_timeout,
        isolation_level=None,  # autocommit; transactions are explicit
        check_same_thread=True,  # the thread that connects is the only one that may use it
    )
    try:
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {SYNCHRONOUS[synchronous]}")
        connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    except BaseException:
        connection.close()
        raise
    return connection


def _migrate(db: sqlite3.Connection, *, applied_at: datetime) -> int:
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
                (migration.version, migration.name, to_micros(applied_at)),
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
