"""What only the SQL stores have: several connections (processes, replicas) on one database,
and versioned migrations applied once under a lock."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from payments_service.adapters.stores import migrations, rows
from payments_service.adapters.stores.factory import open_store
from payments_service.adapters.stores.migrations import SchemaTooNewError
from payments_service.adapters.stores.postgres import PostgresPaymentRepository
from payments_service.adapters.stores.sqlite import connect, from_micros, to_micros
from payments_service.config import Settings
from payments_service.domain.model import Outcome, Payment, PaymentRequest, PaymentStatus
from tests.fakes import FakeClock
from tests.stores import Replicas, SqlRepository, open_sqlite, postgres_schema, replica_opener

TTL = timedelta(minutes=10)
PENDING = Outcome(PaymentStatus.PENDING, "processing")
Repository = SqlRepository


def candidate(
    clock: FakeClock, payment_id: str, key: str = "key-1", *, merchant: str = "default"
) -> Payment:
    request = PaymentRequest(1250, "EUR", "order-42", key, merchant_id=merchant)
    now = clock.now()
    return Payment(payment_id, request, request.fingerprint(), now, now, PENDING)


@pytest.fixture(params=["sqlite", "postgresql"])
async def opener(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Replicas]:
    """Opens replicas (own thread or own pool) of one database."""
    async with replica_opener(request.param, tmp_path, clock, TTL) as open_one:
        yield open_one


async def test_claims_of_one_key_through_several_connections_create_exactly_one(
    opener: Replicas, clock: FakeClock
) -> None:
    replicas: list[Repository] = [await opener() for _ in range(3)]
    claims = await asyncio.gather(
        *(replicas[i % 3].claim(candidate(clock, f"pay_{i:032x}")) for i in range(60))
    )
    assert sum(claim.created for claim in claims) == 1
    assert all(claim.payment == claims[0].payment for claim in claims)


async def test_replicas_migrating_together_apply_each_migration_once(
    opener: Replicas,
) -> None:
    replicas: list[Repository] = [await opener(migrate=False) for _ in range(4)]
    applied = await asyncio.gather(*(replica.migrate() for replica in replicas))
    assert sorted(applied) == [0, 0, 0, len(migrations.load(replicas[0].system))]
    assert await replicas[0].migrate() == 0


async def test_a_database_from_a_newer_release_is_refused_with_a_clear_message(
    opener: Replicas,
) -> None:
    repository: Repository = await opener()
    await _insert_future_version(opener, repository.system, 999)
    with pytest.raises(SchemaTooNewError, match="version 999, newer than this payments-server"):
        await repository.migrate()


async def _insert_future_version(database: Replicas, system: str, version: int) -> None:
    if system == "sqlite":
        await database.execute(
            "INSERT INTO schema_version VALUES (?, 'from_the_future', 0)", version
        )
    else:
        await database.execute(
            "INSERT INTO schema_version (version, name) VALUES ($1, 'from_the_future')", version
        )


def test_every_dialect_has_the_same_numbered_migrations() -> None:
    sqlite, postgresql = migrations.load("sqlite"), migrations.load("postgresql")
    assert [(m.version, m.name) for m in sqlite] == [(m.version, m.name) for m in postgresql]
    assert sqlite[0].version == 1


@pytest.mark.parametrize(("current", "expected"), [(0, 3), (1, 2), (2, 1), (3, 0)])
def test_pending_lists_the_migrations_after_the_current_version(
    current: int, expected: int
) -> None:
    assert len(migrations.pending(current, migrations.load("sqlite"))) == expected


async def test_sqlite_uses_wal_and_keeps_the_claim_index(tmp_path: Path, clock: FakeClock) -> None:
    repository = await open_sqlite(tmp_path / "p.db", ttl=TTL, clock=clock)
    await repository.close()
    with sqlite3.connect(tmp_path / "p.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = {row[1]: row[2] for row in db.execute("PRAGMA index_list(payments)")}
        assert indexes["payments_merchant_idempotency_key"] == 1  # unique
        assert "payments_idempotency_key" not in indexes  # the global one is gone (0003)
        assert "payments_expires_at" in indexes
        assert "payments_pending_lease" in indexes
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,), (2,), (3,)]


async def test_a_closed_sqlite_store_says_so(tmp_path: Path, clock: FakeClock) -> None:
    repository = await open_sqlite(tmp_path / "p.db", ttl=TTL, clock=clock)
    await repository.close()
    with pytest.raises(RuntimeError, match="closed"):
        await repository.get("default", "pay_x")
    await repository.close()  # again: nothing to do


@pytest.mark.parametrize(("setting", "pragma"), [("full", 2), ("normal", 1)])
def test_sqlite_connections_are_wal_with_the_busy_timeout_and_synchronous_setting(
    tmp_path: Path, setting: str, pragma: int
) -> None:
    with contextlib.closing(
        connect(str(tmp_path / "p.db"), busy_timeout=2.5, synchronous=setting)
    ) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 2500
        assert db.execute("PRAGMA synchronous").fetchone()[0] == pragma
        db.execute("CREATE TABLE t (id INTEGER)")
        db.execute("INSERT INTO t VALUES (1)")
        assert db.in_transaction is False  # autocommit: every transaction is explicit


async def test_upgrading_a_populated_version_1_database_keeps_its_rows_and_recovers_them(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "v1.db"
    (initial,) = [m for m in migrations.load("sqlite") if m.version == 1]
    with sqlite3.connect(path) as db:  # what a version-1 release left behind
        db.executescript(initial.sql)
        db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT, at INT)")
        db.execute("INSERT INTO schema_version VALUES (1, 'initial', 0)")
        db.execute(
            "INSERT INTO payments VALUES ('pay_old', 'k', 'f', 1, 'EUR', 'o', '{}', 0, 0, "
            "9999999999999999, 'PENDING', 'processing', NULL, NULL)"
        )
    repository = await open_sqlite(path, ttl=TTL, clock=clock)
    try:
        assert await repository.migrate() == 0
        (stalled,) = await repository.take_stalled(limit=10)  # lease 0: recoverable at once
        assert stalled.payment_id == "pay_old"
    finally:
        await repository.close()


async def _insert_version_2_row(
    database: Replicas, system: str, payment: Payment, lease_until: int
) -> None:
    """A row as a version-2 release wrote it: every column but merchant_id."""
    assert rows.COLUMNS[-1] == "merchant_id"
    columns = rows.COLUMNS[:-1]
    names = ", ".join(columns)
    when = payment.created_at
    values = list(rows.values(payment, when + TTL, when))[:-1]
    if system == "sqlite":
        for index in rows.TIMESTAMP_COLUMNS:
            values[index] = to_micros(values[index])
        values[rows.COLUMNS.index("lease_until")] = lease_until
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO payments ({names}) VALUES ({marks})"  # noqa: S608 - constant names
        await database.execute(sql, *values)
    else:
        values[rows.COLUMNS.index("lease_until")] = from_micros(lease_until)
        marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        sql = f"INSERT INTO payments ({names}) VALUES ({marks})"  # noqa: S608 - constant names
        await database.execute(sql, *values)


async def test_upgrading_a_populated_version_2_database_gives_its_rows_to_merchant_default(
    opener: Replicas, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository: Repository = await opener(migrate=False)
    every = migrations.load(repository.system)
    with monkeypatch.context() as older:  # the runner of a version-2 release
        older.setattr(migrations, "load", lambda dialect: every[:2])
        assert await repository.migrate() == 2
    done = Outcome(PaymentStatus.SUCCEEDED, "ok")
    answered = candidate(clock, "pay_answered", key="k-old")
    answered = answered.settled(done, clock.now()).answered(done)
    await _insert_version_2_row(
        opener, repository.system, answered, lease_until=to_micros(clock.now())
    )
    stalled_row = candidate(clock, "pay_stalled", key="k-2")
    await _insert_version_2_row(opener, repository.system, stalled_row, 0)

    assert await repository.migrate() == 1  # 0003 on a populated database

    kept = await repository.get("default", "pay_answered")
    assert kept == answered  # the row, field for field, now merchant default's
    assert await repository.get("alice", "pay_answered") is None
    replay = await repository.claim(candidate(clock, "pay_retry", key="k-old"))
    assert (replay.created, replay.payment) == (False, answered)  # its key still replays
    other = await repository.claim(candidate(clock, "pay_alice", key="k-old", merchant="alice"))
    assert other.created  # the key is free for every other merchant
    (stalled,) = await repository.take_stalled(limit=10)  # crash recovery still finds it
    assert (stalled.payment_id, stalled.merchant_id) == ("pay_stalled", "default")
    recorded = await repository.record("pay_stalled", at=clock.now(), outcome=done)
    assert recorded.merchant_id == "default"


async def test_after_0003_postgresql_refuses_a_row_without_a_merchant(
    tmp_path: Path, clock: FakeClock
) -> None:
    async with replica_opener("postgresql", tmp_path, clock, TTL) as database:
        await database()  # migrated
        with pytest.raises(asyncpg.NotNullViolationError):
            await _insert_version_2_row(database, "postgresql", candidate(clock, "pay_1"), 0)


async def test_postgresql_reuses_a_connection_after_a_refused_statement_and_drops_a_cut_one(
    clock: FakeClock,
) -> None:
    async with postgres_schema() as location:
        store = await open_store(Settings(store=location, store_pool_size=1), clock=clock)
        repository = store.repository
        assert isinstance(repository, PostgresPaymentRepository)
        other = await asyncpg.connect(location.dsn, password=location.password)
        try:
            await repository.claim(candidate(clock, "pay_taken", key="k-1"))
            with pytest.raises(asyncpg.UniqueViolationError):  # refused: the id is taken
                await repository.claim(candidate(clock, "pay_taken", key="k-2"))
            assert (repository.pool_size(), repository.pool_idle()) == (1, 1)  # kept
            async with other.transaction():  # holds every statement on payments back
                await other.execute("LOCK TABLE payments IN ACCESS EXCLUSIVE MODE")
                with pytest.raises(TimeoutError):  # cancelled mid-query: the session is unknown
                    await asyncio.wait_for(repository.get("default", "pay_taken"), timeout=0.2)
            assert repository.pool_size() == 0  # dropped, not lent again
            await repository.claim(candidate(clock, "pay_after", key="k-3"))  # a new one serves
            assert (repository.pool_size(), repository.pool_idle()) == (1, 1)
        finally:
            await other.close()
            await store.close()
