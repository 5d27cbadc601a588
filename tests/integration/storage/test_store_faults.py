"""The PostgreSQL store when the network or the server fails: the contract's write and read
paths through a TCP fault proxy (tests/faultproxy.py) and against real server errors. Every
failure to reach the store is the port's StoreUnavailableError, which the error table answers
UNAVAILABLE with RetryInfo (never INTERNAL); read-only is STORE_READ_ONLY; and the store works
again once the fault ends, without a restart and without keeping a dead connection."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2

from payments_service.adapters.stores.location import StoreLocation
from payments_service.adapters.stores.postgres import PostgresPaymentRepository
from payments_service.domain.errors import StoreReadOnlyError, StoreUnavailableError
from payments_service.domain.model import Outcome, PaymentStatus
from payments_service.transport.error_table import answer_for
from tests.fakes import FakeClock
from tests.faultproxy import FaultProxy
from tests.integration.contract.test_repository_contract import candidate
from tests.stores import POOL_SIZE, open_postgres, postgres_schema

TTL = timedelta(minutes=10)
OPERATION_TIMEOUT = 0.5  # PAYMENTS_STORE_TIMEOUT_SECONDS for these stores
SUCCEEDED = Outcome(PaymentStatus.SUCCEEDED, "ok")
Operation = Callable[[PostgresPaymentRepository, FakeClock], Awaitable[Any]]


async def claim(store: PostgresPaymentRepository, clock: FakeClock) -> Any:
    return await store.claim(candidate(clock, f"pay_{uuid.uuid4().hex}", key=uuid.uuid4().hex))


async def get(store: PostgresPaymentRepository, clock: FakeClock) -> Any:
    return await store.get("default", "pay_1")


async def record(store: PostgresPaymentRepository, clock: FakeClock) -> Any:
    return await store.record("pay_1", at=clock.now(), outcome=SUCCEEDED)


async def take_stalled(store: PostgresPaymentRepository, clock: FakeClock) -> Any:
    return await store.take_stalled(limit=10)


async def purge_expired(store: PostgresPaymentRepository, clock: FakeClock) -> Any:
    return await store.purge_expired(limit=10)


async def oldest_pending(store: PostgresPaymentRepository, clock: FakeClock) -> Any:
    return await store.oldest_pending()


OPERATIONS: dict[str, Operation] = {
    "claim": claim,
    "get": get,
    "record": record,
    "take_stalled": take_stalled,
    "purge_expired": purge_expired,
    "oldest_pending": oldest_pending,
}


@dataclass
class Behind:
    """A PostgreSQL store whose connections go through a fault proxy."""

    store: PostgresPaymentRepository
    proxy: FaultProxy
    location: StoreLocation  # the database itself, not through the proxy
    clock: FakeClock


@pytest.fixture
async def behind() -> AsyncIterator[Behind]:
    clock = FakeClock()
    async with postgres_schema() as location:
        proxy = await FaultProxy(location.host, location.port or 5432).start()
        through = dataclasses.replace(location, host="127.0.0.1", port=proxy.port)
        store = await open_postgres(
            through, ttl=TTL, clock=clock, operation_timeout=OPERATION_TIMEOUT
        )
        try:
            await store.claim(candidate(clock, "pay_1"))  # what `get` and `record` find
            yield Behind(store, proxy, location, clock)
        finally:
            await store.close()
            await proxy.close()


def assert_unavailable_with_retry_info(error: BaseException) -> None:
    assert isinstance(error, StoreUnavailableError), repr(error)
    answer = answer_for(error)
    assert answer.code is grpc.StatusCode.UNAVAILABLE
    assert answer.error_kind == "STORE_UNAVAILABLE"
    retry = error_details_pb2.RetryInfo()
    assert any(detail.Unpack(retry) for detail in answer.status.details)
    assert retry.retry_delay.seconds == 1


async def works_again(operation: Operation, behind: Behind, within: float = 5.0) -> float:
    """Seconds until `operation` succeeds again; every failure meanwhile is UNAVAILABLE."""
    started = time.monotonic()
    while True:
        try:
            await operation(behind.store, behind.clock)
        except Exception as error:
            assert_unavailable_with_retry_info(error)
            assert time.monotonic() - started < within, "the store did not recover in time"
            await asyncio.sleep(0.02)
        else:
            return time.monotonic() - started


# What each operation answers through a healthy proxy, given the fixture's one PENDING payment.
ANSWERS: dict[str, Callable[[Any, Behind], bool]] = {
    "claim": lambda answer, _: answer.created,
    "get": lambda answer, _: answer.payment_id == "pay_1",
    "record": lambda answer, _: (
        (answer.payment_id, answer.status) == ("pay_1", PaymentStatus.SUCCEEDED)
    ),
    "take_stalled": lambda answer, _: answer == [],
    "purge_expired": lambda answer, _: answer == 0,
    "oldest_pending": lambda answer, behind: answer == behind.clock.now(),
}


@pytest.mark.parametrize("name", OPERATIONS)
async def test_through_the_proxy_every_path_works(behind: Behind, name: str) -> None:
    answer = await OPERATIONS[name](behind.store, behind.clock)
    assert ANSWERS[name](answer, behind), answer


@pytest.mark.parametrize("name", OPERATIONS)
async def test_a_reset_and_refusing_network_is_unavailable_then_recovers(
    behind: Behind, name: str
) -> None:
    operation = OPERATIONS[name]
    behind.proxy.resetting()
    for _ in range(3):  # the lost pooled connection, then refused reconnects
        with pytest.raises(StoreUnavailableError) as raised:
            await operation(behind.store, behind.clock)
        assert_unavailable_with_retry_info(raised.value)
    assert behind.store.pool_size() == 0  # no dead connection kept
    behind.proxy.passing()
    await works_again(operation, behind)


@pytest.mark.parametrize("name", OPERATIONS)
async def test_a_stalled_network_is_unavailable_after_the_operation_timeout(
    behind: Behind, name: str
) -> None:
    operation = OPERATIONS[name]
    behind.proxy.stalling()
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as raised:
        await operation(behind.store, behind.clock)
    waited = time.monotonic() - started
    assert_unavailable_with_retry_info(raised.value)
    assert OPERATION_TIMEOUT <= waited < OPERATION_TIMEOUT + 1.0
    behind.proxy.passing()
    await works_again(operation, behind)


async def test_a_failed_connect_is_not_retried_per_call_but_with_backoff(behind: Behind) -> None:
    behind.proxy.resetting()
    with pytest.raises(StoreUnavailableError):
        await get(behind.store, behind.clock)  # the pooled connection was lost
    before = behind.proxy.connections
    outcomes = await asyncio.gather(
        *(get(behind.store, behind.clock) for _ in range(50)), return_exceptions=True
    )
    assert all(isinstance(outcome, StoreUnavailableError) for outcome in outcomes)
    # 50 calls while the database refuses: at most one connect per pool slot, not one per call.
    assert behind.proxy.connections - before <= POOL_SIZE


async def test_a_terminated_backend_fails_one_operation_and_the_next_reconnects(
    behind: Behind,
) -> None:
    application = f"faults-{uuid.uuid4().hex[:12]}"
    location = dataclasses.replace(
        behind.location, params=(*behind.location.params, ("application_name", application))
    )
    store = await open_postgres(location, ttl=TTL, clock=behind.clock, operation_timeout=2.0)
    try:
        await get(store, behind.clock)  # the pooled connection, to be terminated
        admin = await asyncpg.connect(behind.location.dsn, password=behind.location.password)
        try:
            terminated = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1",
                application,
            )
        finally:
            await admin.close()
        assert terminated == 1
        try:
            await get(store, behind.clock)
        except StoreUnavailableError as error:  # the termination reached the client first
            assert_unavailable_with_retry_info(error)
        got = await store.get("default", "pay_1")  # a new connection, at once
        assert got is not None
        assert got.payment_id == "pay_1"
    finally:
        await store.close()


async def test_a_read_only_database_refuses_writes_with_store_read_only_and_still_reads(
    behind: Behind,
) -> None:
    read_only = dataclasses.replace(
        behind.location,
        params=(*behind.location.params, ("default_transaction_read_only", "on")),
    )
    store = await open_postgres(read_only, ttl=TTL, clock=behind.clock, migrate=False)
    try:
        read = await store.get("default", "pay_1")
        assert read is not None
        assert read.payment_id == "pay_1"
        for operation in (claim, record, purge_expired, take_stalled):
            with pytest.raises(StoreReadOnlyError) as raised:
                await operation(store, behind.clock)
            answer = answer_for(raised.value)
            assert (answer.code, answer.log_level, answer.error_kind) == (
                grpc.StatusCode.UNAVAILABLE,
                "error",
                "STORE_READ_ONLY",
            )
        assert store.pool_size() == 1  # a refused statement keeps its connection
    finally:
        await store.close()


async def test_ping_answers_whether_the_database_can_be_reached(behind: Behind) -> None:
    await behind.store.ping()
    behind.proxy.resetting()
    with pytest.raises(StoreUnavailableError):
        await behind.store.ping()
    behind.proxy.stalling()
    with pytest.raises(StoreUnavailableError):
        await behind.store.ping()  # the connect timeout
    behind.proxy.passing()
    await behind.store.ping()
