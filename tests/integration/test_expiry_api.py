"""Expiry over the API: GetPayment and a replay give one answer once the TTL has passed."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from payments_service.bootstrap import build_service
from payments_service.domain.model import Outcome, Payment, PaymentStatus
from payments_service.gen.payments.v1 import payments_pb2 as pb
from tests.conftest import TEST_SETTINGS, ApiFactory, payment_request
from tests.fakes import FakeClock, SequentialIds


class GatedProcessor:
    """Succeeds at once, except for order "hold", which waits until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def charge(self, payment: Payment) -> Outcome:
        if payment.request.order_id == "hold":
            await self.release.wait()
        return Outcome(PaymentStatus.SUCCEEDED, "payment succeeded")


async def test_a_settling_payment_at_the_head_does_not_make_get_and_replay_disagree(
    api_factory: ApiFactory, clock: FakeClock
) -> None:
    processor = GatedProcessor()
    service = build_service(TEST_SETTINGS, clock=clock, ids=SequentialIds(), processor=processor)
    api = await api_factory(service)
    held = await api.stub.RequestPayment(payment_request(order_id="hold", idempotency_key="k-0"))
    assert held.status == pb.PAYMENT_STATUS_PENDING  # still settling, first in expiry order
    done = await api.stub.RequestPayment(payment_request(idempotency_key="k-1"))
    clock.advance(TEST_SETTINGS.idempotency_ttl_seconds)

    with pytest.raises(grpc.aio.AioRpcError) as lookup:
        await api.stub.GetPayment(pb.GetPaymentRequest(payment_id=done.payment_id))
    assert lookup.value.code() is grpc.StatusCode.NOT_FOUND
    again = await api.stub.RequestPayment(payment_request(idempotency_key="k-1"))
    assert again.payment_id != done.payment_id  # a new payment, not a replay of a lost one

    still = await api.stub.GetPayment(pb.GetPaymentRequest(payment_id=held.payment_id))
    assert still.status == pb.PAYMENT_STATUS_PENDING  # the settling one is kept
    processor.release.set()
    await service.drain(5)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await api.stub.GetPayment(pb.GetPaymentRequest(payment_id=held.payment_id))
    assert gone.value.code() is grpc.StatusCode.NOT_FOUND  # finished past its TTL: evicted
