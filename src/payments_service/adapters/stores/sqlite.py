"""SQLite payment repository: durable on one host, shared by processes on that host.

Never on the event loop: the connection lives on one dedicated worker thread and every
operation runs there (`run_in_executor` on a one-thread executor), so the loop only awaits.
One thread also serialises this process's operations on its one connection.

- WAL mode (readers never block the writer) and a busy timeout (a writer waits for another
  process's transaction instead of failing at once); synchronous=FULL by default, so a
  committed claim survives a power cut, not only a killed process (NORMAL is a setting).
- claim: BEGIN IMMEDIATE (take the write lock first, so two processes cannot both read
  "absent"); delete the key's expired, finished row if any; INSERT … ON CONFLICT DO NOTHING on
  the unique index over (merchant_id, idempotency_key); SELECT the owner of the merchant's key;
  COMMIT.
- get: by payment id AND merchant: another merchant's payment is not found.
- record: one conditional UPDATE … RETURNING: the outcome only while PENDING, the first response
  only while NULL (first write wins).
- purge_expired: deletes up to `limit` finished rows in expiry order through their index.
- take_stalled: PENDING rows whose settlement lease ran out (their owner died), re-leased to
  this process in the same BEGIN IMMEDIATE transaction, so two processes never take one.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
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
    ) -> None:
        self._path = path
        self._lease = lease
        self._synchronous = synchronous
        self._ttl = ttl
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._connection: sqlite3.Connection | None = None

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
    ) -> SqlitePaymentRepository:
        """Connect (and by default migrate); the caller must `close()` it."""
        repository = cls(
            path,
            ttl=ttl,
            clock=clock,
            busy_timeout=busy_timeout,
            synchronous=synchronous,
            lease=lease,
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
        if self._connection is not None:
            await self._run(self._connection.close)
            self._connection = None
        self._executor.shutdown(wait=True)

    async def migrate(self) -> int:
        """Apply pending migrations; return how many were applied."""
        return await self._run(self._migrate)

    async def claim(self, candidate: Payment) -> Claim:
        return await self._run(self._claim, candidate)

    async def get(self, merchant_id: str, payment_id: str) -> Payment | None:
        row = await self._run(self._fetch, _SELECT_BY_ID, (payment_id, merchant_id))
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
        row = await self._run(self._fetch, _RECORD, arguments)
        if row is None:
            raise PaymentNotFoundError(payment_id)
        return rows.payment(row, from_micros)

    async def purge_expired(self, *, limit: int) -> int:
        return await self._run(self._purge, to_micros(self._clock.now()), limit)

    async def take_stalled(self, *, limit: int) -> list[Payment]:
        found = await self._run(self._take_stalled, self._clock.now(), limit)
        return [rows.payment(row, from_micros) for row in found]

    # Everything below runs on the store's thread.

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(function, *args))

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            raise RuntimeError("the SQLite store is closed")
        return self._connection

    def _connect(self) -> None:
        connection = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            isolation_level=None,  # autocommit; transactions are explicit
        )  # created on the store's thread and only ever used there (sqlite3 checks it)
        try:
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(f"PRAGMA synchronous = {SYNCHRONOUS[self._synchronous]}")
            connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def _transaction(self, begin: str, body: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db()
        db.execute(begin)
        try:
            result = body(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    def _migrate(self) -> int:
        def body(db: sqlite3.Connection) -> int:
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
            return len(todo)

        # EXCLUSIVE: another process starting at the same moment waits, then finds it done.
        return self._transaction("BEGIN EXCLUSIVE", body)

    def _claim(self, candidate: Payment) -> Claim:
        now = to_micros(candidate.created_at)
        scope = (candidate.merchant_id, candidate.idempotency_key)
        created = candidate.created_at
        row_values = list(rows.values(candidate, created + self._ttl, created + self._lease))
        for index in rows.TIMESTAMP_COLUMNS:
            row_values[index] = to_micros(row_values[index])

        def body(db: sqlite3.Connection) -> sqlite3.Row:
            db.execute(_DELETE_EXPIRED_KEY, (*scope, now))
            db.execute(_INSERT, row_values)
            row: sqlite3.Row = db.execute(_SELECT_BY_KEY, scope).fetchone()
            return row

        row = self._transaction("BEGIN IMMEDIATE", body)
        if row["payment_id"] == candidate.payment_id:
            return Claim(candidate, created=True)
        return Claim(rows.payment(row, from_micros), created=False)

    def _fetch(self, sql: str, arguments: Any) -> sqlite3.Row | None:
        # fetchall: a statement with RETURNING commits only once it has been stepped to the end.
        found: list[sqlite3.Row] = self._db().execute(sql, arguments).fetchall()
        return found[0] if found else None

    def _take_stalled(self, now: datetime, limit: int) -> list[sqlite3.Row]:
        def body(db: sqlite3.Connection) -> list[sqlite3.Row]:
            found: list[sqlite3.Row] = db.execute(_STALLED, (to_micros(now), limit)).fetchall()
            db.executemany(
                "UPDATE payments SET lease_until = ? WHERE payment_id = ?",
                [(to_micros(now + self._lease), row["payment_id"]) for row in found],
            )
            return found

        # IMMEDIATE: another process taking stalled payments waits, then sees the new leases.
        return self._transaction("BEGIN IMMEDIATE", body)

    def _purge(self, now: int, limit: int) -> int:
        return self._db().execute(_PURGE, (now, limit)).rowcount


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
