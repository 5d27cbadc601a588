"""Authentication through a real server: which calls need a key, what a refusal looks like, and
that a key revoked by a reload stops working at once. The key cases run over gRPC and over
JSON/HTTP (`Authorization` header) with the same keys (`secured_client`)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from payments_service.application.service import PaymentService
from payments_service.bootstrap import build_interceptors
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.security.api_keys import KeyRing
from payments_service.security.authenticator import UNAUTHENTICATED_MESSAGE, Authenticator
from payments_service.security.principal import Principal, current_principal
from payments_service.transport.grpc_server import start_server
from payments_service.transport.interceptors.auth import AuthInterceptor
from payments_service.transport.interceptors.observation import ObservationInterceptor
from tests.conftest import Api, payment_request
from tests.fakes import SequentialIds
from tests.transports import TRANSPORTS, Client, client_for

ALICE_KEY = "alice-live-Zm9vYmFyYmF6cXV4"
BOB_KEY = "bob-live-cXV4cXV1eGNvcmdl"


def key_line(merchant: str, key: str) -> str:
    return f"{merchant} {hashlib.sha256(key.encode()).hexdigest()}\n"


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-keys"
    path.write_text(key_line("alice", ALICE_KEY) + key_line("bob", BOB_KEY))
    return path


@pytest.fixture
def ring(keys_file: Path) -> KeyRing:
    return KeyRing.load(str(keys_file))


@pytest.fixture
async def secured(ring: KeyRing, service: PaymentService) -> AsyncIterator[Api]:
    server = await start_server(
        service, "127.0.0.1:0", build_interceptors(None, Authenticator(ring))
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    yield Api(server, channel, pb_grpc.PaymentServiceStub(channel), service)
    await channel.close(None)
    await server.stop(0)
    await service.drain(5)


@pytest.fixture(params=TRANSPORTS)
async def secured_client(
    request: pytest.FixtureRequest, secured: Api, ring: KeyRing
) -> AsyncIterator[Client]:
    """A client of `secured` over each transport, with the same keys."""
    async with client_for(
        request.param, secured.channel, secured.service, Authenticator(ring)
    ) as client:
        yield client


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_a_listed_key_is_accepted_with_any_spelling_of_the_scheme(
    secured_client: Client, scheme: str
) -> None:
    metadata = (("authorization", f"{scheme} {ALICE_KEY}"),)
    created = (await secured_client.request_payment(payment_request(), metadata)).ok()
    assert created.status == pb.PAYMENT_STATUS_SUCCEEDED
    fetched = (await secured_client.get_payment(created.payment_id, metadata)).ok()
    assert fetched.payment_id == created.payment_id


REFUSED: list[tuple[str, tuple[tuple[str, str], ...]]] = [
    ("missing", ()),
    ("other header", (("x-api-key", ALICE_KEY),)),
    ("basic scheme", (("authorization", f"Basic {ALICE_KEY}"),)),
    ("no scheme", (("authorization", ALICE_KEY),)),
    ("scheme only", (("authorization", "Bearer"),)),
    ("no space", (("authorization", f"Bearer{ALICE_KEY}"),)),
    ("two tokens", (("authorization", f"Bearer {ALICE_KEY} {BOB_KEY}"),)),
    ("bad characters", (("authorization", "Bearer key;with,commas"),)),
    ("key too long", (("authorization", f"Bearer {'k' * 513}"),)),
    ("header too long", (("authorization", f"Bearer {' ' * 1100}k"),)),
    ("two headers", (*bearer(ALICE_KEY), *bearer(BOB_KEY))),
    ("unknown key", bearer("mallory-guess-0000")),
    ("key prefix", bearer(ALICE_KEY[:-1])),
    ("key digest", bearer(hashlib.sha256(ALICE_KEY.encode()).hexdigest())),
]


@pytest.mark.parametrize("metadata", [m for _, m in REFUSED], ids=[name for name, _ in REFUSED])
async def test_a_missing_malformed_or_unknown_key_is_unauthenticated_with_one_message(
    secured_client: Client, ids: SequentialIds, metadata: tuple[tuple[str, str], ...]
) -> None:
    for reply in (
        await secured_client.request_payment(payment_request(), metadata),
        await secured_client.get_payment("pay_" + "0" * 32, metadata),
    ):
        assert reply.code == grpc.StatusCode.UNAUTHENTICATED
        assert reply.status.message == UNAUTHENTICATED_MESSAGE
    assert ids.issued == 0  # nothing was created


async def test_a_key_removed_from_the_file_is_refused_after_reload(
    secured: Api, ring: KeyRing, keys_file: Path
) -> None:
    assert await secured.stub.Health(pb.HealthRequest(), metadata=bearer(BOB_KEY))
    await secured.stub.RequestPayment(payment_request(), metadata=bearer(BOB_KEY))
    await asyncio.to_thread(keys_file.write_text, key_line("alice", ALICE_KEY))
    assert ring.reload()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await secured.stub.RequestPayment(payment_request(), metadata=bearer(BOB_KEY))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert raised.value.details() == UNAUTHENTICATED_MESSAGE
    replay = await secured.stub.RequestPayment(payment_request(), metadata=bearer(ALICE_KEY))
    assert replay.status == pb.PAYMENT_STATUS_SUCCEEDED


async def test_health_checks_and_reflection_need_no_key(secured: Api) -> None:
    assert (await secured.stub.Health(pb.HealthRequest())).status == "ok"
    health = health_pb2_grpc.HealthStub(secured.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="payments.v1.PaymentService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    watch = health.Watch(health_pb2.HealthCheckRequest())
    first = await watch.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    watch.cancel()
    reflection = reflection_pb2_grpc.ServerReflectionStub(secured.channel)
    stream = reflection.ServerReflectionInfo()
    await stream.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    answer = await stream.read()
    await stream.done_writing()
    names = {s.name for s in answer.list_services_response.service}
    assert "payments.v1.PaymentService" in names


async def test_the_authenticated_merchant_is_bound_for_the_handler_and_only_during_the_call(
    ring: KeyRing,
) -> None:
    """`current_principal()` is what the handlers scope their queries by."""
    seen: list[Principal | None] = []

    async def whoami(request: bytes, context: Any) -> bytes:
        principal = current_principal()
        seen.append(principal)
        return b"" if principal is None else principal.merchant_id.encode()

    server = grpc.aio.server(
        interceptors=[ObservationInterceptor(), AuthInterceptor(Authenticator(ring))]
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "test.Who", {"Am": grpc.unary_unary_rpc_method_handler(whoami)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(
                "/test.Who/Am", request_serializer=None, response_deserializer=None
            )
            assert await call(b"", metadata=bearer(ALICE_KEY)) == b"alice"
            assert await call(b"", metadata=bearer(BOB_KEY)) == b"bob"
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call(b"")
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await server.stop(0)
    assert [p.merchant_id for p in seen if p is not None] == ["alice", "bob"]
    assert len(seen) == 2
    assert seen[0] is not None
    assert seen[0].key_id == hashlib.sha256(ALICE_KEY.encode()).hexdigest()[:8]
    assert current_principal() is None


async def test_without_a_keys_file_every_caller_is_merchant_default(
    api: Api,
) -> None:
    created = await api.stub.RequestPayment(payment_request(), metadata=bearer("anything"))
    assert created.status == pb.PAYMENT_STATUS_SUCCEEDED
    assert Authenticator(None).authenticate(()) == Principal("default", "none")
    assert Authenticator(None).enabled is False
