"""Several server processes on one store: one payment per key whichever replica a call reaches,
reads through any replica, and a replica killed mid-load loses nothing acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path

import grpc
import pytest

from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from tests.processes import ServerProcess
from tests.stores import postgres_schema

pytestmark = pytest.mark.e2e


@asynccontextmanager
async def shared_store(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        async with postgres_schema() as location:
            yield location.dsn


@contextmanager
def replicas(count: int, url: str) -> Iterator[list[ServerProcess]]:
    with ExitStack() as stack:
        started = []
        for _ in range(count):
            process = ServerProcess(PAYMENTS_STORE_URL=url, PAYMENTS_ACCESS_LOG="off")
            stack.callback(process.stop)
            started.append(process)
        yield started


def request(key: str) -> pb.RequestPaymentRequest:
    return pb.RequestPaymentRequest(
        amount_minor=4200, currency="EUR", order_id=f"order-{key}", idempotency_key=key
    )


@pytest.mark.parametrize(("kind", "count"), [("sqlite", 2), ("postgresql", 3)])
async def test_replicas_share_one_payment_per_key_and_survive_a_killed_peer(
    kind: str, count: int, tmp_path: Path
) -> None:
    async with shared_store(kind, tmp_path) as url:
        with replicas(count, url) as servers:
            channels = [grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") for s in servers]
            stubs: list[pb_grpc.PaymentServiceAsyncStub] = [
                pb_grpc.PaymentServiceStub(c) for c in channels
            ]
            try:
                # 60 concurrent calls with one new key, spread over every replica.
                answers = await asyncio.gather(
                    *(
                        stubs[i % count].RequestPayment(request("one-key"), timeout=15)
                        for i in range(60)
                    )
                )
                assert {a.payment_id for a in answers} == {answers[0].payment_id}
                assert all(a == answers[0] for a in answers)
                for stub in stubs:
                    got = await stub.GetPayment(
                        pb.GetPaymentRequest(payment_id=answers[0].payment_id), timeout=5
                    )
                    assert got.created_at == answers[0].created_at

                acked = await load_and_kill_first(servers, stubs)
                survivors = stubs[1:]
                for number, (key, response) in enumerate(acked.items()):
                    stub = survivors[number % len(survivors)]
                    got = await stub.GetPayment(
                        pb.GetPaymentRequest(payment_id=response.payment_id), timeout=5
                    )
                    assert (got.idempotency_key, got.status) == (key, response.status)
                    assert await stub.RequestPayment(request(key), timeout=10) == response
            finally:
                for channel in channels:
                    await channel.close(None)


async def load_and_kill_first(
    servers: list[ServerProcess], stubs: list[pb_grpc.PaymentServiceAsyncStub]
) -> dict[str, pb.RequestPaymentResponse]:
    """40 workers per replica send new keys; once 100 are acknowledged replica 0 is killed with
    SIGKILL, and the others must acknowledge 100 more afterwards."""
    acked: dict[str, pb.RequestPaymentResponse] = {}
    killed = asyncio.Event()
    after_kill = 0
    enough = asyncio.Event()

    async def worker(replica: int, number: int) -> None:
        nonlocal after_kill
        sequence = 0
        while not enough.is_set():
            key = f"load-{replica}-{number}-{sequence}"
            sequence += 1
            try:
                response = await stubs[replica].RequestPayment(request(key), timeout=15)
            except grpc.aio.AioRpcError:
                assert replica == 0, "a surviving replica failed a call"
                assert killed.is_set(), "a call failed before any replica was killed"
                return
            acked[key] = response
            if killed.is_set():
                after_kill += 1
                if after_kill >= 100:
                    enough.set()
            elif len(acked) >= 100:
                servers[0].proc.kill()
                killed.set()

    await asyncio.gather(*(worker(replica, n) for replica in range(len(stubs)) for n in range(40)))
    return acked
