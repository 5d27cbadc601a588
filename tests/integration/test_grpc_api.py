"""The API over a real channel to an in-process server on port 0. The contract cases take the
`client` fixture: each runs over gRPC and over JSON/HTTP against the same service."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from payments_service.bootstrap import build_service
from payments_service.gen.payments.v1 import payments_pb2 as pb
from tests.conftest import TEST_SETTINGS, Api, ApiFactory, payment_request
from tests.fakes import EPOCH, ExplodingRepository, FakeClock, SequentialIds
from tests.transports import Client


def rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    trailers: tuple[tuple[str, bytes], ...] = tuple(error.trailing_metadata() or ())  # type: ignore[arg-type]
    for key, value in trailers:
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError("no google.rpc.Status in the trailers")


def detail(error: grpc.aio.AioRpcError, kind: type[Message]) -> Any:
    """The one detail of type `kind` in the error's google.rpc.Status."""
    found = []
    for packed in rich_status(error).details:
        message = kind()
        if packed.Unpack(message):
            found.append(message)
    assert len(found) == 1, f"expected one {kind.__name__}, found {len(found)}"
    return found[0]


async def call_error(coro: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coro
    return caught.value


async def test_request_payment_succeeds_and_get_payment_returns_every_field(
    client: Client,
) -> None:
    created = (await client.request_payment(payment_request(metadata={"note": "hello"}))).ok()
    assert created.status == pb.PAYMENT_STATUS_SUCCEEDED
    assert created.message == "payment succeeded"
    assert created.idempotency_key == "key-1"
    assert created.payment_id == "pay_" + "0" * 31 + "1"
    assert created.created_at.ToDatetime().replace(tzinfo=EPOCH.tzinfo) == EPOCH

    fetched = (await client.get_payment(created.payment_id)).ok()
    assert fetched == pb.GetPaymentResponse(
        payment_id=created.payment_id,
        status=pb.PAYMENT_STATUS_SUCCEEDED,
        amount_minor=1250,
        currency="EUR",
        order_id="order-42",
        idempotency_key="key-1",
        created_at=created.created_at,
        message="payment succeeded",
    )


async def test_decline_is_failed_with_a_reason(client: Client) -> None:
    response = await client.request_payment(payment_request(metadata={"simulate": "decline"}))
    assert response.ok().status == pb.PAYMENT_STATUS_FAILED
    assert "declined" in response.message.message


async def test_replay_returns_the_original_response_and_creates_nothing(
    client: Client, clock: FakeClock, ids: SequentialIds
) -> None:
    first = (await client.request_payment(payment_request())).ok()
    clock.advance(60)
    second = (await client.request_payment(payment_request())).ok()
    assert second == first
    assert ids.issued == 2  # the replay drew a candidate id that was never stored
    never_stored = await client.get_payment("pay_" + "0" * 31 + "2")
    assert never_stored.code is grpc.StatusCode.NOT_FOUND


async def test_key_reuse_with_another_payload_is_already_exists_with_error_info(
    client: Client,
) -> None:
    first = (await client.request_payment(payment_request())).ok()
    error = await client.request_payment(payment_request(amount_minor=999))
    assert error.code is grpc.StatusCode.ALREADY_EXISTS
    info = error.detail(error_details_pb2.ErrorInfo)
    assert (info.reason, dict(info.metadata)) == (
        "IDEMPOTENCY_KEY_REUSED",
        {"idempotency_key": "key-1"},
    )
    fetched = (await client.get_payment(first.payment_id)).ok()
    assert fetched.amount_minor == 1250


async def test_invalid_request_lists_every_field_and_stores_nothing(
    client: Client, ids: SequentialIds
) -> None:
    bad = payment_request(amount_minor=0, currency="usd", order_id="", metadata={"simulate": "x"})
    error = await client.request_payment(bad)
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "amount_minor" in error.status.message
    violations = error.detail(error_details_pb2.BadRequest).field_violations
    assert [v.field for v in violations] == ["amount_minor", "currency", "order_id", "metadata"]
    assert ids.issued == 0

    # The same key with a corrected payload now succeeds: the rejected call left no trace.
    fixed = (await client.request_payment(payment_request())).ok()
    assert fixed.status == pb.PAYMENT_STATUS_SUCCEEDED


@pytest.mark.parametrize(
    ("payment_id", "code"),
    [
        ("not-an-id", grpc.StatusCode.INVALID_ARGUMENT),
        ("pay_" + "0" * 32, grpc.StatusCode.NOT_FOUND),
    ],
)
async def test_get_payment_errors(client: Client, payment_id: str, code: grpc.StatusCode) -> None:
    error = await client.get_payment(payment_id)
    assert error.code is code
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        violations = error.detail(error_details_pb2.BadRequest).field_violations
        assert [v.field for v in violations] == ["payment_id"]
    else:
        assert error.detail(error_details_pb2.ResourceInfo).resource_name == payment_id


async def test_an_empty_payment_id_is_invalid_argument(api: Api) -> None:
    """gRPC can send an empty id; over HTTP the path without one is another route (404)."""
    error = await call_error(api.stub.GetPayment(pb.GetPaymentRequest(payment_id="")))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    violations = detail(error, error_details_pb2.BadRequest).field_violations
    assert [v.field for v in violations] == ["payment_id"]


async def test_fifty_concurrent_callers_with_one_new_key_get_one_payment(api: Api) -> None:
    request = payment_request(idempotency_key="race", metadata={"simulate": "slow"})
    responses = await asyncio.gather(*(api.stub.RequestPayment(request) for _ in range(64)))
    assert len({r.payment_id for r in responses}) == 1
    assert all(r == responses[0] for r in responses)
    assert responses[0].status == pb.PAYMENT_STATUS_PENDING


async def test_slow_payment_is_pending_then_succeeded(api: Api) -> None:
    created = await api.stub.RequestPayment(payment_request(metadata={"simulate": "slow"}))
    assert created.status == pb.PAYMENT_STATUS_PENDING
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        got = await api.stub.GetPayment(pb.GetPaymentRequest(payment_id=created.payment_id))
        if got.status == pb.PAYMENT_STATUS_SUCCEEDED:
            break
        assert got.status == pb.PAYMENT_STATUS_PENDING
        assert loop.time() < deadline, "never settled"
        await asyncio.sleep(0.02)


async def test_unexpected_failure_is_internal_generic_and_logged_never_unknown(
    api_factory: ApiFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    service = build_service(TEST_SETTINGS, clock=FakeClock(), repository=ExplodingRepository())  # type: ignore[arg-type]
    api = await api_factory(service)
    for call in (
        api.stub.RequestPayment(payment_request()),
        api.stub.GetPayment(pb.GetPaymentRequest(payment_id="pay_" + "0" * 32)),
    ):
        error = await call_error(call)
        assert error.code() is grpc.StatusCode.INTERNAL
        assert error.details() == "internal error; the failure was logged on the server"
        assert "secret-dsn" not in str(error.debug_error_string())
    logged = capsys.readouterr().out
    assert logged.count("unhandled_exception") == 2
    assert "RuntimeError" in logged


async def test_health_rpc_and_standard_health_service(api: Api) -> None:
    assert (await api.stub.Health(pb.HealthRequest())).status == "ok"
    health = health_pb2_grpc.HealthStub(api.channel)
    for service in ("", "payments.v1.PaymentService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_goes_not_serving_when_shutdown_begins(api: Api) -> None:
    health = health_pb2_grpc.HealthStub(api.channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service="payments.v1.PaymentService"))
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    stopping = asyncio.ensure_future(api.server.stop(grace=1))
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
    await stopping


async def test_request_id_is_echoed_when_safe_and_replaced_when_not(api: Api) -> None:
    async def returned_id(sent: str | None) -> str:
        metadata = (("x-request-id", sent),) if sent is not None else None
        call = api.stub.Health(pb.HealthRequest(), metadata=metadata)
        await call
        # A trailer, sent with the status: not a header of its own (ARCHITECTURE.md).
        assert "x-request-id" not in dict(await call.initial_metadata())
        trailers = dict(await call.trailing_metadata())
        value = trailers["x-request-id"]
        assert isinstance(value, str)
        return value

    assert await returned_id("req-123_abc.def") == "req-123_abc.def"
    for unsafe in ("", "has space", "x" * 129, 'quote"d', "<script>"):
        generated = await returned_id(unsafe)
        assert generated != unsafe
        assert len(generated) == 32
    assert len(await returned_id(None)) == 32


async def test_request_id_is_returned_on_errors_too(api: Api) -> None:
    call = api.stub.GetPayment(
        pb.GetPaymentRequest(payment_id=""), metadata=(("x-request-id", "r-1"),)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    trailers: dict[str, Any] = dict(caught.value.trailing_metadata() or ())  # type: ignore[arg-type]
    assert trailers["x-request-id"] == "r-1"
    assert "grpc-status-details-bin" in trailers  # beside the error's details


async def test_oversized_messages_are_refused(api: Api) -> None:
    huge = payment_request(metadata={"blob": "x" * (70 * 1024)})
    error = await call_error(api.stub.RequestPayment(huge))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_reflection_lists_every_service(api: Api) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(api.channel)
    call = stub.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    reply = await call.read()
    await call.done_writing()
    names = {s.name for s in reply.list_services_response.service}
    assert names == {
        "payments.v1.PaymentService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
