"""The SQLite store when its file system fails it, for real: out of space (a tmpfs filled up),
files made immutable (`chattr +i`), and another process holding the write lock past the busy
timeout. Each is the port's store error (RESOURCE_EXHAUSTED STORE_FULL, UNAVAILABLE
STORE_READ_ONLY, UNAVAILABLE STORE_UNAVAILABLE: never INTERNAL), reads go on where they can,
and writes work again once the fault is gone, without reopening the store.

The first two need root (mount, chattr); elsewhere they are skipped with the reason."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2

from payments_service.adapters.stores.sqlite import SqlitePaymentRepository
from payments_service.bootstrap import build_interceptors, build_service
from payments_service.domain.errors import StoreFullError, StoreReadOnlyError, StoreUnavailableError
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.transport.error_table import answer_for
from payments_service.transport.grpc_server import start_server
from tests.conftest import TEST_SETTINGS, payment_request
from tests.fakes import FakeClock, SequentialIds
from tests.filesystems import immutable, small_filesystem
from tests.integration.contract.test_repository_contract import candidate
from tests.integration.test_grpc_api import detail
from tests.stores import open_sqlite

TTL = timedelta(hours=1)
FILESYSTEM = "2m"  # the tmpfs
ROOM = 192 * 1024  # what the ballast leaves free for the database
METADATA = {f"note{i}": "n" * 400 for i in range(4)}  # ~1.6 KB a payment


@pytest.fixture
def filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs for the store; skipped where mounting is not allowed."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    with small_filesystem(mount, FILESYSTEM):
        yield mount


@pytest.fixture
def ballast(filesystem: Path) -> Path:
    """A file that leaves only `ROOM` bytes of `filesystem` free."""
    ballast = filesystem / "ballast"
    stats = os.statvfs(filesystem)
    ballast.write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - ROOM))
    return ballast


async def fill(store: SqlitePaymentRepository, clock: FakeClock) -> StoreFullError:
    """Claim new payments until the store is full; the error it then raises."""
    for number in range(10_000):
        try:
            await store.claim(
                candidate(clock, f"pay_{number}", key=f"k{number}", metadata=METADATA)
            )
        except StoreFullError as full:
            return full
    raise AssertionError("the store never filled up")


async def test_a_full_file_system_is_store_full_reads_go_on_and_room_brings_writes_back(
    filesystem: Path, ballast: Path, clock: FakeClock
) -> None:
    store = await open_sqlite(filesystem / "payments.db", ttl=TTL, clock=clock)
    try:
        first = await store.claim(candidate(clock, "pay_first", key="first", metadata=METADATA))
        answer = answer_for(await fill(store, clock))
        assert (answer.code, answer.error_kind) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "STORE_FULL",
        )
        retry = error_details_pb2.RetryInfo()
        assert any(detail.Unpack(retry) for detail in answer.status.details)
        assert await store.get("default", first.payment.payment_id) == first.payment

        service = build_service(TEST_SETTINGS, clock=clock, ids=SequentialIds(), repository=store)
        server = await start_server(service, "127.0.0.1:0", build_interceptors())
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stub = pb_grpc.PaymentServiceStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.RequestPayment(payment_request(metadata=METADATA), timeout=5)
                assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                info = detail(refused.value, error_details_pb2.ErrorInfo)
                assert info.reason == "STORE_FULL"

                os.remove(ballast)  # room again: no restart, no reopening
                created = await stub.RequestPayment(payment_request(metadata=METADATA), timeout=5)
                assert created.payment_id
        finally:
            await server.stop(0)
            await service.drain(5)
    finally:
        await store.close()


async def test_immutable_files_refuse_writes_with_store_read_only_and_reads_go_on(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "payments.db"
    store = await open_sqlite(path, ttl=TTL, clock=clock)
    try:
        first = await store.claim(candidate(clock, "pay_first", key="first"))
        # The database and its WAL, not the -shm file: SQLite maps that one into memory, and a
        # write into the mapping of an immutable file is SIGBUS (the e2e test covers it).
        with immutable(path, path.with_name(path.name + "-wal")):
            for attempt in range(2):
                with pytest.raises(StoreReadOnlyError) as refused:
                    await store.claim(candidate(clock, f"pay_{attempt}", key=f"k{attempt}"))
                answer = answer_for(refused.value)
                assert (answer.code, answer.log_level, answer.error_kind) == (
                    grpc.StatusCode.UNAVAILABLE,
                    "error",
                    "STORE_READ_ONLY",
                )
            assert await store.get("default", first.payment.payment_id) == first.payment
        created = await store.claim(candidate(clock, "pay_after", key="after"))
        assert created.created
    finally:
        await store.close()


async def test_a_write_lock_held_past_the_busy_timeout_is_unavailable_then_clears(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "payments.db"
    store = await open_sqlite(path, ttl=TTL, clock=clock, busy_timeout=0.1)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process's long transaction
        with pytest.raises(StoreUnavailableError) as busy:
            await store.claim(candidate(clock, "pay_1", key="k1"))
        assert answer_for(busy.value).code is grpc.StatusCode.UNAVAILABLE
        assert await store.get("default", "pay_1") is None  # reads do not wait for the lock
        await store.ping()  # nor does the health check's ping: the store is reachable
        holder.execute("ROLLBACK")
        assert (await store.claim(candidate(clock, "pay_1", key="k1"))).created
    finally:
        holder.close()
        await store.close()
