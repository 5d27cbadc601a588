"""The merchant in the metrics: the payment counters are per merchant (a bounded, configured
set), the go-grpc-middleware server metrics keep exactly their own labels."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
from prometheus_client.parser import text_string_to_metric_families

from payments_service.observability.metrics import Metrics, new_registry
from payments_service.security.api_keys import KeyRing
from payments_service.security.authenticator import Authenticator
from tests.conftest import payment_request
from tests.integration.observability.conftest import Observed
from tests.integration.test_auth import bearer, key_line

ALICE_KEY = "alice-live-bWV0cmljcy1hbGljZQ"
BOB_KEY = "bob-live-bWV0cmljcy1ib2I"
GRPC_LABELS = {"grpc_type", "grpc_service", "grpc_method"}


async def test_payment_counters_are_counted_per_merchant(
    observed_factory: Any, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    keys.write_text(key_line("alice", ALICE_KEY) + key_line("bob", BOB_KEY))
    observed: Observed = await observed_factory(
        authenticator=Authenticator(KeyRing.load(str(keys)))
    )
    stub = observed.api.stub
    alice, bob = bearer(ALICE_KEY), bearer(BOB_KEY)
    await stub.RequestPayment(payment_request(), metadata=alice)
    await stub.RequestPayment(payment_request(), metadata=alice)  # replayed
    await stub.RequestPayment(
        payment_request(idempotency_key="k2", metadata={"simulate": "decline"}), metadata=alice
    )
    await stub.RequestPayment(payment_request(), metadata=bob)  # same key: bob's own payment
    results = await asyncio.gather(
        stub.RequestPayment(payment_request(amount_minor=5), metadata=bob),  # conflict
        stub.RequestPayment(payment_request(currency="usd"), metadata=alice),  # rejected
        return_exceptions=True,
    )
    assert all(isinstance(r, grpc.aio.AioRpcError) for r in results)
    expected = {
        ("payments_created_total", "alice"): 2,
        ("payments_created_total", "bob"): 1,
        ("payments_replayed_total", "alice"): 1,
        ("payments_replayed_total", "bob"): 0,
        ("payments_idempotency_conflicts_total", "alice"): 0,
        ("payments_idempotency_conflicts_total", "bob"): 1,
        ("payments_validation_rejected_total", "alice"): 1,
        ("payments_validation_rejected_total", "bob"): 0,
    }
    for (name, merchant), value in expected.items():
        assert observed.sample(name, merchant=merchant) == value, (name, merchant)
    settled = {
        (merchant, status): observed.sample(
            "payments_settled_total", status=status, merchant=merchant
        )
        for merchant in ("alice", "bob")
        for status in ("SUCCEEDED", "FAILED")
    }
    assert settled == {
        ("alice", "SUCCEEDED"): 1,
        ("alice", "FAILED"): 1,
        ("bob", "SUCCEEDED"): 1,
        ("bob", "FAILED"): 0,
    }
    # go-grpc-middleware's metrics keep exactly their labels: no merchant there.
    for family in text_string_to_metric_families(observed.scrape()):
        if family.name.startswith("grpc_server_"):
            for sample in family.samples:
                assert set(sample.labels) - {"le"} - {"grpc_code"} == GRPC_LABELS, sample


def test_configured_merchants_start_at_zero_and_only_they_have_series() -> None:
    metrics = Metrics(new_registry())
    metrics.initialize_merchants(["alice", "bob"])
    registry = metrics.registry
    for merchant in ("alice", "bob"):
        assert registry.get_sample_value("payments_created_total", {"merchant": merchant}) == 0
        labels = {"merchant": merchant, "status": "FAILED"}
        assert registry.get_sample_value("payments_settled_total", labels) == 0
    assert registry.get_sample_value("payments_created_total", {"merchant": "mallory"}) is None
    assert metrics.for_merchant("alice") is metrics.for_merchant("alice")  # bound once
