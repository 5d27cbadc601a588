"""The JSON/HTTP listener against the real in-process server: grpc-gateway's status mapping row
by row, the transcoding conventions, the HTTP layer's own refusals, admission shared with gRPC,
and payments made on one transport replayed on the other."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2

from payments_service.bootstrap import build_service
from payments_service.config import ConfigError
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.observability.telemetry import Telemetry
from payments_service.security.authenticator import Authenticator
from payments_service.security.tls import ServerTls
from payments_service.transport.admission import ConcurrencyLimit, ShutdownGate
from payments_service.transport.error_table import ERROR_TABLE, Rule
from payments_service.transport.http.server import (
    HttpListener,
    openapi_document,
    start_http_server,
)
from tests.apps import running_app
from tests.conftest import TEST_SETTINGS, Api, ApiFactory, payment_request
from tests.fakes import ExplodingRepository, FakeClock, SequentialIds
from tests.polling import until
from tests.scrape import sample
from tests.tls_files import make_tls_files
from tests.transports import (
    GrpcClient,
    HttpClient,
    http_client,
    http_listener,
    parse_reply,
    with_settings,
)

PAYMENTS = "/v1/payments"
BODY = {"amountMinor": "1250", "currency": "EUR", "orderId": "order-42", "idempotencyKey": "k-1"}


@pytest.fixture
async def listener(api: Api) -> AsyncIterator[HttpListener]:
    async with http_listener(api.service) as started:
        yield started


@pytest.fixture
async def http(listener: HttpListener) -> AsyncIterator[HttpClient]:
    async with http_client(listener.port) as client:
        yield client


async def post(http: HttpClient, body: bytes | str, **headers: str) -> aiohttp.ClientResponse:
    data = body.encode() if isinstance(body, str) else body
    response = await http.session.post(http.base + PAYMENTS, data=data, headers=headers)
    await response.read()
    return response


# --- grpc-gateway's status table, one row each, against the real server -----------------------

# The table (grpc-gateway's HTTPStatusFromCode), written out here as the expectation.
GATEWAY_TABLE = [
    (grpc.StatusCode.INVALID_ARGUMENT, 400),
    (grpc.StatusCode.FAILED_PRECONDITION, 400),
    (grpc.StatusCode.OUT_OF_RANGE, 400),
    (grpc.StatusCode.UNAUTHENTICATED, 401),
    (grpc.StatusCode.PERMISSION_DENIED, 403),
    (grpc.StatusCode.NOT_FOUND, 404),
    (grpc.StatusCode.ALREADY_EXISTS, 409),
    (grpc.StatusCode.ABORTED, 409),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    (grpc.StatusCode.CANCELLED, 499),
    (grpc.StatusCode.INTERNAL, 500),
    (grpc.StatusCode.UNKNOWN, 500),
    (grpc.StatusCode.DATA_LOSS, 500),
    (grpc.StatusCode.UNIMPLEMENTED, 501),
    (grpc.StatusCode.UNAVAILABLE, 503),
    (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
]


class FailingStore:
    """A repository whose lookup fails with `error` (all GetPayment needs)."""

    def __init__(self, error: type[Exception]) -> None:
        self._error = error

    async def get(self, *args: Any) -> None:
        raise self._error("probe failure")


@pytest.mark.parametrize(("code", "status"), GATEWAY_TABLE, ids=[c.name for c, _ in GATEWAY_TABLE])
async def test_every_grpc_code_has_grpc_gateways_http_status(
    api_factory: ApiFactory, monkeypatch: pytest.MonkeyPatch, code: grpc.StatusCode, status: int
) -> None:
    """A failure whose error-table row says `code` is answered with grpc-gateway's status, the
    google.rpc.Status body, and Retry-After only on 429 and 503 (every probe row has a
    RetryInfo of 2.5 s, so the header's absence elsewhere is the rule, not a missing detail)."""
    probe = type(f"Probe{code.name}Error", (Exception,), {})  # a new type: a row of its own
    monkeypatch.setitem(ERROR_TABLE, probe, Rule(code, "info", retry_after=2.5))
    store = FailingStore(probe)
    service = build_service(TEST_SETTINGS, clock=FakeClock(), repository=store)  # type: ignore[arg-type]
    api = await api_factory(service)
    async with http_listener(api.service) as started, http_client(started.port) as client:
        reply = await client.get_payment("pay_" + "0" * 32)
    assert (reply.http_status, reply.code) == (status, code)
    assert reply.status.message == "probe failure"
    assert reply.detail(error_details_pb2.RetryInfo).retry_delay.ToMilliseconds() == 2500
    assert reply.headers.get("retry-after") == ("3" if status in (429, 503) else None)
    assert reply.headers["content-type"] == "application/json"


async def test_an_unexpected_failure_is_500_with_the_generic_message_and_logged(
    api_factory: ApiFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    service = build_service(TEST_SETTINGS, clock=FakeClock(), repository=ExplodingRepository())  # type: ignore[arg-type]
    api = await api_factory(service)
    async with http_listener(api.service) as started, http_client(started.port) as client:
        reply = await client.request_payment(payment_request())
    assert (reply.http_status, reply.code) == (500, grpc.StatusCode.INTERNAL)
    assert reply.status.message == "internal error; the failure was logged on the server"
    logged = capsys.readouterr().out
    assert logged.count("unhandled_exception") == 1
    assert "secret-dsn" not in json.dumps(json_format.MessageToDict(reply.status))


# --- the JSON conventions ----------------------------------------------------------------------


async def test_output_is_lower_camel_case_with_int64_as_strings_enums_by_name_and_defaults(
    http: HttpClient,
) -> None:
    created = await post(http, json.dumps(BODY))
    assert created.status == 200
    body = await created.json()
    assert set(body) == {"paymentId", "status", "message", "idempotencyKey", "createdAt"}
    assert body["status"] == "PAYMENT_STATUS_SUCCEEDED"
    fetched = await http.session.get(http.base + f"{PAYMENTS}/{body['paymentId']}")
    got = await fetched.json()
    assert got["amountMinor"] == "1250"
    assert got["createdAt"] == body["createdAt"]


@pytest.mark.parametrize(
    "body",
    [
        {"amount_minor": 1250, "currency": "EUR", "order_id": "order-42", "idempotency_key": "k-1"},
        {"amountMinor": 1250, "currency": "EUR", "orderId": "order-42", "idempotency_key": "k-1"},
    ],
    ids=["proto-names", "mixed"],
)
async def test_both_field_spellings_and_int64_as_a_number_are_accepted(
    http: HttpClient, body: dict[str, Any]
) -> None:
    first = await post(http, json.dumps(BODY))
    second = await post(http, json.dumps(body))
    assert second.status == 200
    assert await second.json() == await first.json()  # the same payment, replayed


UNDECODABLE = [
    pytest.param(b"", id="empty"),
    pytest.param(b"not json", id="not-json"),
    pytest.param(b"[1, 2]", id="array"),
    pytest.param(b"null", id="null"),
    pytest.param(b'{"amountMinor": "x"}', id="wrong-type"),
    pytest.param(b'{"amountMinor": 1.5}', id="fraction"),
    pytest.param(b'{"unknownField": 1}', id="unknown-field"),
    pytest.param(b'{"status": "PAYMENT_STATUS_SUCCEEDED"}', id="response-field"),
    pytest.param(b'{"currency": "EUR", "currency": "USD"}', id="repeated-key"),
    pytest.param(b'{"orderId": "a", "order_id": "b"}', id="both-spellings"),
    pytest.param(b'{"metadata": {"a": 1}}', id="metadata-number"),
    pytest.param(b'{"orderId": "\\ud800"}', id="lone-surrogate"),
    pytest.param(b'\xff\xfe{"a": 1}', id="not-utf8"),
    pytest.param(b"[" * 5000 + b"]" * 5000, id="deep-nesting"),
]


@pytest.mark.parametrize("body", UNDECODABLE)
async def test_a_body_that_is_not_the_message_in_json_is_400_and_changes_nothing(
    http: HttpClient, ids: SequentialIds, body: bytes
) -> None:
    response = await post(http, body)
    reply = parse_reply(response.status, await response.read(), pb.RequestPaymentResponse)
    assert (reply.http_status, reply.code) == (400, grpc.StatusCode.INVALID_ARGUMENT)
    assert reply.status.message == "request body is not a valid payments.v1.RequestPaymentRequest"
    assert reply.detail(error_details_pb2.BadRequest).field_violations[0].field == ""
    assert ids.issued == 0


@pytest.mark.parametrize(
    ("body_key", "header", "expected"),
    [
        (None, "hdr-1", "hdr-1"),
        (None, '"hdr-2"', "hdr-2"),  # the draft's structured-field string
        ("same-3", "same-3", "same-3"),
    ],
)
async def test_the_idempotency_key_header_gives_the_key_when_the_body_has_none(
    http: HttpClient, body_key: str | None, header: str, expected: str
) -> None:
    body = {k: v for k, v in BODY.items() if k != "idempotencyKey"}
    if body_key is not None:
        body["idempotencyKey"] = body_key
    response = await post(http, json.dumps(body), **{"Idempotency-Key": header})
    assert response.status == 200
    assert (await response.json())["idempotencyKey"] == expected


async def test_an_idempotency_key_header_that_disagrees_is_400_and_changes_nothing(
    http: HttpClient, ids: SequentialIds
) -> None:
    disagreeing = await post(http, json.dumps(BODY), **{"Idempotency-Key": "other"})
    response = await http.session.post(
        http.base + PAYMENTS,
        data=json.dumps(BODY),
        headers=[("Idempotency-Key", "k-1"), ("Idempotency-Key", "k-1")],
    )
    for answer in (disagreeing, response):
        reply = parse_reply(answer.status, await answer.read(), pb.RequestPaymentResponse)
        assert (reply.http_status, reply.code) == (400, grpc.StatusCode.INVALID_ARGUMENT)
        violation = reply.detail(error_details_pb2.BadRequest).field_violations[0]
        assert violation.field == "idempotency_key"
    assert ids.issued == 0


# --- what the HTTP layer refuses itself ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/nope", (404, grpc.StatusCode.NOT_FOUND, None)),
        ("GET", "/v1/payments/", (404, grpc.StatusCode.NOT_FOUND, None)),
        ("GET", "/v1/payments/a/b", (404, grpc.StatusCode.NOT_FOUND, None)),
        ("POST", "/v1/payments/", (404, grpc.StatusCode.NOT_FOUND, None)),
        ("GET", PAYMENTS, (405, grpc.StatusCode.UNIMPLEMENTED, "POST")),
        ("DELETE", "/v1/payments/pay_x", (405, grpc.StatusCode.UNIMPLEMENTED, "GET")),
        ("POST", "/v1/health", (405, grpc.StatusCode.UNIMPLEMENTED, "GET")),
        ("PATCH", "/v1/health", (405, grpc.StatusCode.UNIMPLEMENTED, "GET")),
    ],
)
async def test_an_unknown_path_is_404_and_another_method_405_with_allow(
    http: HttpClient, method: str, path: str, expected: tuple[int, grpc.StatusCode, str | None]
) -> None:
    status, code, allow = expected
    reply = await http.send(method, path, pb.HealthResponse)
    assert (reply.http_status, reply.code) == (status, code)
    assert reply.headers.get("allow") == allow
    assert len(reply.headers["x-request-id"]) == 32


@pytest.mark.parametrize(
    ("segment", "field"),
    [("pay_1%2F2", "payment_id"), ("%E2%82%AC", "payment_id"), ("%FF", "")],
    ids=["escaped-slash", "utf8", "not-utf8"],
)
async def test_a_path_parameter_is_unescaped_as_one_segment(
    http: HttpClient, segment: str, field: str
) -> None:
    """An escaped "/" stays in the id (validation refuses it) instead of splitting the path;
    an escape that is not UTF-8 is an undecodable request."""
    reply = await http.send("GET", f"{PAYMENTS}/{segment}", pb.GetPaymentResponse)
    assert (reply.http_status, reply.code) == (400, grpc.StatusCode.INVALID_ARGUMENT)
    assert reply.detail(error_details_pb2.BadRequest).field_violations[0].field == field


async def test_a_body_over_the_message_limit_is_413_and_changes_nothing(
    api: Api, ids: SequentialIds
) -> None:
    settings = with_settings(max_request_bytes=1024)
    async with (
        http_listener(api.service, settings=settings) as started,
        http_client(started.port) as client,
    ):
        body = {**BODY, "orderId": "o" * 2000}
        for chunked in (False, True):  # with a Content-Length, and streamed without one
            data: Any = json.dumps(body).encode()
            if chunked:
                data = _chunks(data)
            response = await client.session.post(client.base + PAYMENTS, data=data)
            reply = parse_reply(response.status, await response.read(), pb.RequestPaymentResponse)
            assert (reply.http_status, reply.code) == (413, grpc.StatusCode.RESOURCE_EXHAUSTED)
            assert "larger than 1024 bytes (PAYMENTS_MAX_REQUEST_BYTES)" in reply.status.message
    assert ids.issued == 0


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 256):
        yield data[start : start + 256]


async def test_a_header_over_the_header_limit_is_refused_by_the_parser(api: Api) -> None:
    settings = with_settings(http_max_header_bytes=1024)
    async with (
        http_listener(api.service, settings=settings) as started,
        http_client(started.port) as client,
    ):
        fine = await client.session.get(client.base + "/v1/health", headers={"X-A": "a" * 900})
        assert fine.status == 200
        refused = await client.session.get(client.base + "/v1/health", headers={"X-A": "a" * 2000})
        assert refused.status == 400


async def test_the_request_id_is_echoed_when_safe_and_replaced_when_not(http: HttpClient) -> None:
    for sent, echoed in (("req-123_abc.def", True), ("has space", False), ("x" * 129, False)):
        response = await http.session.get(http.base + "/v1/health", headers={"x-request-id": sent})
        returned = response.headers["x-request-id"]
        assert (returned == sent) is echoed
        assert echoed or len(returned) == 32


async def test_the_openapi_document_is_served(http: HttpClient) -> None:
    response = await http.session.get(http.base + "/openapi.json")
    assert response.status == 200
    assert await response.read() == openapi_document()
    assert response.headers["content-type"] == "application/json"


# --- admission and the lifecycle, shared with gRPC ---------------------------------------------


async def test_http_and_grpc_calls_share_one_concurrency_limit() -> None:
    """On the app `build_app` builds, with one slot: a slow gRPC call in flight makes the HTTP
    call 429 with Retry-After (one limit for both transports), and the held call still answers."""
    settings = with_settings(
        max_concurrent_rpcs=1,
        metrics_address="127.0.0.1:0",
        # The slow gRPC call holds the slot until the processor deadline: room for the HTTP calls.
        processor_timeout_seconds=2.0,
        simulated_slow_seconds=2.5,
    )
    async with (
        running_app(settings) as app,
        grpc.aio.insecure_channel(f"127.0.0.1:{app.server.port}") as channel,
    ):
        assert app.http is not None
        held = asyncio.ensure_future(
            pb_grpc.PaymentServiceStub(channel).RequestPayment(
                payment_request(idempotency_key="held", metadata={"simulate": "slow"}), timeout=10
            )
        )

        async def grpc_call_in_flight() -> bool:
            in_flight = await asyncio.to_thread(sample, app.metrics_port, "payments_rpcs_in_flight")
            return in_flight == 1

        await until(grpc_call_in_flight, every=0.02)
        async with http_client(app.http.port) as client:
            shed = await client.request_payment(payment_request())
            health = await client.send("GET", "/v1/health", pb.HealthResponse)
            assert not held.done()  # the gRPC call held the slot throughout
            pending = await held
            ok = await client.request_payment(payment_request())
        shed_total = await asyncio.to_thread(sample, app.metrics_port, "payments_rpcs_shed_total")
    assert (shed.http_status, shed.code) == (429, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert shed.headers["retry-after"] == "1"
    assert shed.detail(error_details_pb2.ErrorInfo).reason == "OVERLOADED"
    assert health.http_status == 200  # health checks are never shed
    assert pending.status == pb.PAYMENT_STATUS_PENDING  # answered at the processor deadline
    assert ok.code is grpc.StatusCode.OK
    assert shed_total == 1


async def test_a_closed_gate_parks_then_refuses_with_503_and_retry_after(api: Api) -> None:
    gate = ShutdownGate()
    async with (
        http_listener(api.service, gate=gate) as started,
        http_client(started.port) as client,
    ):
        gate.close()
        parked = asyncio.ensure_future(client.request_payment(payment_request()))
        await until(lambda: gate.parked == 1)
        assert not parked.done()
        gate.release()
        reply = await parked
    assert (reply.http_status, reply.code) == (503, grpc.StatusCode.UNAVAILABLE)
    assert reply.headers["retry-after"] == "1"
    assert reply.detail(error_details_pb2.ErrorInfo).reason == "SHUTTING_DOWN"


async def test_at_the_drain_health_is_503_and_connections_close_but_calls_are_served(
    api: Api,
) -> None:
    async with http_listener(api.service) as started, http_client(started.port) as client:
        before = await client.send("GET", "/v1/health", pb.HealthResponse)
        started.not_serving()
        health = await client.send("GET", "/v1/health", pb.HealthResponse)
        call = await client.request_payment(payment_request())
    assert before.http_status == 200
    assert (health.http_status, health.code) == (503, grpc.StatusCode.UNAVAILABLE)
    assert health.headers["retry-after"] == "1"
    assert call.code is grpc.StatusCode.OK
    assert call.headers["connection"] == "close"


async def test_stop_lets_a_call_in_flight_finish_then_refuses_connections(api: Api) -> None:
    limit = ConcurrencyLimit(10)  # read only to see the call in flight
    async with (
        http_listener(api.service, limit=limit) as started,
        http_client(started.port) as client,
    ):
        slow = asyncio.ensure_future(
            client.request_payment(payment_request(metadata={"simulate": "slow"}))
        )
        await until(lambda: limit.in_flight == 1)
        stopping = asyncio.ensure_future(started.stop(5))
        reply = await slow
        await stopping
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.session.get(client.base + "/v1/health")
    assert reply.ok().status == pb.PAYMENT_STATUS_PENDING  # answered at the processor deadline


# --- cross-transport idempotency ------------------------------------------------------------------


async def test_a_payment_made_over_http_replays_over_grpc_field_for_field_and_back(
    api: Api, http: HttpClient
) -> None:
    grpc_client = GrpcClient(api.channel)
    over_http = (await http.request_payment(payment_request(idempotency_key="h"))).ok()
    assert (await grpc_client.request_payment(payment_request(idempotency_key="h"))).ok() == (
        over_http
    )
    over_grpc = (await grpc_client.request_payment(payment_request(idempotency_key="g"))).ok()
    assert (await http.request_payment(payment_request(idempotency_key="g"))).ok() == over_grpc
    fetched = [
        (await c.get_payment(p.payment_id)).ok()
        for c in (grpc_client, http)
        for p in (over_http, over_grpc)
    ]
    assert fetched[:2] == fetched[2:]


async def test_fifty_concurrent_same_key_calls_over_both_transports_make_one_payment(
    api: Api, http: HttpClient
) -> None:
    grpc_client = GrpcClient(api.channel)
    request = payment_request(idempotency_key="race", metadata={"simulate": "slow"})
    replies = await asyncio.gather(
        *((grpc_client, http)[n % 2].request_payment(request) for n in range(50))
    )
    answers = [reply.ok() for reply in replies]
    assert len({a.payment_id for a in answers}) == 1
    assert all(a == answers[0] for a in answers)
    assert answers[0].status == pb.PAYMENT_STATUS_PENDING
    assert (await http.get_payment(answers[0].payment_id)).ok().idempotency_key == "race"


# --- TLS from the same files, and the listen address ------------------------------------------


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
async def test_the_listener_serves_tls_from_the_grpc_ports_files(
    api: Api, tmp_path: Path, mutual: bool
) -> None:
    tls = make_tls_files(tmp_path)
    settings = with_settings(
        tls_cert_file=str(tls.server_cert),
        tls_key_file=str(tls.server_key),
        tls_client_ca_file=str(tls.ca) if mutual else None,
    )
    loaded = ServerTls.load(settings)
    assert loaded is not None
    context = loaded.ssl_context()
    trusting = ssl.create_default_context(cafile=str(tls.ca))
    with_certificate = ssl.create_default_context(cafile=str(tls.ca))
    with_certificate.load_cert_chain(str(tls.client_cert), str(tls.client_key))
    listener = await start_http_server(
        api.service,
        "127.0.0.1:0",
        Authenticator(None),
        settings=settings,
        telemetry=Telemetry(),
        ssl_context=context,
    )
    try:
        async with aiohttp.ClientSession() as session:
            url = f"https://localhost:{listener.port}/v1/health"
            async with session.get(url, ssl=with_certificate) as answer:
                assert answer.status == 200
            if mutual:  # no client certificate: the handshake fails
                with pytest.raises(aiohttp.ClientError):
                    await session.get(url, ssl=trusting)
            with pytest.raises(aiohttp.ClientError):  # plaintext to a TLS port
                await session.get(url.replace("https:", "http:"))
    finally:
        await listener.stop(0)
    assert ServerTls.load(with_settings()) is None


async def test_an_address_that_cannot_be_bound_names_the_variable(api: Api) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = f"127.0.0.1:{held.getsockname()[1]}"
        for address, reason in ((taken, "Address already in use"), ("nowhere.invalid:1", "")):
            with pytest.raises(ConfigError, match=f"PAYMENTS_HTTP_ADDRESS='{address}'") as raised:
                async with http_listener(api.service, address=address):
                    pass
            assert reason in str(raised.value)
