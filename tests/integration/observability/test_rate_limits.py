"""Rate limits against the real server: per merchant, per order, and failed authentications
per peer address; each refusal is RESOURCE_EXHAUSTED (or UNAUTHENTICATED) with what a client
needs to come back, stores nothing, and says in its signals which limit applied."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from google.rpc import error_details_pb2

from payments_service.application.order_limit import OrderAttempts
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.security.api_keys import KeyRing
from payments_service.security.authenticator import Authenticator
from payments_service.security.throttle import Buckets
from payments_service.transport.admission import MerchantRateLimit
from tests.conftest import payment_request
from tests.fakes import FakeClock
from tests.integration.observability.conftest import Observed
from tests.integration.test_grpc_api import call_error, detail


def pushback_ms(error: grpc.aio.AioRpcError) -> int:
    for key, value in cast("Sequence[tuple[str, str]]", error.trailing_metadata() or ()):
        if key == "grpc-retry-pushback-ms":
            return int(value)
    raise AssertionError("no grpc-retry-pushback-ms trailer")


async def test_a_burst_over_the_merchant_bucket_is_refused_with_a_retry_info_that_obeyed_succeeds(
    observed_factory: Any,
) -> None:
    clock = FakeClock()
    buckets = Buckets(rate=2.0, burst=3, max_keys=10)
    observed: Observed = await observed_factory(
        rate_limit=MerchantRateLimit(buckets, clock.monotonic), clock=clock
    )
    stub = observed.api.stub
    for n in range(3):
        await stub.RequestPayment(payment_request(order_id=f"o-{n}", idempotency_key=f"k-{n}"))
    error = await call_error(stub.GetPayment(pb.GetPaymentRequest(payment_id="pay_" + "0" * 32)))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    retry = detail(error, error_details_pb2.RetryInfo).retry_delay.ToTimedelta().total_seconds()
    assert retry == pytest.approx(0.5)  # one token at 2/s
    info = detail(error, error_details_pb2.ErrorInfo)
    assert (info.reason, info.domain, info.metadata["scope"]) == (
        "RATE_LIMITED",
        "payments.v1",
        "merchant",
    )
    assert info.metadata["limit"] == "2 calls/s per merchant, burst 3"
    assert pushback_ms(error) == 500
    clock.advance(retry)  # obeyed
    created = await stub.RequestPayment(payment_request(order_id="o-4", idempotency_key="k-4"))
    assert created.status == pb.PAYMENT_STATUS_SUCCEEDED
    assert observed.sample("payments_rate_limited_total", merchant="default", scope="merchant") == 1
    (limited,) = [line for line in observed.access_lines() if line["grpc_code"] != "OK"]
    assert (limited["grpc_code"], limited["rate_limit_scope"]) == ("RESOURCE_EXHAUSTED", "merchant")
    (span,) = [
        s for s in observed.server_spans() if s.attributes and "rate_limit.scope" in s.attributes
    ]
    assert span.attributes is not None
    assert span.attributes["rate_limit.scope"] == "merchant"


async def test_health_checks_are_never_rate_limited(observed_factory: Any) -> None:
    clock = FakeClock()
    limit = MerchantRateLimit(Buckets(rate=1.0, burst=1, max_keys=10), clock.monotonic)
    observed: Observed = await observed_factory(rate_limit=limit, clock=clock)
    for _ in range(5):
        assert (await observed.api.stub.Health(pb.HealthRequest())).status == "ok"


async def test_the_eleventh_new_key_for_one_order_is_refused_and_the_eleventh_replay_is_not(
    observed_factory: Any,
) -> None:
    clock = FakeClock()
    observed: Observed = await observed_factory(
        order_attempts=OrderAttempts(per_window=10, max_windows=100), clock=clock
    )
    stub = observed.api.stub
    first = [
        await stub.RequestPayment(payment_request(order_id="o-1", idempotency_key=f"k-{n}"))
        for n in range(10)
    ]
    for n in range(11):  # replays: not new payments, never refused
        replay = await stub.RequestPayment(
            payment_request(order_id="o-1", idempotency_key=f"k-{n % 10}")
        )
        assert replay.payment_id == first[n % 10].payment_id
    error = await call_error(
        stub.RequestPayment(payment_request(order_id="o-1", idempotency_key="k-new"))
    )
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert detail(error, error_details_pb2.ErrorInfo).metadata["scope"] == "order"
    retry = detail(error, error_details_pb2.RetryInfo).retry_delay.ToTimedelta().total_seconds()
    assert retry == pytest.approx(60.0)  # the window's oldest place frees in a minute
    other_order = await stub.RequestPayment(
        payment_request(order_id="o-2", idempotency_key="k-other")
    )
    assert other_order.status == pb.PAYMENT_STATUS_SUCCEEDED  # another order is unaffected
    not_stored = await call_error(
        stub.RequestPayment(payment_request(order_id="o-1", idempotency_key="k-new-2"))
    )
    assert not_stored.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    clock.advance(retry)  # obeyed: the window slid
    later = await stub.RequestPayment(payment_request(order_id="o-1", idempotency_key="k-new"))
    assert later.payment_id != other_order.payment_id
    assert observed.sample("payments_rate_limited_total", merchant="default", scope="order") == 2


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


class CountingRing(KeyRing):
    """A key ring that counts its lookups: the throttled calls must not reach it."""

    lookups = 0

    def principal_for(self, key: str):  # type: ignore[no-untyped-def]
        CountingRing.lookups += 1
        return super().principal_for(key)


async def test_failed_authentications_past_the_limit_are_refused_at_once_with_sampled_lines(
    observed_factory: Any, tmp_path: Path
) -> None:
    key = "a-valid-key"
    (tmp_path / "keys").write_text(f"acme {hashlib.sha256(key.encode()).hexdigest()}\n")
    ring = CountingRing.load(str(tmp_path / "keys"))
    CountingRing.lookups = 0
    clock = FakeClock()
    failures = Buckets(rate=5 / 60, burst=5, max_keys=10)
    authenticator = Authenticator(ring, failures=failures, clock=clock.monotonic)
    observed: Observed = await observed_factory(authenticator=authenticator)
    stub = observed.api.stub
    request = pb.GetPaymentRequest(payment_id="pay_" + "0" * 32)
    for n in range(205):
        error = await call_error(stub.GetPayment(request, metadata=bearer(f"random-{n}")))
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert CountingRing.lookups == 5  # the other 200 were refused unexamined
    assert authenticator.throttled == 200
    refused = [line for line in observed.access_lines() if line["grpc_code"] == "UNAUTHENTICATED"]
    # 5 ordinary failures, then the flood: its first line and one per 100 after it
    assert [line.get("similar_calls_unlogged") for line in refused] == [None] * 5 + [0, 99]
    valid = await call_error(stub.GetPayment(request, metadata=bearer(key)))
    assert valid.code() is grpc.StatusCode.UNAUTHENTICATED  # the address is throttled
    clock.advance(12)  # one failure's worth refilled: the address may try again
    found = await call_error(stub.GetPayment(request, metadata=bearer(key)))
    assert found.code() is grpc.StatusCode.NOT_FOUND  # authenticated: the id is unknown
