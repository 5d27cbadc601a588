"""Opening each store for a test: memory, SQLite in tmp_path, PostgreSQL in a schema of its own.

PostgreSQL needs PAYMENTS_TEST_DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:5432/test);
without it those tests are skipped with the reason (shown by `pytest -ra`). Each use creates a
fresh schema and drops it afterwards, so concurrent runs never see each other's rows.
"""

from __future__ import annotations

import dataclasses
import os
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


@asynccontextmanager
async def open_repository(
    kind: str, tmp_path: Path, clock: Clock, ttl: timedelta
) -> AsyncIterator[PaymentRepository]:
    if kind == "memory":
        yield InMemoryPaymentRepository(ttl=ttl, clock=clock)
    elif kind == "sqlite":
        sqlite = await SqlitePaymentRepository.open(
            str(tmp_path / "payments.db"), ttl=ttl, clock=clock
        )
        try:
            yield sqlite
        finally:
            await sqlite.close()
    else:
        async with postgres_schema() as location:
            postgres = await PostgresPaymentRepository.open(
                location.dsn, password=location.password, ttl=ttl, clock=clock
            )
            try:
                yield postgres
            finally:
                await postgres.close()


SqlRepository = SqlitePaymentRepository | PostgresPaymentRepository


@asynccontextmanager
async def replica_opener(
    kind: str, tmp_path: Path, clock: Clock, ttl: timedelta, **options: Any
) -> AsyncIterator[Callable[..., Awaitable[SqlRepository]]]:
    """Opens any number of independent repositories of one SQL database (each with its own
    worker thread or pool, as separate processes or replicas have), all closed on exit.
    `options` go to every `open` (e.g. `lease`); each call may add more (e.g. `migrate=False`)."""
    async with AsyncExitStack() as stack:
        if kind == "sqlite":
            path = str(tmp_path / "shared.db")

            async def open_sqlite(**more: Any) -> SqlRepository:
                sqlite = await SqlitePaymentRepository.open(
                    path, ttl=ttl, clock=clock, **options, **more
                )
                stack.push_async_callback(sqlite.close)
                return sqlite

            yield open_sqlite
        else:
            location = await stack.enter_async_context(postgres_schema())

            async def open_postgres(**more: Any) -> SqlRepository:
                postgres = await PostgresPaymentRepository.open(
                    location.dsn,
                    password=location.password,
                    ttl=ttl,
                    clock=clock,
                    pool_size=4,
                    **options,
                    **more,
                )
                stack.push_async_callback(postgres.close)
                return postgres

            yield open_postgres
