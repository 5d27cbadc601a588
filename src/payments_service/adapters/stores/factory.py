"""Opening the store `PAYMENTS_STORE_URL` names: connect with retry and backoff, migrate, and
hand back the repository with its `close`.

The one place that knows every store adapter. An unreachable database is retried for
`PAYMENTS_STORE_CONNECT_TIMEOUT_SECONDS` with backoff and jitter (`backoff.Backoff`; a database
starting next to the service is normal); after that `StoreOpenTimeoutError` carries one line for
the operator, never the password.
A database migrated by a newer release is not retried: `SchemaTooNewError` at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from payments_service.adapters.stores.backoff import Backoff
from payments_service.adapters.stores.location import redact
from payments_service.adapters.stores.memory import MIB, InMemoryPaymentRepository
from payments_service.adapters.stores.migrations import SchemaTooNewError

if TYPE_CHECKING:
    from payments_service.adapters.stores.postgres import PostgresPaymentRepository
    from payments_service.config import Settings
    from payments_service.domain.ports import Clock, PaymentRepository, StalledSettlements

log = structlog.get_logger(__name__)


class StoreOpenTimeoutError(Exception):
    """The store could not be opened within the connect timeout."""


@dataclass(frozen=True, slots=True)
class Store:
    """An open store: its repository, its kind (memory, sqlite, postgresql), how to close it,
    for PostgreSQL the repository again for its pool gauges, for durable stores the repository
    again for crash recovery and how to ping it (`health.StoreHealth`), and for SQLite its
    transaction counts."""

    repository: PaymentRepository
    system: str
    close: Callable[[], Awaitable[None]]
    pool: PostgresPaymentRepository | None = None
    stalled: StalledSettlements | None = None  # durable stores: crash recovery
    ping: Callable[[], Awaitable[None]] | None = None  # durable stores: can it be reached?
    # SQLite: (transactions committed, operations they carried), for the group-commit metrics
    transactions: Callable[[], tuple[int, int]] | None = None


async def open_store(settings: Settings, *, clock: Clock, migrate: bool = True) -> Store:
    """Open (and by default migrate) the configured store, retrying for the connect timeout."""
    location = settings.store
    timeout = settings.store_connect_timeout_seconds
    deadline = time.monotonic() + timeout
    backoff = Backoff()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await _open(settings, clock=clock, migrate=migrate)
        except SchemaTooNewError:
            raise
        except Exception as exc:  # any failure to connect is retried until the deadline
            cause = exc.__cause__ or exc  # the driver's error, under the port's store error
            error = redact(f"{type(cause).__name__}: {cause}", location)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StoreOpenTimeoutError(
                    f"could not open the store {location.redacted} within {timeout:g} s "
                    f"({attempt} attempts); last error: {error}"
                ) from None
            delay = min(backoff.next_delay(), remaining)
            log.warning(
                "store_connect_failed",
                store=location.redacted,
                attempt=attempt,
                error=error,
                retry_in_seconds=round(delay, 3),
            )
            await asyncio.sleep(delay)


async def _open(settings: Settings, *, clock: Clock, migrate: bool) -> Store:
    location = settings.store
    ttl = timedelta(seconds=settings.idempotency_ttl_seconds)
    lease = timedelta(seconds=settings.settlement_lease_seconds)
    if location.kind == "sqlite":
        from payments_service.adapters.stores.sqlite import SqlitePaymentRepository  # noqa: PLC0415

        sqlite = await SqlitePaymentRepository.open(
            location.path,
            ttl=ttl,
            clock=clock,
            migrate=migrate,
            synchronous=settings.store_sqlite_synchronous,
            lease=lease,
        )
        return Store(
            sqlite,
            "sqlite",
            sqlite.close,
            stalled=sqlite,
            ping=sqlite.ping,
            transactions=sqlite.transactions,
        )
    if location.kind == "postgresql":
        from payments_service.adapters.stores.postgres import PostgresPaymentRepository  # noqa: PLC0415

        postgres = await PostgresPaymentRepository.open(
            location.dsn,
            password=location.password,
            ttl=ttl,
            clock=clock,
            migrate=migrate,
            pool_size=settings.store_pool_size,
            operation_timeout=settings.store_timeout_seconds,
            lease=lease,
        )
        return Store(
            postgres,
            "postgresql",
            postgres.close,
            pool=postgres,
            stalled=postgres,
            ping=postgres.ping,
        )
    return memory_store(settings, clock=clock)


def memory_store(settings: Settings, *, clock: Clock) -> Store:
    """The in-memory store: opens at once, holds the idempotency TTL and the memory cap."""
    memory = InMemoryPaymentRepository(
        ttl=timedelta(seconds=settings.idempotency_ttl_seconds),
        clock=clock,
        max_bytes=settings.memory_store_max_mib * MIB,
    )
    return Store(memory, "memory", _nothing_to_close)


async def _nothing_to_close() -> None:
    return None
