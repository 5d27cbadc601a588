"""The edges of a call are observed like its middle: bytes that do not parse, a client's
deadline passing, and a client cancelling. Each gets one span, one access line and the
metrics, all naming the code the client saw."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from payments_service.gen.payments.v1 import payments_pb2 as pb
from tests.conftest import payment_request
from tests.fakes import HangingProcessor
from tests.integration.observability.conftest import Observed
from tests.integration.observability.test_signals_agree import (
    GET_PAYMENT,
    REQUEST_PAYMENT,
    assert_agreement,
)
from tests.polling import until

FIRST_ID = f"pay_{1:032x}"  # what SequentialIds issues first
VALID = payment_request().SerializeToString()
UNDECODABLE = [
    pytest.param(REQUEST_PAYMENT, b"\xff\xff\xff\xff\xff", id="random-bytes"),
    pytest.param(REQUEST_PAYMENT, VALID[:-2], id="truncated"),
    pytest.param(REQUEST_PAYMENT, b"\x12\x02\xc3\x28", id="invalid-utf8-currency"),
    pytest.param(GET_PAYMENT, b"\x0a\x02\xc3\x28", id="invalid-utf8-payment-id"),
    pytest.param(GET_PAYMENT, b"\x0a\x05ab", id="truncated-payment-id"),
]


@pytest.mark.parametrize(("method", "body"), UNDECODABLE)
async def test_undecodable_bytes_are_invalid_argument_and_fully_observed(
    observed: Observed, method: str, body: bytes
) -> None:
    raw = observed.api.channel.unary_unary(method, None, None)  # bytes in, bytes out
    call = raw(body, metadata=(("x-request-id", "req-agree"),))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    error = caught.value
    message_type = method.rsplit("/", 1)[1] + "Request"
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == f"request body is not a valid payments.v1.{message_type}"
    trailers: dict[str, Any] = dict(error.trailing_metadata() or ())  # type: ignore[arg-type]
    assert trailers["x-request-id"] == "req-agree"
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert_agreement(observed, method, grpc.StatusCode.INVALID_ARGUMENT, expect_exception=False)
    assert all("exception" not in line for line in observed.log_lines())
    with pytest.raises(grpc.aio.AioRpcError) as lookup:  # nothing was stored
        await observed.api.stub.GetPayment(pb.GetPaymentRequest(payment_id=FIRST_ID))
    assert lookup.value.code() is grpc.StatusCode.NOT_FOUND


async def test_the_server_still_serves_after_garbage(observed: Observed) -> None:
    raw = observed.api.channel.unary_unary(REQUEST_PAYMENT, None, None)
    with pytest.raises(grpc.aio.AioRpcError):
        await raw(b"\xff" * 64)
    reply = await observed.api.stub.RequestPayment(payment_request())
    assert reply.status == pb.PAYMENT_STATUS_SUCCEEDED


async def test_a_passed_client_deadline_is_recorded_as_deadline_exceeded(
    observed_factory: Any,
) -> None:
    processor = HangingProcessor()
    observed: Observed = await observed_factory(processor=processor)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await observed.api.stub.RequestPayment(
            payment_request(), timeout=0.05, metadata=(("x-request-id", "req-agree"),)
        )
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    await until(lambda: len(observed.access_lines()) == 1)
    assert_agreement(
        observed, REQUEST_PAYMENT, grpc.StatusCode.DEADLINE_EXCEEDED, expect_exception=False
    )
    (line,) = observed.access_lines()
    assert line["peer"].startswith("ipv4:127.0.0.1:")
    processor.release.set()


async def test_a_real_client_cancel_is_recorded_and_the_payment_still_settles(
    observed_factory: Any,
) -> None:
    processor = HangingProcessor()
    observed: Observed = await observed_factory(processor=processor)
    call = observed.api.stub.RequestPayment(
        payment_request(), metadata=(("x-request-id", "req-agree"),)
    )
    await processor.called.wait()  # the call is inside the server, waiting for the processor
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await until(lambda: len(observed.access_lines()) == 1)
    assert_agreement(observed, REQUEST_PAYMENT, grpc.StatusCode.CANCELLED, expect_exception=False)
    # Cancellation safety: the settlement goes on without the caller.
    processor.release.set()
    assert await observed.api.service.drain(5) == 0
    payment = await observed.api.stub.GetPayment(pb.GetPaymentRequest(payment_id=FIRST_ID))
    assert payment.status == pb.PAYMENT_STATUS_SUCCEEDED
    replay = await observed.api.stub.RequestPayment(payment_request())
    assert replay.payment_id == FIRST_ID
