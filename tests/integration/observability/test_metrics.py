"""Prometheus metrics scraped over HTTP: names, labels, exact counts, exemplars."""

from __future__ import annotations

import asyncio

import grpc
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.conftest import payment_request
from tests.integration.observability.conftest import Observed

RP = {
    "grpc_type": "unary",
    "grpc_service": "payments.v1.PaymentService",
    "grpc_method": "RequestPayment",
}


async def test_every_method_has_its_series_at_zero_from_startup(observed: Observed) -> None:
    for method in ("RequestPayment", "GetPayment", "Health"):
        labels = {**RP, "grpc_method": method}
        assert observed.sample("grpc_server_started_total", **labels) == 0
        assert observed.sample("grpc_server_handling_seconds_count", **labels) == 0
        for code in ("OK", "InvalidArgument", "NotFound", "AlreadyExists", "Internal", "Canceled"):
            assert observed.sample("grpc_server_handled_total", **labels, grpc_code=code) == 0
    health = {"grpc_type": "unary", "grpc_service": "grpc.health.v1.Health", "grpc_method": "Check"}
    assert observed.sample("grpc_server_started_total", **health) == 0


async def test_counters_increase_by_exactly_the_calls_made(observed: Observed) -> None:
    stub = observed.api.stub
    await stub.RequestPayment(payment_request())  # created
    await stub.RequestPayment(payment_request())  # replayed
    await stub.RequestPayment(
        payment_request(idempotency_key="k2", metadata={"simulate": "decline"})
    )
    results = await asyncio.gather(
        stub.RequestPayment(payment_request(amount_minor=5)),  # conflict
        stub.RequestPayment(payment_request(currency="usd")),  # rejected
        return_exceptions=True,
    )
    assert [r.code() for r in results if isinstance(r, grpc.aio.AioRpcError)] == [
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.INVALID_ARGUMENT,
    ]
    assert observed.sample("grpc_server_started_total", **RP) == 5
    assert observed.sample("grpc_server_handled_total", **RP, grpc_code="OK") == 3
    assert observed.sample("grpc_server_handled_total", **RP, grpc_code="AlreadyExists") == 1
    assert observed.sample("grpc_server_handled_total", **RP, grpc_code="InvalidArgument") == 1
    assert observed.sample("grpc_server_handling_seconds_count", **RP) == 5
    assert observed.sample("payments_created_total", merchant="default") == 2
    assert observed.sample("payments_replayed_total", merchant="default") == 1
    assert observed.sample("payments_idempotency_conflicts_total", merchant="default") == 1
    assert observed.sample("payments_validation_rejected_total", merchant="default") == 1
    assert observed.sample("payments_settled_total", status="SUCCEEDED", merchant="default") == 1
    assert observed.sample("payments_settled_total", status="FAILED", merchant="default") == 1


async def test_latency_histogram_carries_the_trace_id_as_an_exemplar(observed: Observed) -> None:
    await observed.api.stub.RequestPayment(payment_request())
    (server,) = observed.server_spans()
    trace_id = format(server.context.trace_id, "032x")
    exemplars = [
        sample.exemplar
        for family in text_string_to_metric_families(observed.scrape(openmetrics=True))  # type: ignore[no-untyped-call]
        if family.name == "grpc_server_handling_seconds"
        for sample in family.samples
        if sample.exemplar is not None and sample.labels.get("grpc_method") == "RequestPayment"
    ]
    assert [e.labels for e in exemplars] == [{"trace_id": trace_id}]


async def test_default_process_collectors_are_exported(observed: Observed) -> None:
    text = observed.scrape()
    for name in (
        "process_resident_memory_bytes",
        "python_info",
        "python_gc_objects_collected_total",
    ):
        assert f"\n{name}" in text or text.startswith(name)
