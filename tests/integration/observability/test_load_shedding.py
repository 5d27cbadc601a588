"""Load shedding (PAYMENTS_MAX_CONCURRENT_RPCS): past the limit a call is answered
RESOURCE_EXHAUSTED with RetryInfo through the one error table, inside the observed path, so it
has a request id, an access line and grpc_server_handled_total{grpc_code="ResourceExhausted"};
health checks are never shed."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments_service.adapters.stores.memory import InMemoryPaymentRepository
from payments_service.domain.model import Payment
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.transport.admission import ConcurrencyLimit
from tests.fakes import FakeClock
from tests.integration.observability.conftest import Observed
from tests.integration.test_grpc_api import rich_status
from tests.polling import until

UNKNOWN_ID = "pay_" + "0" * 32
GET = {
    "grpc_type": "unary",
    "grpc_service": "payments.v1.PaymentService",
    "grpc_method": "GetPayment",
}


class BlockingGets(InMemoryPaymentRepository):
    """A real in-memory store whose lookups wait until released: calls that stay in flight."""

    def __init__(self) -> None:
        super().__init__(ttl=timedelta(hours=1), clock=FakeClock())
        self.release = asyncio.Event()
        self.waiting = 0

    async def get(self, merchant_id: str, payment_id: str) -> Payment | None:
        self.waiting += 1
        await self.release.wait()
        return await super().get(merchant_id, payment_id)


async def test_a_call_past_the_limit_is_resource_exhausted_with_retry_info_and_is_counted(
    observed_factory: Any,
) -> None:
    store = BlockingGets()
    observed: Observed = await observed_factory(repository=store, limit=ConcurrencyLimit(2))
    stub = observed.api.stub
    held = [
        asyncio.ensure_future(stub.GetPayment(pb.GetPaymentRequest(payment_id=UNKNOWN_ID)))
        for _ in range(2)
    ]
    await until(lambda: store.waiting == 2)

    call = stub.GetPayment(
        pb.GetPaymentRequest(payment_id=UNKNOWN_ID), metadata=(("x-request-id", "shed-1"),)
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    refused = raised.value
    assert refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "overloaded" in (refused.details() or "")
    trailers: dict[str, Any] = dict(refused.trailing_metadata() or ())  # type: ignore[arg-type]
    assert trailers["x-request-id"] == "shed-1"
    details = rich_status(refused).details
    retry, info = error_details_pb2.RetryInfo(), error_details_pb2.ErrorInfo()
    assert details[0].Unpack(retry)
    assert retry.retry_delay.seconds == 1
    assert details[1].Unpack(info)
    assert info.reason == "OVERLOADED"
    assert info.metadata["max_concurrent_rpcs"] == "2"

    # Probes are never shed, on either health service.
    health = health_pb2_grpc.HealthStub(observed.api.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert (await stub.Health(pb.HealthRequest(), timeout=5)).status == "ok"

    assert observed.sample("payments_rpcs_in_flight") == 2
    assert observed.sample("payments_rpcs_max_in_flight") == 2
    assert observed.sample("payments_rpcs_shed_total") == 1
    shed = observed.sample("grpc_server_handled_total", **GET, grpc_code="ResourceExhausted")
    assert shed == 1
    [line] = [x for x in observed.access_lines() if x["request_id"] == "shed-1"]
    assert line["grpc_code"] == "RESOURCE_EXHAUSTED"

    store.release.set()
    for done in held:
        with pytest.raises(grpc.aio.AioRpcError, match="not found"):
            await done
    assert observed.sample("payments_rpcs_in_flight") == 0
    # Room again: the next call is admitted and answered normally.
    with pytest.raises(grpc.aio.AioRpcError, match="not found"):
        await stub.GetPayment(pb.GetPaymentRequest(payment_id=UNKNOWN_ID))
    assert observed.sample("grpc_server_handled_total", **GET, grpc_code="NotFound") == 3
    assert observed.sample("payments_rpcs_shed_total") == 1


async def test_a_call_that_fails_still_gives_its_place_back(observed_factory: Any) -> None:
    limit = ConcurrencyLimit(1)
    observed: Observed = await observed_factory(limit=limit)
    for _ in range(3):  # each one would be shed if a failed call kept its place
        with pytest.raises(grpc.aio.AioRpcError, match="payment_id"):
            await observed.api.stub.GetPayment(pb.GetPaymentRequest(payment_id="bad"))
    assert (limit.in_flight, limit.rejected) == (0, 0)
