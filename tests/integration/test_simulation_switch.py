"""PAYMENTS_SIMULATION=off through a real server: a caller cannot force an outcome."""

from __future__ import annotations

import dataclasses

import grpc
import pytest
from google.rpc import error_details_pb2

from payments_service.bootstrap import build_service
from payments_service.gen.payments.v1 import payments_pb2 as pb
from tests.conftest import TEST_SETTINGS, ApiFactory, payment_request
from tests.fakes import FakeClock, SequentialIds
from tests.integration.test_grpc_api import detail


@pytest.mark.parametrize("value", ["decline", "slow"])
async def test_with_simulation_off_the_simulate_key_is_invalid_argument_and_creates_nothing(
    api_factory: ApiFactory, value: str
) -> None:
    ids = SequentialIds()
    settings = dataclasses.replace(TEST_SETTINGS, simulation=False)
    api = await api_factory(build_service(settings, clock=FakeClock(), ids=ids))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await api.stub.RequestPayment(payment_request(metadata={"simulate": value}))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = detail(raised.value, error_details_pb2.BadRequest).field_violations
    assert [v.field for v in violations] == ["metadata"]
    assert "switched off" in violations[0].description
    assert ids.issued == 0
    # The same key without the hook is a normal payment, not a conflict.
    created = await api.stub.RequestPayment(payment_request())
    assert created.status == pb.PAYMENT_STATUS_SUCCEEDED


async def test_simulation_is_on_by_default_so_tests_can_force_a_decline(
    api_factory: ApiFactory,
) -> None:
    api = await api_factory(build_service(TEST_SETTINGS, clock=FakeClock(), ids=SequentialIds()))
    declined = await api.stub.RequestPayment(payment_request(metadata={"simulate": "decline"}))
    assert declined.status == pb.PAYMENT_STATUS_FAILED
