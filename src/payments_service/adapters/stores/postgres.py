"""PostgreSQL payment repository (asyncpg connections lent by a `ConnectionLender`, one per
process): shared by any number of replicas.

- claim: INSERT … ON CONFLICT (merchant_id, idempotency_key) DO NOTHING RETURNING on the
  unique index. Of concurrent inserts of one merchant's key, PostgreSQL lets exactly one
  succeed; the others wait for it to commit and then do nothing. Then a SELECT (a new
  statement, so a new snapshot that sees the winner). If the owner found has expired and is
  finished, it is deleted and the claim retried.
- get: by payment id AND merchant: another merchant's payment is not found.
- record: one conditional UPDATE … RETURNING (row-locked): the outcome only while PENDING, the
  first response only while NULL (first write wins, across replicas too).
- purge_expired: deletes up to `limit` finished rows in expiry order through their index,
  FOR UPDATE SKIP LOCKED, so replicas purging at once neither block nor double-count.
- take_stalled: PENDING rows whose settlement lease ran out (their owner died), re-leased with
  FOR UPDATE SKIP LOCKED, so of several replicas recovering at once each row goes to one.
- migrations run under pg_advisory_lock, one migration per transaction.
- connections: lent by a `ConnectionLender`; `_use` bounds each operation (but migrations) by
  the operation timeout, says which connections are reused after a failure, and turns the
  driver's failures into the port's store errors (`errors.postgres_error`): a lost, refused or
  stalled connection is UNAVAILABLE for the caller, never INTERNAL.
- ping: a connection of its own (connect, `SELECT 1`, close), so whether the database can be
  reached is answered even while every pooled connection is busy (`health.StoreHealth`); once
  it answers, the lender's reconnect backoff ends, so readiness and calls recover together.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from payments_service.adapters.stores import migrations, rows
from payments_service.adapters.stores.connections import ConnectionLender, LenderClosedError
from payments_service.adapters.stores.errors import postgres_connect_error, postgres_error
from payments_service.domain.errors import PaymentNotFoundError
from payments_service.domain.ports import Claim

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from datetime import datetime, timedelta

    from payments_service.domain.model import Outcome, Payment
    from payments_service.domain.ports import Clock

T = TypeVar("T")
# pg_advisory_lock(classid, objid): classid says "payments-service migrations", objid is a hash
# of the schema, so runs in different schemas of one database do not wait for each other.
MIGRATION_LOCK_CLASS = 0x5041_594D  # "PAYM"
_LOCK_ARGS = "$1::int, hashtext(COALESCE(current_schema(), ''))"

# Every read for a caller is scoped by merchant (the unique index is (merchant_id, key)).
_SELECT_BY_KEY = (
    f"SELECT {rows.SELECT_COLUMNS} FROM payments WHERE merchant_id = $1 AND idempotency_key = $2"
)
_SELECT_BY_ID = (
    f"SELECT {rows.SELECT_COLUMNS} FROM payments WHERE payment_id = $1 AND merchant_id = $2"
)
_INSERT = (
    f"INSERT INTO payments ({rows.SELECT_COLUMNS}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(rows.COLUMNS) + 1))}) "
    "ON CONFLICT (merchant_id, idempotency_key) DO NOTHING RETURNING payment_id"
)
_DELETE_EXPIRED = (
    f"DELETE FROM payments WHERE payment_id = $1 AND expires_at <= $2 AND {rows.FINISHED}"
)
# Every SET expression reads the row as it was before the update (see sqlite.py).
_RECORD = f"""
UPDATE payments SET
    status = CASE WHEN status = 'PENDING' AND $2::text IS NOT NULL THEN $2 ELSE status END,
    message = CASE WHEN status = 'PENDING' AND $2::text IS NOT NULL THEN $3 ELSE message END,
    updated_at = CASE WHEN status = 'PENDING' AND $2::text IS NOT NULL
                      THEN $4 ELSE updated_at END,
    first_status = COALESCE(first_status, $5::text),
    first_message = CASE WHEN first_status IS NULL AND $5::text IS NOT NULL
                         THEN $6 ELSE first_message END
WHERE payment_id = $1
RETURNING {rows.SELECT_COLUMNS}
"""
_PURGE = f"""
DELETE FROM payments WHERE payment_id IN (
    SELECT payment_id FROM payments WHERE expires_at <= $1 AND {rows.FINISHED}
    ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
)
"""
# Of replicas recovering at once, each row goes to one: SKIP LOCKED passes over rows another
# transaction is re-leasing, and the lease moves before the row is unlocked.
_TAKE_STALLED = f"""
UPDATE payments SET lease_until = $2 WHERE payment_id IN (
    SELECT payment_id FROM payments WHERE status = 'PENDING' AND lease_until <= $1
    ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED
)
RETURNING {rows.SELECT_COLUMNS}
"""
# The partial index payments_pending_lease holds exactly the PENDING rows: this reads only them.
_OLDEST_PENDING = "SELECT min(created_at) FROM payments WHERE status = 'PENDING'"
_CLAIM_ATTEMPTS = 5


class PostgresPaymentRepository:
    system = "postgresql"

    def __init__(
        self,
        connections: ConnectionLender[asyncpg.Connection],
        *,
        ttl: timedelta,
        clock: Clock,
        lease: timedelta,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        operation_timeout: float | None = None,
    ) -> None:
        self._connections = connections
        self._operation_timeout = operation_timeout
        self._connect = connect  # the lender's too; `ping` opens one outside the lender
        self._ttl = ttl
        self._lease = lease
        self._clock = clock

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        password: str | None,
        ttl: timedelta,
        clock: Clock,
        lease: timedelta,
        pool_size: int,
        migrate: bool = True,
        operation_timeout: float,
    ) -> PostgresPaymentRepository:
        """Connect (and by default migrate); the caller must `close()` it. `operation_timeout`
        (`PAYMENTS_STORE_TIMEOUT_SECONDS`) bounds opening a connection, an operation's wait for
        one, and each operation but a migration."""
        connect = partial(asyncpg.connect, dsn, password=password, timeout=operation_timeout)
        connections = ConnectionLender(connect, max_size=pool_size, wait_timeout=operation_timeout)
        repository = cls(
            connections,
            ttl=ttl,
            clock=clock,
            lease=lease,
            connect=connect,
            operation_timeout=operation_timeout,
        )
        try:
            await repository._use(_nothing)  # the first connection: is the database there?
            if migrate:
                await repository.migrate()
        except BaseException:
            await repository.close()
            raise
        return repository

    async def close(self) -> None:
        await self._connections.close(timeout=10)

    def pool_size(self) -> int:
        """Connections open, lent or idle."""
        return self._connections.size

    def pool_idle(self) -> int:
        """Open connections not lent out."""
        return self._connections.idle

    def pool_max_size(self) -> int:
        return self._connections.max_size

    def pool_waiting(self) -> int:
        """Operations waiting for a connection."""
        return self._connections.waiting

    async def _use(self, work: Callable[..., Awaitable[T]], *args: Any, bounded: bool = True) -> T:
        """`work(connection, *args)` on a lent connection, within the operation timeout when
        `bounded` (an operation past it is cancelled: UNAVAILABLE). A statement the server refused
        (asyncpg.PostgresError) leaves the session usable, so the connection is reused (the
        lender drops it if it is closed); any other failure (a cancellation, a lost socket)
        leaves it unknown, so it is dropped. Failures become the port's store errors."""
        try:
            connection = await self._connections.acquire()
        except LenderClosedError:
            raise
        except Exception as error:
            raise postgres_connect_error(error) from error
        try:
            async with asyncio.timeout(self._operation_timeout if bounded else None):
                result = await work(connection, *args)
        except BaseException as error:
            reusable = isinstance(error, asyncpg.PostgresError)
            self._connections.release(connection, reusable=reusable)
            store_error = postgres_error(error)
            if store_error is error:
                raise
            raise store_error from error
        self._connections.release(connection)
        return result

    async def ping(self) -> None:
        """Raise StoreUnavailableError unless a new connection can be opened and answers; when it
        does, the lender's reconnect backoff is over."""
        try:
            connection = await self._connect()
            try:
                await connection.fetchval("SELECT 1")
            finally:
                connection.terminate()  # nothing to finish: no transaction, no statement
        except Exception as error:
            raise postgres_connect_error(error) from error
        self._connections.reachable()  # the pool reconnects at once, not after its backoff

    async def migrate(self) -> int:
        """Apply pending migrations under an advisory lock; return how many were applied."""
        return await self._use(_migrate, bounded=False)  # a migration may take long

    async def claim(self, candidate: Payment) -> Claim:
        now = candidate.created_at
        row_values = rows.values(candidate, now + self._ttl, now + self._lease)

        async def claim(connection: asyncpg.Connection) -> Claim:
            for _ in range(_CLAIM_ATTEMPTS):
                if await connection.fetchval(_INSERT, *row_values) is not None:
                    return Claim(candidate, created=True)
                row = await connection.fetchrow(
                    _SELECT_BY_KEY, candidate.merchant_id, candidate.idempotency_key
                )
                if row is None:
                    continue  # the owner was purged between the two statements
                found = rows.payment(row)
                if not rows.expired(row["expires_at"], found, now):
                    return Claim(found, created=False)
                await connection.execute(_DELETE_EXPIRED, found.payment_id, now)
            raise RuntimeError("claim kept racing with deletions of its key; retry the request")

        return await self._use(claim)

    async def get(self, merchant_id: str, payment_id: str) -> Payment | None:
        row = await self._use(asyncpg.Connection.fetchrow, _SELECT_BY_ID, payment_id, merchant_id)
        if row is None:
            return None
        found = rows.payment(row)
        if rows.expired(row["expires_at"], found, self._clock.now()):
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
        arguments: tuple[Any, ...] = rows.record_arguments(at, outcome, first_response)
        row = await self._use(asyncpg.Connection.fetchrow, _RECORD, payment_id, *arguments)
        if row is None:
            raise PaymentNotFoundError(payment_id)
        return rows.payment(row)

    async def take_stalled(self, *, limit: int) -> list[Payment]:
        now = self._clock.now()
        found = await self._use(
            asyncpg.Connection.fetch, _TAKE_STALLED, now, now + self._lease, limit
        )
        return [rows.payment(row) for row in found]

    async def oldest_pending(self) -> datetime | None:
        oldest: datetime | None = await self._use(asyncpg.Connection.fetchval, _OLDEST_PENDING)
        return oldest

    async def purge_expired(self, *, limit: int) -> int:
        status = await self._execute(_PURGE, self._clock.now(), limit)
        return int(status.rsplit(" ", 1)[1])

    async def _execute(self, query: str, *args: Any) -> str:
        return await self._use(asyncpg.Connection.execute, query, *args)


async def _nothing(_: asyncpg.Connection) -> None:
    return None


async def _migrate(connection: asyncpg.Connection) -> int:
    await connection.execute(f"SELECT pg_advisory_lock({_LOCK_ARGS})", MIGRATION_LOCK_CLASS)
    try:
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {migrations.SCHEMA_VERSION_TABLE} ("
            "version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await connection.fetchval(
            f"SELECT COALESCE(MAX(version), 0) FROM {migrations.SCHEMA_VERSION_TABLE}"
        )
        todo = migrations.pending(current, migrations.load("postgresql"))
        for migration in todo:
            async with connection.transaction():
                await connection.execute(migration.sql)
                await connection.execute(
                    f"INSERT INTO {migrations.SCHEMA_VERSION_TABLE} (version, name) "
                    "VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
        return len(todo)
    finally:
        await connection.execute(f"SELECT pg_advisory_unlock({_LOCK_ARGS})", MIGRATION_LOCK_CLASS)
