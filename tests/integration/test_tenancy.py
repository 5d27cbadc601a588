"""Tenancy through a real server with API keys, on every store and over both transports:
idempotency keys are scoped per merchant, and one merchant can neither read, replay, squat nor
probe another's payments."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from payments_service.application.service import PaymentService
from payments_service.bootstrap import build_interceptors, build_service
from payments_service.domain.ports import PaymentRepository
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.security.api_keys import KeyRing
from payments_service.security.authenticator import Authenticator
from payments_service.transport.grpc_server import start_server
from payments_service.transport.interceptors.observation import ObservationInterceptor
from tests.conftest import TEST_SETTINGS, Api, payment_request
from tests.fakes import FakeClock, SequentialIds
from tests.integration.test_auth import bearer, key_line
from tests.integration.test_grpc_api import call_error
from tests.stores import STORES, open_repository
from tests.transports import TRANSPORTS, Client, client_for

ALICE = bearer("alice-live-YWxpY2Utc2VjcmV0LWtleQ")
BOB = bearer("bob-live-Ym9iLXNlY3JldC1rZXktMDE")
MALLORY = bearer("mallory-live-bWFsbG9yeS1rZXktMDI")
UNKNOWN_ID = "pay_" + "0" * 31 + "9"


@pytest.fixture(params=STORES)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[PaymentRepository]:
    """Every store, PostgreSQL included (the integration conftest runs memory and SQLite)."""
    ttl = timedelta(seconds=TEST_SETTINGS.idempotency_ttl_seconds)
    async with open_repository(request.param, tmp_path, clock, ttl) as repository:
        yield repository


@pytest.fixture
def authenticator(tmp_path: Path) -> Authenticator:
    """Three merchants, each with its own key."""
    keys = tmp_path / "api-keys"
    keys.write_text(
        "".join(
            key_line(name, metadata[0][1].removeprefix("Bearer "))
            for name, metadata in (("alice", ALICE), ("bob", BOB), ("mallory", MALLORY))
        )
    )
    return Authenticator(KeyRing.load(str(keys)))


@pytest.fixture
async def tenants(service: PaymentService, authenticator: Authenticator) -> AsyncIterator[Api]:
    """A server that knows three merchants, each with its own key."""
    server = await start_server(service, "127.0.0.1:0", build_interceptors(None, authenticator))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    yield Api(server, channel, pb_grpc.PaymentServiceStub(channel), service)
    await channel.close(None)
    await server.stop(0)
    await service.drain(5)


@pytest.fixture(params=TRANSPORTS)
async def tenant(
    request: pytest.FixtureRequest, tenants: Api, authenticator: Authenticator
) -> AsyncIterator[Client]:
    """A client of `tenants` over each transport, with the same keys."""
    async with client_for(request.param, tenants.channel, tenants.service, authenticator) as made:
        yield made


async def test_two_merchants_with_the_same_key_get_two_independent_payments(
    tenant: Client,
) -> None:
    alice = await tenant.request_payment(payment_request(idempotency_key="order-1001"), ALICE)
    bob = await tenant.request_payment(
        payment_request(idempotency_key="order-1001", amount_minor=777), BOB
    )
    assert alice.ok().payment_id != bob.ok().payment_id
    assert (alice.message.status, bob.message.status) == (pb.PAYMENT_STATUS_SUCCEEDED,) * 2
    assert (await tenant.get_payment(alice.message.payment_id, ALICE)).ok().amount_minor == 1250
    assert (await tenant.get_payment(bob.message.payment_id, BOB)).ok().amount_minor == 777
    # Each merchant's retry replays its own payment, not the other's.
    again = await tenant.request_payment(
        payment_request(idempotency_key="order-1001", amount_minor=777), BOB
    )
    assert again.ok() == bob.message


def _without(status: status_pb2.Status, payment_id: str) -> bytes:
    """The status with the requested id replaced, so two answers compare on everything else."""
    serialized: bytes = status.SerializeToString()
    return serialized.replace(payment_id.encode(), b"pay_ID")


async def test_another_merchants_payment_is_not_found_exactly_like_an_unknown_id(
    tenant: Client,
) -> None:
    created = (await tenant.request_payment(payment_request(), ALICE)).ok()
    foreign = await tenant.get_payment(created.payment_id, BOB)
    unknown = await tenant.get_payment(UNKNOWN_ID, BOB)
    assert foreign.code == unknown.code == grpc.StatusCode.NOT_FOUND
    assert foreign.http_status == unknown.http_status  # None over gRPC, 404 over HTTP
    assert foreign.status.message == f"payment {created.payment_id} not found"
    assert unknown.status.message == f"payment {UNKNOWN_ID} not found"
    # Same details, field for field, once the id the caller sent is taken out.
    assert _without(foreign.status, created.payment_id) == _without(unknown.status, UNKNOWN_ID)
    assert foreign.detail(error_details_pb2.ResourceInfo).resource_name == created.payment_id
    assert sorted(foreign.headers) == sorted(unknown.headers)  # trailers, or HTTP headers
    # The owner still sees it.
    assert (await tenant.get_payment(created.payment_id, ALICE)).ok().order_id == "order-42"


async def test_the_existence_oracle_is_closed_and_keys_cannot_be_squatted(
    tenant: Client,
) -> None:
    alice_request = payment_request(idempotency_key="order-1001")
    alice = (await tenant.request_payment(alice_request, ALICE)).ok()
    # Probing Alice's key with another payload: a new payment of Mallory's, not ALREADY_EXISTS.
    probe = await tenant.request_payment(
        payment_request(idempotency_key="order-1001", amount_minor=1), MALLORY
    )
    assert probe.ok().payment_id != alice.payment_id
    # Alice's exact payload under another key she used: Mallory's own payment, never Alice's id.
    alice_2 = (await tenant.request_payment(payment_request(idempotency_key="k-2"), ALICE)).ok()
    copy = (await tenant.request_payment(payment_request(idempotency_key="k-2"), MALLORY)).ok()
    assert copy.payment_id not in (alice.payment_id, alice_2.payment_id)
    # Squatting: a key Mallory took first is still free for Alice.
    await tenant.request_payment(payment_request(idempotency_key="k-3"), MALLORY)
    fresh = (await tenant.request_payment(payment_request(idempotency_key="k-3"), ALICE)).ok()
    assert fresh.payment_id not in (alice.payment_id, alice_2.payment_id, copy.payment_id)
    # Alice's payments are untouched: her retry replays the original, field for field.
    assert (await tenant.request_payment(alice_request, ALICE)).ok() == alice
    assert (await tenant.get_payment(alice.payment_id, ALICE)).ok().amount_minor == 1250


async def test_a_different_payload_is_already_exists_only_within_one_merchant(
    tenant: Client,
) -> None:
    await tenant.request_payment(payment_request(idempotency_key="k"), ALICE)
    changed = payment_request(idempotency_key="k", amount_minor=9999)
    conflict = await tenant.request_payment(changed, ALICE)
    assert conflict.code == grpc.StatusCode.ALREADY_EXISTS
    info = conflict.detail(error_details_pb2.ErrorInfo)
    assert (info.reason, dict(info.metadata)) == (
        "IDEMPOTENCY_KEY_REUSED",
        {"idempotency_key": "k"},
    )
    # The same changed payload is a fine new payment for another merchant.
    bob = (await tenant.request_payment(changed, BOB)).ok()
    assert bob.status == pb.PAYMENT_STATUS_SUCCEEDED


async def test_a_server_without_the_auth_interceptor_fails_closed_and_stores_nothing() -> None:
    """No merchant for the call means INTERNAL, never an unscoped (or `default`) payment."""
    ids = SequentialIds()
    service = build_service(TEST_SETTINGS, clock=FakeClock(), ids=ids)
    server = await start_server(service, "127.0.0.1:0", [ObservationInterceptor()])
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.PaymentServiceStub(channel)
            error = await call_error(stub.RequestPayment(payment_request()))
            assert error.code() == grpc.StatusCode.INTERNAL
            error = await call_error(stub.GetPayment(pb.GetPaymentRequest(payment_id=UNKNOWN_ID)))
            assert error.code() == grpc.StatusCode.INTERNAL
    finally:
        await server.stop(0)
    assert ids.issued == 0
