"""The whole application (`build_app`) on a PostgreSQL store behind a fault proxy: while the
database cannot be reached, calls are UNAVAILABLE with RetryInfo and ErrorInfo STORE_UNAVAILABLE
(never INTERNAL), readiness (payments.v1.PaymentService) goes NOT_SERVING while liveness ("")
stays SERVING, the errors and the health state show in the metrics, and everything comes back on
its own when the network does."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments_service import healthcheck
from payments_service.adapters.stores.backoff import MAX_DELAY_SECONDS
from payments_service.bootstrap import App, build_service
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.healthcheck import LIVENESS
from payments_service.transport.grpc_server import start_server
from tests.apps import running_app
from tests.conftest import TEST_SETTINGS, CapturedLogs, payment_request
from tests.faultproxy import FaultProxy
from tests.integration.test_grpc_api import detail
from tests.polling import until
from tests.scrape import sample
from tests.stores import postgres_schema

SERVING: int = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: int = health_pb2.HealthCheckResponse.NOT_SERVING
STORE_TIMEOUT = 0.5  # PAYMENTS_STORE_TIMEOUT_SECONDS here
# Readiness is back within one ping backoff (at most MAX_DELAY_SECONDS) plus the ping itself.
RECOVERY_BOUND = MAX_DELAY_SECONDS + STORE_TIMEOUT + 1.0


@dataclasses.dataclass
class Running:
    app: App
    proxy: FaultProxy
    stub: pb_grpc.PaymentServiceAsyncStub
    health: health_pb2_grpc.HealthAsyncStub

    async def status(self, service: str) -> int:
        reply = await self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        status: int = reply.status
        return status

    def sample(self, name: str, **labels: str) -> float:
        return sample(self.app.metrics_port, name, **labels)


@asynccontextmanager
async def running_behind_a_proxy(captured_logs: CapturedLogs) -> AsyncIterator[Running]:
    async with postgres_schema() as location:
        proxy = await FaultProxy(location.host, location.port or 5432).start()
        settings = dataclasses.replace(
            TEST_SETTINGS,
            metrics_address="127.0.0.1:0",
            store=dataclasses.replace(location, host="127.0.0.1", port=proxy.port),
            store_timeout_seconds=STORE_TIMEOUT,
        )
        try:
            async with (
                running_app(settings, log_writer=captured_logs.writer) as app,
                grpc.aio.insecure_channel(f"127.0.0.1:{app.server.port}") as channel,
            ):
                yield Running(
                    app,
                    proxy,
                    pb_grpc.PaymentServiceStub(channel),
                    health_pb2_grpc.HealthStub(channel),
                )
        finally:
            await proxy.close()


async def probe(running: Running, monkeypatch: pytest.MonkeyPatch, *arguments: str) -> int:
    """`payments-healthcheck ARGUMENTS`' exit status (on a thread: the server shares this
    loop)."""
    monkeypatch.setattr(sys, "argv", ["payments-healthcheck", *arguments])
    monkeypatch.setenv("PAYMENTS_HEALTHCHECK_TARGET", f"127.0.0.1:{running.app.server.port}")
    with pytest.raises(SystemExit) as exited:
        await asyncio.to_thread(healthcheck.main)
    return int(exited.value.code or 0)


async def test_an_unreachable_store_is_unavailable_not_ready_counted_and_recovers(
    captured_logs: CapturedLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_behind_a_proxy(captured_logs) as running:
        stub = running.stub
        before = await stub.RequestPayment(payment_request(idempotency_key="before"), timeout=5)
        ready = "payments.v1.PaymentService"
        assert await running.status(ready) == SERVING
        assert running.sample("payments_health_serving") == 1

        running.proxy.resetting()
        for call in (
            stub.RequestPayment(payment_request(idempotency_key="during"), timeout=5),
            stub.GetPayment(pb.GetPaymentRequest(payment_id=before.payment_id), timeout=5),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
            assert detail(refused.value, error_details_pb2.ErrorInfo).reason == "STORE_UNAVAILABLE"
            assert detail(refused.value, error_details_pb2.RetryInfo).retry_delay.seconds == 1

        async def not_ready() -> bool:
            return await running.status(ready) == NOT_SERVING

        await until(not_ready, within=STORE_TIMEOUT + 1.0, every=0.02)
        assert await running.status("") == SERVING  # liveness: never restarted for this
        assert await probe(running, monkeypatch) == 1  # payments-healthcheck: not ready
        assert await probe(running, monkeypatch, LIVENESS) == 0  # ... and alive
        assert running.sample("payments_health_serving") == 0
        assert running.sample("payments_store_errors_total", kind="unavailable") >= 2
        assert running.sample("payments_store_errors_total", kind="other") == 0

        running.proxy.passing()

        async def ready_again() -> bool:
            return await running.status(ready) == SERVING

        await until(ready_again, within=RECOVERY_BOUND, every=0.02)
        after = await stub.RequestPayment(payment_request(idempotency_key="after"), timeout=5)
        assert after.status == pb.PAYMENT_STATUS_SUCCEEDED
        got = await stub.GetPayment(pb.GetPaymentRequest(payment_id=before.payment_id))
        assert got.payment_id == before.payment_id
        assert running.sample("payments_health_serving") == 1

    unreachable = captured_logs.lines("store_unreachable")
    reachable = captured_logs.lines("store_reachable")
    assert [line["level"] for line in unreachable] == ["error"]
    assert [line["level"] for line in reachable] == ["info"]
    failed = [
        line for line in captured_logs.lines("rpc_completed") if line["grpc_code"] == "UNAVAILABLE"
    ]
    assert {(line["error_kind"], line["level"]) for line in failed} == {
        ("STORE_UNAVAILABLE", "warning")
    }
    assert not captured_logs.lines("unhandled_exception")


async def test_a_stalled_store_gives_a_caller_with_a_deadline_deadline_exceeded(
    captured_logs: CapturedLogs,
) -> None:
    async with running_behind_a_proxy(captured_logs) as running:
        await running.stub.RequestPayment(payment_request(idempotency_key="warm"), timeout=5)
        running.proxy.stalling()
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await running.stub.RequestPayment(payment_request(idempotency_key="held"), timeout=0.2)
        assert late.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        # Without a deadline the operation timeout answers instead: UNAVAILABLE, never a hang.
        with pytest.raises(grpc.aio.AioRpcError) as bounded:
            await running.stub.RequestPayment(payment_request(idempotency_key="waits"))
        assert bounded.value.code() is grpc.StatusCode.UNAVAILABLE
        running.proxy.passing()


async def test_readiness_follows_the_store_until_a_shutdown_begins() -> None:
    server = await start_server(build_service(TEST_SETTINGS), "127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)

            async def statuses() -> tuple[int, int]:
                replies = [
                    await health.Check(health_pb2.HealthCheckRequest(service=name))
                    for name in ("", "payments.v1.PaymentService")
                ]
                return replies[0].status, replies[1].status

            assert (await statuses(), server.ready) == ((SERVING, SERVING), True)
            await server.set_store_reachable(False)
            assert (await statuses(), server.ready) == ((SERVING, NOT_SERVING), False)
            await server.set_store_reachable(True)
            assert (await statuses(), server.ready) == ((SERVING, SERVING), True)
            await server.not_serving()
            await server.set_store_reachable(True)  # the store came back during a shutdown
            assert (await statuses(), server.ready) == ((NOT_SERVING, NOT_SERVING), False)
    finally:
        await server.stop(0)
