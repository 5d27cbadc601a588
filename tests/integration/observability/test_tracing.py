"""Span names, kinds, structure and attributes; trace continuation; health checks excluded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from payments_service.gen.payments.v1 import payments_pb2 as pb
from tests.conftest import payment_request
from tests.fakes import ExplodingRepository
from tests.integration.observability.conftest import Observed

CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("metadata", "outcome"), [({}, "SUCCEEDED"), ({"simulate": "decline"}, "FAILED")]
)
async def test_a_new_payment_is_one_server_span_with_the_processor_outcome(
    observed: Observed, metadata: dict[str, str], outcome: str
) -> None:
    """The simulated processor and the in-memory store are in-process function calls: no
    CLIENT span for either. The processor's outcome is the SERVER span's `payment.status`."""
    response = await observed.api.stub.RequestPayment(payment_request(metadata=metadata))
    (server,) = observed.spans()
    assert server.kind is SpanKind.SERVER
    assert server.attributes is not None
    assert {k: v for k, v in server.attributes.items() if k.startswith("payment.")} == {
        "payment.id": response.payment_id,
        "payment.currency": "EUR",
        "payment.amount_minor": 1250,
        "payment.status": outcome,
        "payment.idempotent_replay": False,
    }


async def test_a_replay_is_marked_and_makes_no_processor_call(observed: Observed) -> None:
    await observed.api.stub.RequestPayment(payment_request())
    observed.exporter.clear()
    await observed.api.stub.RequestPayment(payment_request())
    (server,) = observed.server_spans()
    assert server.attributes is not None
    assert server.attributes["payment.idempotent_replay"] is True
    assert [s for s in observed.spans() if s is not server] == []


async def test_validation_is_an_event_not_a_span(observed: Observed) -> None:
    await asyncio.gather(
        observed.api.stub.RequestPayment(payment_request(currency="usd", order_id="")),
        return_exceptions=True,
    )
    (server,) = observed.spans()
    (event,) = server.events
    assert event.name == "validation.rejected"
    assert event.attributes is not None
    assert tuple(event.attributes["payment.invalid_fields"]) == ("currency", "order_id")  # type: ignore[arg-type]


async def test_a_client_traceparent_is_continued(observed: Observed) -> None:
    traceparent = f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"
    await observed.api.stub.RequestPayment(
        payment_request(), metadata=(("traceparent", traceparent),)
    )
    (server,) = observed.server_spans()
    assert format(server.context.trace_id, "032x") == CLIENT_TRACE_ID
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == CLIENT_SPAN_ID
    assert server.parent.is_remote


async def test_slow_settlement_is_traced_in_the_same_trace(observed: Observed) -> None:
    response = await observed.api.stub.RequestPayment(
        payment_request(metadata={"simulate": "slow"})
    )
    assert response.status == pb.PAYMENT_STATUS_PENDING
    assert await observed.api.service.drain(5) == 0
    (server,) = observed.server_spans()
    by_name = {s.name: s for s in observed.spans()}
    settle = by_name["payment.settle_in_background"]
    assert settle.context.trace_id == server.context.trace_id
    assert settle.parent is not None
    assert settle.parent.span_id == server.context.span_id
    assert settle.attributes is not None
    assert settle.attributes["payment.status"] == "SUCCEEDED"
    assert settle.end_time is not None
    assert server.end_time is not None
    assert settle.end_time > server.end_time  # it outlives the call
    assert set(by_name) == {server.name, settle.name}  # no CLIENT span for the processor


async def test_health_checks_are_not_traced_or_logged_by_default(observed: Observed) -> None:
    await observed.api.stub.Health(pb.HealthRequest())
    assert observed.spans() == []
    assert observed.access_lines() == []


async def test_health_checks_can_be_observed(observed_factory: Any) -> None:
    observed: Observed = await observed_factory(observe_health=True)
    await observed.api.stub.Health(pb.HealthRequest())
    assert [s.name for s in observed.spans()] == ["/payments.v1.PaymentService/Health"]
    assert len(observed.access_lines()) == 1


async def test_metadata_values_never_reach_spans_or_logs(observed: Observed) -> None:
    secret = "tok_live_do_not_log_me"
    await observed.api.stub.RequestPayment(payment_request(metadata={"card_token": secret}))
    # An invalid value (too long) is refused without being echoed anywhere either.
    await asyncio.gather(
        observed.api.stub.RequestPayment(
            payment_request(idempotency_key="k2", metadata={"card_token": secret * 100})
        ),
        return_exceptions=True,
    )
    assert len(observed.server_spans()) == 2
    for span in observed.spans():
        assert secret not in str(dict(span.attributes or {}))
        assert all(secret not in str(dict(e.attributes or {})) for e in span.events)
    assert secret not in observed.log_text()


async def test_a_failing_store_ends_the_server_span_with_the_exception_once(
    observed_factory: Any,
) -> None:
    observed: Observed = await observed_factory(repository=ExplodingRepository())
    await asyncio.gather(
        observed.api.stub.RequestPayment(payment_request()), return_exceptions=True
    )
    (server,) = observed.spans()
    assert server.status.status_code is StatusCode.ERROR
    assert [e.name for e in server.events] == ["exception"]
