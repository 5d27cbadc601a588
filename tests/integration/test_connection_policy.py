"""The connection policy: a call whose client never sends its message is ended by the
connection's max age (+ grace), an idle connection is closed, and the options say what
docs/limits.md says."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import pytest

from payments_service.application.service import PaymentService
from payments_service.bootstrap import build_interceptors, build_service
from payments_service.config import Settings
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.transport.grpc_server import (
    STREAM_HEADROOM,
    RunningServer,
    backstop_concurrent_rpcs,
    server_options,
    start_server,
)
from tests.conftest import TEST_SETTINGS
from tests.fakes import FakeClock, SequentialIds

GET_PAYMENT = "/payments.v1.PaymentService/GetPayment"


async def silent() -> AsyncIterator[bytes]:
    """A request stream that never sends a message: the client sent headers and stops."""
    await asyncio.Event().wait()
    yield b""  # pragma: no cover - never reached


@pytest.fixture
def memory_service() -> PaymentService:
    return build_service(TEST_SETTINGS, clock=FakeClock(), ids=SequentialIds())


async def serve(service: PaymentService, settings: Settings) -> RunningServer:
    return await start_server(service, "127.0.0.1:0", build_interceptors(), settings=settings)


async def test_calls_whose_message_never_comes_are_ended_by_the_max_connection_age(
    memory_service: PaymentService,
) -> None:
    policy = replace(
        Settings(), max_connection_age_seconds=0.5, max_connection_age_grace_seconds=0.5
    )
    server = await serve(memory_service, policy)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            open_call = channel.stream_unary(GET_PAYMENT, None, None)
            started = time.monotonic()
            calls = [open_call(silent()) for _ in range(20)]
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            elapsed = time.monotonic() - started
            assert all(isinstance(o, grpc.aio.AioRpcError) for o in outcomes)
            codes = {o.code() for o in outcomes if isinstance(o, grpc.aio.AioRpcError)}
            assert codes == {grpc.StatusCode.UNAVAILABLE}
            # age (+10 % jitter) + grace, plus scheduling slack on a loaded machine
            assert elapsed < 0.55 + 0.5 + 3
            # The server is not harmed: a real call on the same channel is answered.
            stub = pb_grpc.PaymentServiceStub(channel)
            assert (await stub.Health(pb.HealthRequest(), timeout=5)).status == "ok"
    finally:
        await server.server.stop(0)


async def test_an_idle_connection_is_closed_after_the_max_idle_time(
    memory_service: PaymentService,
) -> None:
    server = await serve(memory_service, replace(Settings(), max_connection_idle_seconds=0.3))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.PaymentServiceStub(channel)
            await stub.Health(pb.HealthRequest(), timeout=5)
            assert channel.get_state() is grpc.ChannelConnectivity.READY
            deadline = time.monotonic() + 5
            while channel.get_state() is grpc.ChannelConnectivity.READY:
                assert time.monotonic() < deadline, "the idle connection was never closed"
                await channel.wait_for_state_change(grpc.ChannelConnectivity.READY)
            # GOAWAY closed the connection; the channel reconnects on the next call.
            assert (await stub.Health(pb.HealthRequest(), timeout=5)).status == "ok"
    finally:
        await server.server.stop(0)


def test_the_policy_comes_from_the_settings_and_becomes_grpc_options_in_ms() -> None:
    settings = replace(
        Settings(),
        max_concurrent_rpcs=7,
        max_connection_idle_seconds=30,
        max_connection_age_seconds=600,
        max_connection_age_grace_seconds=15,
        keepalive_time_seconds=20,
    )
    options = dict(server_options(settings))
    assert options["grpc.max_connection_idle_ms"] == 30_000
    assert options["grpc.max_connection_age_ms"] == 600_000
    assert options["grpc.max_connection_age_grace_ms"] == 15_000
    assert options["grpc.keepalive_time_ms"] == 20_000
    assert options["grpc.keepalive_timeout_ms"] == 20_000
    assert options["grpc.keepalive_permit_without_calls"] == 1
    # Above the admission limit: one connection's excess calls are shed with RetryInfo.
    assert options["grpc.max_concurrent_streams"] == 7 + STREAM_HEADROOM
    assert backstop_concurrent_rpcs(settings) > 2 * 7
    set_apart = replace(settings, max_concurrent_streams=50)
    assert dict(server_options(set_apart))["grpc.max_concurrent_streams"] == 50


@pytest.mark.parametrize("field", ["max_connection_idle_seconds", "max_connection_age_seconds"])
def test_the_defaults_are_five_minutes(field: str) -> None:
    assert getattr(Settings(), field) == 300.0
