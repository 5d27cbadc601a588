"""kill -9 mid-load on a durable store, then a restart on the same store: nothing acknowledged
is lost, replays answer exactly as before, and no key has two payments."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import grpc
import pytest

from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from tests.processes import ServerProcess
from tests.stores import postgres_schema

WORKERS = 150
KILL_AFTER_ACKS = 100


@dataclass
class Load:
    requests: dict[str, pb.RequestPaymentRequest] = field(default_factory=dict)
    acked: dict[str, pb.RequestPaymentResponse] = field(default_factory=dict)
    in_flight: int = 0
    in_flight_at_kill: int = 0


@asynccontextmanager
async def store_url(
    kind: str, tmp_path: Path
) -> AsyncIterator[tuple[str, Callable[[], Awaitable[int]]]]:
    """The store URL and an async function counting keys that hold more than one payment."""
    if kind == "sqlite":
        path = tmp_path / "payments.db"

        async def duplicates_sqlite() -> int:
            with sqlite3.connect(path) as db:
                return len(db.execute(DUPLICATES).fetchall())

        yield f"sqlite:///{path}", duplicates_sqlite
        return
    async with postgres_schema() as location:

        async def duplicates_postgres() -> int:
            connection = await asyncpg.connect(location.dsn, password=location.password)
            try:
                return len(await connection.fetch(DUPLICATES))
            finally:
                await connection.close()

        yield location.dsn, duplicates_postgres


DUPLICATES = "SELECT idempotency_key FROM payments GROUP BY idempotency_key HAVING COUNT(*) > 1"


async def load_until_killed(server: ServerProcess) -> Load:
    """WORKERS callers send new payments until KILL_AFTER_ACKS are acknowledged, then the
    server is killed with SIGKILL while the other calls are in flight."""
    load = Load()
    killed = asyncio.Event()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.PaymentServiceStub(channel)

        async def worker(number: int) -> None:
            sequence = 0
            while not killed.is_set():
                key = f"crash-{number}-{sequence}"
                sequence += 1
                metadata = {"simulate": "decline"} if sequence % 5 == 0 else {}
                request = pb.RequestPaymentRequest(
                    amount_minor=100 + number,
                    currency="EUR",
                    order_id=key,
                    idempotency_key=key,
                    metadata=metadata,
                )
                load.requests[key] = request
                load.in_flight += 1
                try:
                    response = await stub.RequestPayment(request, timeout=30)
                except grpc.aio.AioRpcError:
                    return  # the server is gone: this call's outcome is unknown
                finally:
                    load.in_flight -= 1
                load.acked[key] = response
                if len(load.acked) >= KILL_AFTER_ACKS and not killed.is_set():
                    load.in_flight_at_kill = load.in_flight
                    server.proc.kill()
                    killed.set()

        await asyncio.gather(*(worker(n) for n in range(WORKERS)))
    server.proc.wait(timeout=10)
    return load


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_kill_9_mid_load_loses_no_acknowledged_payment(kind: str, tmp_path: Path) -> None:
    async with store_url(kind, tmp_path) as (url, duplicates):
        first = ServerProcess(PAYMENTS_STORE_URL=url, PAYMENTS_ACCESS_LOG="off")
        try:
            load = await load_until_killed(first)
        finally:
            first.stop()
        assert load.in_flight_at_kill >= 100
        assert len(load.acked) >= KILL_AFTER_ACKS

        second = ServerProcess(PAYMENTS_STORE_URL=url, PAYMENTS_ACCESS_LOG="off")
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as channel:
                stub = pb_grpc.PaymentServiceStub(channel)
                for key, response in load.acked.items():
                    fetched = await stub.GetPayment(
                        pb.GetPaymentRequest(payment_id=response.payment_id), timeout=10
                    )
                    request = load.requests[key]
                    assert (fetched.idempotency_key, fetched.amount_minor, fetched.status) == (
                        key,
                        request.amount_minor,
                        response.status,
                    )
                    assert fetched.created_at == response.created_at
                    replay = await stub.RequestPayment(request, timeout=10)
                    assert replay == response  # field for field, created_at included
        finally:
            second.stop()
        assert await duplicates() == 0


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("kind", "deadline", "expected"),
    [
        ("sqlite", "600", pb.PAYMENT_STATUS_SUCCEEDED),
        ("sqlite", "1", pb.PAYMENT_STATUS_FAILED),
        ("postgresql", "600", pb.PAYMENT_STATUS_SUCCEEDED),
    ],
)
async def test_payments_a_crash_left_pending_are_resumed_or_failed_never_pending_forever(
    kind: str, deadline: str, expected: int, tmp_path: Path
) -> None:
    async with store_url(kind, tmp_path) as (url, _):
        # Slow payments answer PENDING after 0.2 s and would settle only after 30 s.
        first = ServerProcess(
            PAYMENTS_STORE_URL=url,
            PAYMENTS_PROCESSOR_TIMEOUT_SECONDS="0.2",
            PAYMENTS_SETTLEMENT_TIMEOUT_SECONDS="1",  # lease: 0.2 + 1 + 5 s
            PAYMENTS_SIMULATED_SLOW_SECONDS="30",
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as channel:
                stub = pb_grpc.PaymentServiceStub(channel)
                answers = await asyncio.gather(
                    *(
                        stub.RequestPayment(
                            pb.RequestPaymentRequest(
                                amount_minor=100,
                                currency="EUR",
                                order_id=f"o-{n}",
                                idempotency_key=f"stalled-{n}",
                                metadata={"simulate": "slow"},
                            ),
                            timeout=10,
                        )
                        for n in range(10)
                    )
                )
            assert {a.status for a in answers} == {pb.PAYMENT_STATUS_PENDING}
            first.proc.kill()  # the settlements die with the process
            first.proc.wait(timeout=10)
        finally:
            first.stop()

        second = ServerProcess(
            PAYMENTS_STORE_URL=url,
            PAYMENTS_SIMULATED_SLOW_SECONDS="0.1",
            PAYMENTS_RECOVERY_INTERVAL_SECONDS="0.2",
            PAYMENTS_SETTLEMENT_DEADLINE_SECONDS=deadline,
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as channel:
                stub = pb_grpc.PaymentServiceStub(channel)
                loop = asyncio.get_running_loop()
                stop_at = loop.time() + 30
                pending = {a.payment_id for a in answers}
                while pending:
                    assert loop.time() < stop_at, f"{len(pending)} payments still PENDING"
                    for payment_id in sorted(pending):
                        got = await stub.GetPayment(
                            pb.GetPaymentRequest(payment_id=payment_id), timeout=5
                        )
                        if got.status != pb.PAYMENT_STATUS_PENDING:
                            assert got.status == expected
                            pending.discard(payment_id)
                    await asyncio.sleep(0.1)  # polling interval, not synchronisation
        finally:
            second.stop()
