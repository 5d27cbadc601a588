"""The one-connection overload: 40 concurrent calls at PAYMENTS_MAX_CONCURRENT_RPCS=4, over one
shared connection and over 40 separate ones. Either way every call is OK or RESOURCE_EXHAUSTED
with RetryInfo (the admission limit sheds), never a refused stream (UNAVAILABLE with no details)
or a call the client's channel holds back: the HTTP/2 stream limit sits above the admission
limit (`transport.grpc_server.streams_per_connection`)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2

from payments_service.bootstrap import build_interceptors, build_service
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.transport.admission import ConcurrencyLimit
from payments_service.transport.grpc_server import RunningServer, start_server
from tests.conftest import TEST_SETTINGS, payment_request
from tests.fakes import FakeClock, SequentialIds
from tests.integration.test_grpc_api import detail

LIMIT = 4
CALLS = 40
SETTINGS = dataclasses.replace(TEST_SETTINGS, max_concurrent_rpcs=LIMIT)


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    service = build_service(SETTINGS, clock=FakeClock(), ids=SequentialIds())
    running = await start_server(
        service,
        "127.0.0.1:0",
        build_interceptors(limit=ConcurrencyLimit(LIMIT)),
        settings=SETTINGS,
    )
    yield running
    await running.stop(0)
    await service.drain(5)


def slow(number: int) -> pb.RequestPaymentRequest:
    """A call that holds its place for the processor deadline (it answers PENDING)."""
    return payment_request(idempotency_key=f"k-{number}", metadata={"simulate": "slow"})


async def refusal(
    stub: pb_grpc.PaymentServiceAsyncStub, number: int
) -> grpc.aio.AioRpcError | None:
    """The call's error, or None when it was answered."""
    try:
        await stub.RequestPayment(slow(number), timeout=10)
    except grpc.aio.AioRpcError as error:
        return error
    return None


@pytest.mark.parametrize("connections", [1, CALLS], ids=["one-shared-connection", "many"])
async def test_forty_calls_at_a_limit_of_four_are_ok_or_shed_with_retry_info(
    server: RunningServer, connections: int
) -> None:
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") for _ in range(connections)]
    try:
        for channel in channels:  # connected first: no call races the SETTINGS frame
            await asyncio.wait_for(channel.channel_ready(), timeout=5)
        stubs = [pb_grpc.PaymentServiceStub(channel) for channel in channels]
        outcomes = await asyncio.gather(
            *(refusal(stubs[number % connections], number) for number in range(CALLS))
        )
    finally:
        for channel in channels:
            await channel.close(None)
    shed = [error for error in outcomes if error is not None]
    for error in shed:
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error
        assert detail(error, error_details_pb2.ErrorInfo).reason == "OVERLOADED"
        assert detail(error, error_details_pb2.RetryInfo).retry_delay.seconds == 1
    assert CALLS - len(shed) >= LIMIT  # answered
    assert len(shed) >= CALLS - 2 * LIMIT  # shed at once, not held back by the client
