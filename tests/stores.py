"""Opening each store for a test: memory, SQLite in tmp_path, PostgreSQL in a schema of its own.

PostgreSQL needs PAYMENTS_TEST_DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:5432/test);
without it those tests are skipped with the reason (shown by `pytest -ra`). Each use creates a
fresh schema and drops it afterwards, so concurrent runs never see each other's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from payments_service.adapters.stores.location import StoreLocation
from payments_service.adapters.stores.memory import InMemoryPaymentRepository
from payments_service.adapters.stores.postgres import PostgresPaymentRepository
from payments_service.adapters.stores.sqlite import SqlitePaymentRepository
from payments_service.config import Settings
from payments_service.domain.ports import Clock, PaymentRepository

DATABASE_URL_VARIABLE = "PAYMENTS_TEST_DATABASE_URL"
STORES = ("memory", "sqlite", "postgresql")
# The suite's values where a store needs one; the service's come from Settings.
LEASE = timedelta(seconds=30)
POOL_SIZE = 4


def postgres_location() -> StoreLocation:
    """The test database, or skip the test saying why."""
    url = os.environ.get(DATABASE_URL_VARIABLE, "").strip()
    if not url:
        pytest.skip(
            f"{DATABASE_URL_VARIABLE} is not set: PostgreSQL tests skipped "
            "(e.g. postgresql://postgres@127.0.0.1:5432/test)"
        )
    return Settings.from_env({"PAYMENTS_STORE_URL": url}).store


@asynccontextmanager
async def postgres_schema() -> AsyncIterator[StoreLocation]:
    """A fresh schema in the test database; the location points its search_path there."""
    base = postgres_location()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(base.dsn, password=base.password)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        yield dataclasses.replace(base, params=(*base.params, ("search_path", schema)))
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


async def open_sqlite(
    path: Path, *, ttl: timedelta, clock: Clock, **options: Any
) -> SqlitePaymentRepository:
    """The SQLite store at `path` with the suite's lease and `synchronous` unless `options`
    (any of `open`'s) say otherwise; the caller closes it."""
    return await SqlitePaymentRepository.open(
        str(path), ttl=ttl, clock=clock, **{"lease": LEASE, "synchronous": "full", **options}
    )


async def open_postgres(
    location: StoreLocation, *, ttl: timedelta, clock: Clock, **options: Any
) -> PostgresPaymentRepository:
    """The PostgreSQL store at `location` with the suite's lease and pool size and the service's
    operation timeout unless `options` (any of `open`'s) say otherwise; the caller closes it."""
    defaults = {
        "lease": LEASE,
        "pool_size": POOL_SIZE,
        "operation_timeout": Settings().store_timeout_seconds,
    }
    return await PostgresPaymentRepository.open(
        location.dsn, password=location.password, ttl=ttl, clock=clock, **{**defaults, **options}
    )


@asynccontextmanager
async def open_repository(
    kind: str, tmp_path: Path, clock: Clock, ttl: timedelta
) -> AsyncIterator[PaymentRepository]:
    if kind == "memory":
        yield InMemoryPaymentRepository(ttl=ttl, clock=clock)
    elif kind == "sqlite":
        sqlite = await open_sqlite(tmp_path / "payments.db", ttl=ttl, clock=clock)
        try:
            yield sqlite
        finally:
            await sqlite.close()
    else:
        async with postgres_schema() as location:
            postgres = await open_postgres(location, ttl=ttl, clock=clock)
            try:
                yield postgres
            finally:
                await postgres.close()


SqlRepository = SqlitePaymentRepository | PostgresPaymentRepository


class Replicas:
    """Opens any number of independent repositories of one SQL database (each with its own
    thread or pool, as separate processes or replicas have), and writes to that database as
    another client would, on a connection of its own (`execute`): what no repository
    operation writes, such as a row of an older release."""

    def __init__(
        self,
        open_one: Callable[..., Awaitable[SqlRepository]],
        execute: Callable[..., Awaitable[None]],
    ) -> None:
        self._open_one = open_one
        self._execute = execute

    async def __call__(self, **options: Any) -> SqlRepository:
        """Another repository (`options`: more of `open`'s, e.g. `migrate=False`)."""
        return await self._open_one(**options)

    async def execute(self, sql: str, *arguments: Any) -> None:
        """Run one statement in the database's dialect, committed when this returns."""
        await self._execute(sql, *arguments)


@asynccontextmanager
async def replica_opener(
    kind: str, tmp_path: Path, clock: Clock, ttl: timedelta, **options: Any
) -> AsyncIterator[Replicas]:
    """Replicas of one SQL database, all closed on exit. `options` go to every `open` (e.g.
    `lease`); each call may add more (e.g. `migrate=False`)."""
    async with AsyncExitStack() as stack:
        if kind == "sqlite":
            path = tmp_path / "shared.db"

            async def open_sqlite_replica(**more: Any) -> SqlRepository:
                sqlite = await open_sqlite(path, ttl=ttl, clock=clock, **options, **more)
                stack.push_async_callback(sqlite.close)
                return sqlite

            async def execute_sqlite(sql: str, *arguments: Any) -> None:
                await asyncio.to_thread(_execute_sqlite, path, sql, arguments)

            yield Replicas(open_sqlite_replica, execute_sqlite)
        else:
            location = await stack.enter_async_context(postgres_schema())

            async def open_postgres_replica(**more: Any) -> SqlRepository:
                postgres = await open_postgres(location, ttl=ttl, clock=clock, **options, **more)
                stack.push_async_callback(postgres.close)
                return postgres

            async def execute_postgres(sql: str, *arguments: Any) -> None:
                connection = await asyncpg.connect(location.dsn, password=location.password)
                try:
                    await connection.execute(sql, *arguments)
                finally:
                    await connection.close()

            yield Replicas(open_postgres_replica, execute_postgres)


def _execute_sqlite(path: Path, sql: str, arguments: tuple[Any, ...]) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=10)) as db:
        db.execute(sql, arguments)
