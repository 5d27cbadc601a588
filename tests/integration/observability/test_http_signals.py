"""The JSON/HTTP transport's signals, from the same record and reporters as gRPC's: one SERVER
span with the HTTP semantic conventions and the RPC's attributes (continuing the caller's
traceparent), one access line in the gRPC line's schema plus the HTTP fields, and
`http_server_request_duration_seconds`, while the gRPC-named series count gRPC only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.transport.http.server import HttpListener
from tests.conftest import payment_request
from tests.fakes import ExplodingRepository
from tests.integration.observability.conftest import Observed
from tests.integration.observability.test_tracing import CLIENT_SPAN_ID, CLIENT_TRACE_ID
from tests.transports import HttpClient, http_client, http_listener

TRACEPARENT = f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"
REQUEST_PAYMENT = "/payments.v1.PaymentService/RequestPayment"


@pytest.fixture
async def listener(observed: Observed) -> AsyncIterator[HttpListener]:
    async with http_listener(observed.api.service, telemetry=observed.telemetry) as started:
        yield started


@pytest.fixture
async def http(listener: HttpListener) -> AsyncIterator[HttpClient]:
    async with http_client(listener.port) as client:
        yield client


async def test_one_server_span_with_http_and_rpc_attributes_continuing_the_callers_trace(
    observed: Observed, http: HttpClient
) -> None:
    reply = await http.request_payment(
        payment_request(), (("traceparent", TRACEPARENT), ("x-request-id", "req-7"))
    )
    created = reply.ok()
    (server,) = observed.server_spans()
    assert (server.name, server.kind) == ("POST /v1/payments", SpanKind.SERVER)
    assert format(server.context.trace_id, "032x") == CLIENT_TRACE_ID
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == CLIENT_SPAN_ID
    assert server.parent.is_remote
    attributes = dict(server.attributes or {})
    assert attributes["http.request.method"] == "POST"
    assert attributes["http.route"] == "/v1/payments"
    assert attributes["url.path"] == "/v1/payments"
    assert attributes["http.response.status_code"] == 200
    assert attributes["rpc.service"] == "payments.v1.PaymentService"
    assert attributes["rpc.method"] == "RequestPayment"
    assert attributes["rpc.grpc.status_code"] == 0
    assert attributes["request.id"] == "req-7"
    assert attributes["merchant.id"] == "default"
    assert attributes["payment.id"] == created.payment_id
    assert attributes["payment.idempotent_replay"] is False
    assert server.status.status_code is StatusCode.UNSET
    # The memory store and the simulated processor are in-process: the SERVER span is the trace.
    assert observed.spans() == [server]


@pytest.mark.parametrize(
    ("path", "route", "status"),
    [("/v1/payments/not-an-id", "/v1/payments/{payment_id}", 400), ("/nowhere", "", 404)],
)
async def test_a_client_error_is_not_a_span_error(
    observed: Observed, http: HttpClient, path: str, route: str, status: int
) -> None:
    reply = await http.send("GET", path, pb.GetPaymentResponse)
    assert reply.http_status == status
    (server,) = observed.server_spans()
    assert server.name == f"GET {route}".strip()
    attributes = dict(server.attributes or {})
    assert attributes["http.response.status_code"] == status
    assert attributes.get("http.route") == (route or None)
    assert server.status.status_code is StatusCode.UNSET


async def test_a_server_fault_is_an_error_span_with_the_exception_once(
    observed_factory: object,
) -> None:
    observed: Observed = await observed_factory(repository=ExplodingRepository())  # type: ignore[operator]
    async with (
        http_listener(observed.api.service, telemetry=observed.telemetry) as started,
        http_client(started.port) as client,
    ):
        reply = await client.get_payment("pay_" + "0" * 32)
    assert reply.http_status == 500
    (server,) = observed.server_spans()
    assert server.status.status_code is StatusCode.ERROR
    assert [e.name for e in server.events] == ["exception"]


async def test_the_access_line_is_the_grpc_schema_plus_the_http_fields(
    observed: Observed, http: HttpClient
) -> None:
    await observed.api.stub.RequestPayment(payment_request(idempotency_key="over-grpc"))
    await http.request_payment(payment_request(), (("x-request-id", "req-9"),))
    over_grpc, over_http = observed.access_lines()
    assert set(over_http) == set(over_grpc) | {"http_method", "http_route", "http_status"}
    assert over_http["rpc_method"] == over_grpc["rpc_method"] == REQUEST_PAYMENT
    assert over_http["request_id"] == "req-9"
    assert (over_http["http_method"], over_http["http_route"], over_http["http_status"]) == (
        "POST",
        "/v1/payments",
        200,
    )
    assert over_http["grpc_code"] == "OK"
    assert over_http["peer"].startswith("ipv4:127.0.0.1:")


async def test_a_failures_access_line_is_the_grpc_schema_plus_the_http_fields(
    observed: Observed, http: HttpClient
) -> None:
    """A failure notes the same fields on both transports (its `error_kind` included)."""
    await observed.api.stub.RequestPayment(payment_request(idempotency_key="taken"))
    reused = payment_request(idempotency_key="taken", amount_minor=999)
    with pytest.raises(grpc.aio.AioRpcError):
        await observed.api.stub.RequestPayment(reused)
    assert (await http.request_payment(reused)).http_status == 409
    _, over_grpc, over_http = observed.access_lines()
    assert set(over_http) == set(over_grpc) | {"http_method", "http_route", "http_status"}
    assert over_http["error_kind"] == over_grpc["error_kind"] == "IDEMPOTENCY_KEY_REUSED"
    assert over_http["grpc_code"] == over_grpc["grpc_code"] == "ALREADY_EXISTS"


async def test_http_calls_feed_the_http_histogram_and_never_the_grpc_named_series(
    observed: Observed, http: HttpClient
) -> None:
    await http.request_payment(payment_request())
    await http.get_payment("not-an-id")
    labels = {"http_request_method": "POST", "http_route": "/v1/payments"}
    assert (
        observed.sample(
            "http_server_request_duration_seconds_count",
            **labels,
            http_response_status_code="200",
        )
        == 1
    )
    assert (
        observed.sample(
            "http_server_request_duration_seconds_count",
            http_request_method="GET",
            http_route="/v1/payments/{payment_id}",
            http_response_status_code="400",
        )
        == 1
    )
    grpc_labels = {
        "grpc_type": "unary",
        "grpc_service": "payments.v1.PaymentService",
        "grpc_method": "RequestPayment",
    }
    assert observed.sample("grpc_server_started_total", **grpc_labels) == 0
    assert observed.sample("payments_created_total", merchant="default") == 1


async def test_health_checks_are_counted_but_not_traced_or_logged(
    observed: Observed, http: HttpClient
) -> None:
    assert (await http.send("GET", "/v1/health", pb.HealthResponse)).http_status == 200
    assert observed.server_spans() == []
    assert observed.access_lines() == []
    assert (
        observed.sample(
            "http_server_request_duration_seconds_count",
            http_request_method="GET",
            http_route="/v1/health",
            http_response_status_code="200",
        )
        == 1
    )
