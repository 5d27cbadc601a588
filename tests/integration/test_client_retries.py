"""Retries that are safe by construction, proven with the shipped client: the service config
(`examples/service_config.json`) loaded into a real channel retries through a store outage and
through a merchant's rate limit, and each logical payment is created exactly once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from examples.client import SERVICE_CONFIG, channel, pay, retry_delay
from payments_service.adapters.stores.memory import InMemoryPaymentRepository
from payments_service.bootstrap import build_interceptors, build_service
from payments_service.domain.errors import RateLimitedError, StoreUnavailableError
from payments_service.domain.model import Payment
from payments_service.domain.ports import Claim
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.security.api_keys import KeyRing, key_file_line
from payments_service.security.authenticator import Authenticator
from payments_service.security.throttle import Buckets
from payments_service.security.tls import ServerTls
from payments_service.transport.admission import MerchantRateLimit
from payments_service.transport.grpc_server import RunningServer, start_server
from tests.conftest import TEST_SETTINGS
from tests.fakes import FakeClock, SequentialIds
from tests.integration.test_tls import settings_for
from tests.tls_files import make_tls_files


class OutageFirst(InMemoryPaymentRepository):
    """The memory store, unreachable for its first `outage` claims (refused before anything is
    stored, as a dropped connection refuses a statement)."""

    def __init__(self, outage: int, clock: FakeClock) -> None:
        super().__init__(ttl=timedelta(hours=1), clock=clock)
        self.outage = outage
        self.refused = 0

    async def claim(self, candidate: Payment) -> Claim:
        if self.refused < self.outage:
            self.refused += 1
            raise StoreUnavailableError
        return await super().claim(candidate)


class RecordingLimit(MerchantRateLimit):
    """The merchant limit, remembering when it admitted and refused calls."""

    def __init__(self, buckets: Buckets) -> None:
        super().__init__(buckets)
        self.admitted: list[float] = []
        self.refused = 0

    def admit(self, merchant_id: str) -> None:
        try:
            super().admit(merchant_id)
        except RateLimitedError:
            self.refused += 1
            raise
        self.admitted.append(time.monotonic())


@pytest.fixture
async def servers() -> AsyncIterator[list[RunningServer]]:
    started: list[RunningServer] = []
    yield started
    for server in started:
        await server.stop(0)


def test_the_service_config_names_the_retryable_codes_of_each_method() -> None:
    config = json.loads(SERVICE_CONFIG.read_text())
    policies = {
        entry["name"][0]["method"]: entry.get("retryPolicy", {}).get("retryableStatusCodes")
        for entry in config["methodConfig"]
    }
    assert policies == {
        "RequestPayment": ["UNAVAILABLE", "RESOURCE_EXHAUSTED", "ABORTED", "DEADLINE_EXCEEDED"],
        "GetPayment": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"],
        "Health": None,
    }


async def test_a_payment_through_a_store_outage_succeeds_after_retries_and_exists_once(
    servers: list[RunningServer],
) -> None:
    clock = FakeClock()
    store = OutageFirst(outage=2, clock=clock)
    service = build_service(TEST_SETTINGS, clock=clock, ids=SequentialIds(), repository=store)
    server = await start_server(service, "127.0.0.1:0", build_interceptors())
    servers.append(server)
    async with channel(f"127.0.0.1:{server.port}") as ch:
        answer = await pay(
            pb_grpc.PaymentServiceStub(ch),
            amount_minor=1250,
            currency="EUR",
            order_id="order-1",
            idempotency_key="one-logical-payment",
        )
    assert answer.status == pb.PAYMENT_STATUS_SUCCEEDED
    assert store.refused == 2  # two attempts refused UNAVAILABLE, the third succeeded
    assert len(store) == 1  # exactly one payment


async def test_a_burst_over_the_merchant_limit_is_retried_and_converges(
    servers: list[RunningServer],
) -> None:
    """8 calls at once against a bucket of 5 refilling at 20/s: the first 5 pass, the rest are
    refused RESOURCE_EXHAUSTED with a pushback of one token's time and pass on retry; every
    call succeeds, each once, and no call passed without a token."""
    limit = RecordingLimit(Buckets(rate=20.0, burst=5, max_keys=10))
    service = build_service(TEST_SETTINGS, clock=FakeClock(), ids=SequentialIds())
    server = await start_server(service, "127.0.0.1:0", build_interceptors(rate_limit=limit))
    servers.append(server)
    async with channel(f"127.0.0.1:{server.port}") as ch:
        stub = pb_grpc.PaymentServiceStub(ch)
        answers = await asyncio.gather(
            *(
                pay(
                    stub,
                    amount_minor=100,
                    currency="EUR",
                    order_id=f"o-{n}",
                    idempotency_key=f"k-{n}",
                )
                for n in range(8)
            )
        )
    assert len({a.payment_id for a in answers}) == 8
    assert all(a.status == pb.PAYMENT_STATUS_SUCCEEDED for a in answers)
    assert limit.refused >= 1  # the burst met the limit (fewer than 3 when calls trickled in)
    assert len(limit.admitted) == 8
    start = limit.admitted[0]  # never more than the burst plus what the rate refilled
    for n, at in enumerate(limit.admitted, start=1):
        assert n <= 5 + (at - start) * 20.0 + 1e-6


async def test_a_refusal_that_outlives_the_retries_says_when_to_come_back(
    servers: list[RunningServer],
) -> None:
    clock = FakeClock()  # frozen: the bucket never refills, every retry is refused too
    limit = MerchantRateLimit(Buckets(rate=10.0, burst=1, max_keys=10), clock.monotonic)
    service = build_service(TEST_SETTINGS, clock=clock, ids=SequentialIds())
    server = await start_server(service, "127.0.0.1:0", build_interceptors(rate_limit=limit))
    servers.append(server)
    async with channel(f"127.0.0.1:{server.port}") as ch:
        stub = pb_grpc.PaymentServiceStub(ch)
        await stub.Health(pb.HealthRequest())
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetPayment(pb.GetPaymentRequest(payment_id="pay_" + "0" * 32), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetPayment(pb.GetPaymentRequest(payment_id="pay_" + "0" * 32), timeout=5)
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert retry_delay(refused.value) == timedelta(seconds=0.1)


async def test_the_example_client_speaks_tls_and_sends_its_api_key(
    servers: list[RunningServer], tmp_path: Path
) -> None:
    tls = make_tls_files(tmp_path)
    key = "example-client-key"
    (tmp_path / "keys").write_text(key_file_line("acme", key) + "\n")
    authenticator = Authenticator(KeyRing.load(str(tmp_path / "keys")))
    service = build_service(TEST_SETTINGS, clock=FakeClock(), ids=SequentialIds())
    loaded = ServerTls.load(settings_for(tls))
    assert loaded is not None
    server = await start_server(
        service,
        "127.0.0.1:0",
        build_interceptors(authenticator=authenticator),
        loaded.credentials(),
    )
    servers.append(server)
    target = f"localhost:{server.port}"
    async with channel(target, ca_pem=tls.ca.read_bytes(), api_key=key) as ch:
        answer = await pay(
            pb_grpc.PaymentServiceStub(ch),
            amount_minor=1250,
            currency="EUR",
            order_id="order-tls",
            idempotency_key="tls-1",
        )
    assert answer.status == pb.PAYMENT_STATUS_SUCCEEDED
    with pytest.raises(ValueError, match="only over TLS"):
        channel(target, api_key=key)
