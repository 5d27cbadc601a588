"""A full in-memory store over the API: RESOURCE_EXHAUSTED with RetryInfo for a new payment,
while replays and GetPayment keep working and the refused call stores nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import grpc
import pytest
from google.rpc import error_details_pb2

from payments_service.adapters.stores.memory import (
    MAX_RETRY_SECONDS,
    MIB,
    InMemoryPaymentRepository,
)
from payments_service.bootstrap import build_service
from payments_service.gen.payments.v1 import payments_pb2 as pb
from tests.conftest import TEST_SETTINGS, ApiFactory, payment_request
from tests.fakes import FakeClock, SequentialIds
from tests.integration.test_grpc_api import rich_status

EMOJI = "\U0001f600"
LARGEST_METADATA = {f"{i:02d}" + "m" * 38: EMOJI * 500 for i in range(20)}


def largest_request(n: int) -> pb.RequestPaymentRequest:
    return payment_request(
        order_id=f"{n:06d}" + "o" * 122,  # one order each: the per-order limit stays out of it
        idempotency_key=f"{n:06d}" + "k" * 249,
        metadata=LARGEST_METADATA,
    )


async def test_a_full_store_refuses_new_payments_with_retry_info_and_keeps_serving_the_rest(
    api_factory: ApiFactory, clock: FakeClock
) -> None:
    settings = replace(TEST_SETTINGS, memory_store_max_mib=1)  # ~22 of the largest payments
    store = InMemoryPaymentRepository(
        ttl=timedelta(seconds=settings.idempotency_ttl_seconds),
        clock=clock,
        max_bytes=settings.memory_store_max_mib * MIB,
    )
    service = build_service(settings, clock=clock, ids=SequentialIds(), repository=store)
    api = await api_factory(service)
    stored: list[pb.RequestPaymentResponse] = []
    for n in range(100):
        try:
            stored.append(await api.stub.RequestPayment(largest_request(n), timeout=5))
        except grpc.aio.AioRpcError as refused:
            error = refused
            break
    else:
        pytest.fail("100 of the largest payments fit in 1 MiB: the cap is not enforced")
    held = len(store)
    assert 15 <= len(stored) == held < 100

    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "store is full" in (error.details() or "")
    details = rich_status(error).details
    retry = error_details_pb2.RetryInfo()
    assert details[0].Unpack(retry)
    assert retry.retry_delay.seconds == MAX_RETRY_SECONDS  # the oldest expires in an hour
    assert not any(d.Is(error_details_pb2.BadRequest.DESCRIPTOR) for d in details)

    replay = await api.stub.RequestPayment(largest_request(0))
    assert replay == stored[0]
    fetched = await api.stub.GetPayment(pb.GetPaymentRequest(payment_id=stored[-1].payment_id))
    assert fetched.payment_id == stored[-1].payment_id
    assert len(store) == held  # nothing stored

    clock.advance(settings.idempotency_ttl_seconds)  # the old ones expire: room again
    refused_before = largest_request(len(stored))
    created = await api.stub.RequestPayment(refused_before)
    assert created.status == pb.PAYMENT_STATUS_SUCCEEDED
    assert created.payment_id not in {p.payment_id for p in stored}
