"""The real `payments-server` through store faults, under a steady load of new payments.

- PostgreSQL: the test's own database (never the shared server: only that database's backends
  are terminated and only it refuses connections) loses every backend, then refuses connections
  for 3 s (`ALLOW_CONNECTIONS false`) and comes back. Clients get UNAVAILABLE with RetryInfo and
  never INTERNAL; readiness goes NOT_SERVING and back while liveness stays SERVING; the server
  recovers without a restart; every acknowledged payment reads back; every key whose call failed
  answers its retry within the convergence bound; the metrics and logs say what happened.
- SQLite: the files made immutable under load. The process either keeps answering (OK or
  UNAVAILABLE, never INTERNAL) or, when the kernel kills it (SIGBUS: SQLite's shared memory is
  a mapped file), leaves "Fatal Python error" on stderr; a SIGBUS sent by hand shows the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments_service.adapters.stores.backoff import MAX_DELAY_SECONDS
from payments_service.application.service import FIRST_ANSWER_MARGIN_SECONDS
from payments_service.config import Settings
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from tests import polling
from tests.filesystems import immutable
from tests.integration.test_grpc_api import detail
from tests.processes import ServerProcess
from tests.scrape import sample
from tests.stores import postgres_location

WORKERS = 8
CALL_TIMEOUT = 10.0  # each call of the load
OUTAGE_SECONDS = 3.0
READY = "payments.v1.PaymentService"
SERVING: int = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: int = health_pb2.HealthCheckResponse.NOT_SERVING
DEFAULTS = Settings()
# Readiness: NOT_SERVING at the first failed ping after a failed call; SERVING again within one
# ping backoff (at most MAX_DELAY_SECONDS) of the database's return, plus the ping.
DOWN_BOUND = DEFAULTS.store_timeout_seconds + 1.0
UP_BOUND = MAX_DELAY_SECONDS + DEFAULTS.store_timeout_seconds + 1.0
# A key whose call failed answers its retry once the first call's time is up.
FIRST_ANSWER_SECONDS = DEFAULTS.processor_timeout_seconds + FIRST_ANSWER_MARGIN_SECONDS


@dataclass
class Load:
    """New payments at a steady rate from `WORKERS` callers, each key used once."""

    stub: pb_grpc.PaymentServiceAsyncStub
    acked: dict[str, str] = field(default_factory=dict)  # key -> payment id
    failed: dict[str, grpc.aio.AioRpcError] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def worker(self, number: int) -> None:
        sent = 0
        while not self.stop.is_set():
            key = f"w{number}-{sent}"
            sent += 1
            try:
                reply = await self.stub.RequestPayment(request(key), timeout=CALL_TIMEOUT)
            except grpc.aio.AioRpcError as error:
                self.failed[key] = error
                await asyncio.sleep(0.05)  # a client backs off (RetryInfo says 1 s)
            else:
                self.acked[key] = reply.payment_id


def request(key: str) -> pb.RequestPaymentRequest:
    return pb.RequestPaymentRequest(
        amount_minor=4200, currency="EUR", order_id=f"order-{key}", idempotency_key=key
    )


@contextlib.asynccontextmanager
async def own_database() -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """A database of this test's own on the shared server (its URL, and an admin connection
    to another database for the faults); dropped afterwards."""
    base = postgres_location()
    name = f"outage_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(base.dsn, password=base.password)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        yield f"postgresql://{base.user}@{base.host}:{base.port or 5432}/{name}", admin
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def until(health: health_pb2_grpc.HealthAsyncStub, status: int, within: float) -> float:
    """Seconds until readiness is `status`; fails past `within`."""

    async def reached() -> bool:
        reply = await health.Check(health_pb2.HealthCheckRequest(service=READY), timeout=5)
        return bool(reply.status == status)

    return await polling.until(
        reached,
        within,
        every=0.05,
        what=f"readiness {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}",
    )


async def test_a_postgresql_outage_costs_no_payment_and_heals_on_its_own() -> None:
    async with own_database() as (url, admin):
        database = url.rsplit("/", 1)[1]
        server = ServerProcess(
            PAYMENTS_STORE_URL=url,
            PAYMENTS_METRICS_ADDRESS="127.0.0.1:0",
            PAYMENTS_ACCESS_LOG="off",
        )
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stub = pb_grpc.PaymentServiceStub(channel)
                health = health_pb2_grpc.HealthStub(channel)
                load = Load(stub)
                workers = [asyncio.ensure_future(load.worker(n)) for n in range(WORKERS)]

                async def terminate() -> int:
                    count: int = await admin.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = $1 AND pid <> pg_backend_pid()",
                        database,
                    )
                    return count

                await asyncio.sleep(1.0)  # load, healthy
                assert await terminate() >= 1  # the backends go, the database stays
                await asyncio.sleep(1.0)
                await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
                await terminate()
                outage_started = time.monotonic()
                down = await until(health, NOT_SERVING, DOWN_BOUND)
                alive = await health.Check(health_pb2.HealthCheckRequest(service=""))
                assert alive.status == SERVING  # liveness: not restarted for the store
                assert sample(server.started["metrics_port"], "payments_health_serving") == 0
                await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_started)))
                await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
                up = await until(health, SERVING, UP_BOUND)
                acked_before = len(load.acked)
                # Load, healed: a payment is acknowledged within 1 s of load plus one call's
                # deadline (what the check allowed when it slept 1 s, then waited for the calls
                # in flight).
                flowing = await polling.until(
                    lambda: len(load.acked) > acked_before,
                    within=1.0 + CALL_TIMEOUT,
                    what="a payment acknowledged after the outage",
                )
                load.stop.set()
                await asyncio.gather(*workers)

                codes = {error.code() for error in load.failed.values()}
                assert codes == {grpc.StatusCode.UNAVAILABLE}, codes
                for error in load.failed.values():
                    reason = detail(error, error_details_pb2.ErrorInfo).reason
                    assert reason in {"STORE_UNAVAILABLE", "STORE_READ_ONLY"}, reason
                    assert detail(error, error_details_pb2.RetryInfo).retry_delay.seconds == 1

                # No acknowledged payment lost: each reads back, and a replay answers it.
                for key, payment_id in load.acked.items():
                    got = await stub.GetPayment(
                        pb.GetPaymentRequest(payment_id=payment_id), timeout=5
                    )
                    assert got.payment_id == payment_id
                    again = await stub.RequestPayment(request(key), timeout=5)
                    assert again.payment_id == payment_id

                # Every key whose call failed converges on one payment at its first retry.
                await asyncio.sleep(FIRST_ANSWER_SECONDS)  # the last failure's time is up
                started = time.monotonic()
                retried = await asyncio.gather(
                    # All at once on a shared 2-core machine: a generous deadline, the time is
                    # measured and printed.
                    *(stub.RequestPayment(request(key), timeout=30) for key in load.failed),
                    return_exceptions=True,
                )
                converged = time.monotonic() - started
                refused = [r for r in retried if not isinstance(r, pb.RequestPaymentResponse)]
                assert not refused, refused[:3]
                # SUCCEEDED, or PENDING when the charge took longer than the processor deadline.
                assert {r.status for r in retried} <= {  # type: ignore[union-attr]
                    pb.PAYMENT_STATUS_SUCCEEDED,
                    pb.PAYMENT_STATUS_PENDING,
                }
                for key, reply in zip(load.failed, retried, strict=True):
                    again = await stub.RequestPayment(request(key), timeout=5)
                    assert again.payment_id == reply.payment_id  # type: ignore[union-attr]

                port = server.started["metrics_port"]
                assert sample(port, "payments_store_errors_total", kind="unavailable") > 0
                assert sample(port, "payments_store_errors_total", kind="other") == 0
                assert sample(port, "payments_health_serving") == 1
        finally:
            server.proc.send_signal(signal.SIGTERM)
            server.proc.wait(timeout=20)
            server.stop()
    events = [str(line["event"]) for line in server.seen]
    levels = {str(line["event"]): line["level"] for line in server.seen}
    assert (levels.get("store_unreachable"), levels.get("store_reachable")) == ("error", "info")
    assert "unhandled_exception" not in events
    assert "settlement_failed" not in events
    assert server.proc.returncode == 0
    print(
        f"\n{len(load.acked)} acknowledged, {len(load.failed)} UNAVAILABLE; readiness "
        f"NOT_SERVING after {down:.2f} s, SERVING {up:.2f} s after the database returned, "
        f"a payment acknowledged {flowing:.2f} s later; "
        f"{len(load.failed)} failed keys converged in {converged:.2f} s"
    )


async def test_sqlite_files_made_immutable_never_answer_internal_and_a_crash_says_so(
    tmp_path: Path,
) -> None:
    path = tmp_path / "payments.db"
    server = ServerProcess(PAYMENTS_STORE_URL=f"sqlite:///{path}")
    codes: list[grpc.StatusCode] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.PaymentServiceStub(channel)
            await stub.RequestPayment(request("before"), timeout=5)
            files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
            with immutable(*files):
                for number in range(50):
                    try:
                        await stub.RequestPayment(request(f"k{number}"), timeout=5)
                    except grpc.aio.AioRpcError as error:
                        codes.append(error.code())
                        if server.proc.poll() is not None:
                            break  # the process is gone: the stream broke
                    else:
                        codes.append(grpc.StatusCode.OK)
                server.proc.poll()
    finally:
        server.stop()
    assert server.proc.stderr is not None
    stderr = server.proc.stderr.read()
    if server.proc.returncode == -signal.SIGBUS:
        assert "Fatal Python error: Bus error" in stderr, stderr
    else:
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, codes
        assert grpc.StatusCode.UNAVAILABLE in codes
        assert "unhandled_exception" not in {str(line["event"]) for line in server.seen}


def test_a_fatal_signal_leaves_an_error_line() -> None:
    server = ServerProcess()
    try:
        server.proc.send_signal(signal.SIGBUS)
        server.proc.wait(timeout=10)
    finally:
        server.stop()
    assert server.proc.stderr is not None
    stderr = server.proc.stderr.read()
    assert server.proc.returncode == -signal.SIGBUS
    assert "Fatal Python error: Bus error" in stderr
    assert "Current thread" in stderr or "Thread 0x" in stderr  # every thread's stack
