"""The access log: one JSON line per call, every field present and correlated."""

from __future__ import annotations

import re
from datetime import datetime

from payments_service.gen.payments.v1 import payments_pb2 as pb
from tests.conftest import payment_request
from tests.integration.observability.conftest import Observed


async def test_one_access_line_per_call_with_every_field(observed: Observed) -> None:
    created = await observed.api.stub.RequestPayment(
        payment_request(), metadata=(("x-request-id", "req-1"),)
    )
    await observed.api.stub.RequestPayment(payment_request(), metadata=(("x-request-id", "req-2"),))
    await observed.api.stub.GetPayment(
        pb.GetPaymentRequest(payment_id=created.payment_id), metadata=(("x-request-id", "req-3"),)
    )
    lines = observed.access_lines()
    assert [line["request_id"] for line in lines] == ["req-1", "req-2", "req-3"]
    first = lines[0]
    assert set(first) >= {
        "timestamp",
        "level",
        "event",
        "request_id",
        "trace_id",
        "span_id",
        "rpc_method",
        "grpc_code",
        "duration_ms",
        "peer",
        "payment_id",
        "idempotent_replay",
    }
    assert datetime.fromisoformat(first["timestamp"]).utcoffset() is not None
    assert re.fullmatch(r"[0-9a-f]{32}", first["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", first["span_id"])
    assert first["rpc_method"] == "/payments.v1.PaymentService/RequestPayment"
    assert first["grpc_code"] == "OK"
    assert first["duration_ms"] > 0
    assert first["peer"].startswith("ipv4:127.0.0.1:")
    assert (first["payment_id"], first["idempotent_replay"]) == (created.payment_id, False)
    assert (lines[1]["payment_id"], lines[1]["idempotent_replay"]) == (created.payment_id, True)
    assert lines[2]["payment_id"] == created.payment_id
    assert "idempotent_replay" not in lines[2]
    spans = {format(s.context.span_id, "016x"): s for s in observed.server_spans()}
    for line in lines:
        span = spans[line["span_id"]]
        assert format(span.context.trace_id, "032x") == line["trace_id"]


async def test_domain_lines_carry_the_same_request_and_trace_ids(observed: Observed) -> None:
    await observed.api.stub.RequestPayment(payment_request(), metadata=(("x-request-id", "r-9"),))
    (domain,) = observed.log_lines("payment_created")
    (access,) = observed.access_lines()
    assert domain["request_id"] == access["request_id"] == "r-9"
    assert domain["trace_id"] == access["trace_id"]


async def test_duration_in_the_log_is_the_duration_in_the_histogram(observed: Observed) -> None:
    await observed.api.stub.RequestPayment(payment_request())
    (line,) = observed.access_lines()
    total = observed.sample(
        "grpc_server_handling_seconds_sum",
        grpc_type="unary",
        grpc_service="payments.v1.PaymentService",
        grpc_method="RequestPayment",
    )
    assert round(total * 1000, 3) == line["duration_ms"]
