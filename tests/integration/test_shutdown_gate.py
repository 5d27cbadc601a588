"""The stop sequence in-process: once the gate closes, a new call waits (parked) until grpc's
stop has begun and is then answered UNAVAILABLE with ErrorInfo SHUTTING_DOWN, through the one
error table; health checks are not parked and answer NOT_SERVING."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments_service.application.service import PaymentService
from payments_service.bootstrap import build_interceptors, build_service
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.transport.admission import ShutdownGate
from payments_service.transport.grpc_server import start_server
from tests.conftest import TEST_SETTINGS, payment_request
from tests.fakes import FakeClock, SequentialIds
from tests.integration.test_grpc_api import detail


@pytest.fixture
def memory_service() -> PaymentService:
    return build_service(TEST_SETTINGS, clock=FakeClock(), ids=SequentialIds())


async def test_a_call_arriving_while_stopping_is_parked_then_unavailable_never_cancelled(
    memory_service: PaymentService,
) -> None:
    gate = ShutdownGate()
    server = await start_server(
        memory_service, "127.0.0.1:0", build_interceptors(gate=gate), gate=gate
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.PaymentServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        await stub.RequestPayment(payment_request(idempotency_key="before"), timeout=5)
        stopping = asyncio.ensure_future(server.stop(5))
        deadline = time.monotonic() + 5
        while not gate.closed:
            assert time.monotonic() < deadline, "the stop never closed the gate"
            await asyncio.sleep(0.001)
        call = stub.RequestPayment(payment_request(idempotency_key="during"), timeout=5)
        probe = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert probe.status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        await stopping
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in (refused.value.details() or "")
    assert detail(refused.value, error_details_pb2.ErrorInfo).reason == "SHUTTING_DOWN"
    assert gate.parked == 1
    assert await memory_service.drain(1) == 0
