"""A real server on port 0, a real channel to it, and the checks every case goes through.

The server runs on an `asyncio.Runner`'s loop; hypothesis drives the cases from synchronous
code and each case is one `run(...)` on that loop, so one server serves every example of a
property (starting one per example would cost more than the cases). The model in `oracle`
follows what the server stored, so a key drawn twice is expected to replay or conflict.

Every case is sent as bytes through identity serializers (`unary_unary(method, None, None)`),
exactly as the wire carries it; field-level cases are encoded first. The same server also
listens for JSON/HTTP: a RequestPayment case sent with `transport="http"` goes as its proto3
JSON to `POST /v1/payments` and is held to the same oracle (the HTTP status must be its code's),
and raw HTTP cases (`fuzzing.http`) go to the same listener, sharing the model.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self, TypeVar

import aiohttp
import grpc
import structlog
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from fuzzing import http as http_fuzz
from fuzzing import oracle
from payments_service.adapters.system import SystemClock
from payments_service.bootstrap import build_interceptors, build_service
from payments_service.config import Settings
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.observability.logs import configure_logging
from payments_service.observability.metrics import Metrics, new_registry
from payments_service.observability.telemetry import Telemetry
from payments_service.observability.tracing import ServiceTracerProvider
from payments_service.security.authenticator import Authenticator
from payments_service.transport.grpc_server import start_server
from payments_service.transport.http.server import start_http_server
from payments_service.transport.http.status import TOO_LARGE, http_status

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from types import TracebackType

    from payments_service.application.service import PaymentService
    from payments_service.observability.logs import LogWriter
    from payments_service.transport.grpc_server import RunningServer
    from payments_service.transport.http.server import HttpListener

    Interceptor = grpc.aio.ServerInterceptor[Any, Any]

T = TypeVar("T")
MessageT = TypeVar("MessageT", pb.RequestPaymentRequest, pb.GetPaymentRequest)
SERVICE = "/payments.v1.PaymentService/"
REQUEST_PAYMENT = SERVICE + "RequestPayment"
GET_PAYMENT = SERVICE + "GetPayment"
FORBIDDEN = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})
CALL_TIMEOUT_SECONDS = 10.0
# A short processor deadline keeps `slow` cheap; its delay, well past the deadline, keeps its
# first answer PENDING.
HARNESS_SETTINGS = Settings(
    grpc_address="127.0.0.1:0",
    metrics_address=None,
    processor_timeout_seconds=0.1,
    simulated_slow_seconds=0.3,
    idempotency_ttl_seconds=3600,
    # The oracle models what the fields decide; thousands of keys share a handful of order
    # ids here, which the per-order limit (tested on its own) would rightly refuse.
    order_attempts_per_minute=None,
)


class CountingIds:
    """Sequential payment ids, so the id the next created payment gets is known in advance."""

    def __init__(self) -> None:
        self.issued = 0

    def new_payment_id(self) -> str:
        self.issued += 1
        return self.peek(self.issued)

    @staticmethod
    def peek(number: int) -> str:
        return f"pay_{number:032x}"


class LogScan(io.StringIO):
    """A log stream that counts lines per level and keeps only error-level ones."""

    def __init__(self) -> None:
        super().__init__()
        self.levels: Counter[str] = Counter()
        self.error_lines: list[str] = []

    def write(self, text: str) -> int:
        for line in text.splitlines():
            level = str(json.loads(line).get("level", "?"))
            self.levels[level] += 1
            if level in ("error", "critical") and len(self.error_lines) < 20:
                self.error_lines.append(line)
        return len(text)


class PropertyFailedError(AssertionError):
    """A property does not hold. An AssertionError, so pytest and hypothesis treat it as a
    failed check (and hypothesis shrinks the case); raised even under `python -O`."""


def require(condition: object, *context: object) -> None:
    if not condition:
        raise PropertyFailedError(" ".join(str(part) for part in context) or "property failed")


@dataclass
class Answer:
    code: grpc.StatusCode
    body: bytes | None = None
    details: str = ""
    trailers: dict[str, Any] = field(default_factory=dict)

    def bad_request_fields(self) -> list[str]:
        status = status_pb2.Status.FromString(self.trailers["grpc-status-details-bin"])
        bad_request = error_details_pb2.BadRequest()
        require(status.details[0].Unpack(bad_request), "the detail is not a BadRequest")
        return [violation.field for violation in bad_request.field_violations]


class Harness:
    """`with Harness() as harness:` starts the server (every reporter on: spans, metrics,
    access log) and creates one payment, so GetPayment has an id that exists."""

    def __init__(
        self,
        *,
        simulation: bool = True,
        interceptors: Callable[[Telemetry], list[Interceptor]] = build_interceptors,
    ) -> None:
        self.simulation = simulation
        self._interceptors = interceptors
        self.settings = dataclasses.replace(HARNESS_SETTINGS, simulation=simulation)
        self.model = oracle.Model()
        self.ids = CountingIds()
        self.histogram: Counter[tuple[str, str, str]] = Counter()
        # How RequestPayment cases ended: created, replayed, conflicted, rejected, undecodable.
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.logs = LogScan()
        self._runner = asyncio.Runner()
        self._probes = 0
        self._saved_logging: tuple[list[logging.Handler], int] | None = None
        self._writer: LogWriter | None = None
        self._service: PaymentService | None = None
        self._server: RunningServer | None = None
        self._channel: grpc.aio.Channel | None = None
        self._http: HttpListener | None = None
        self._session: aiohttp.ClientSession | None = None
        self._calls: dict[str, grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {}

    @property
    def known_ids(self) -> list[str]:
        return list(self.model.by_id)

    def __enter__(self) -> Self:
        root = logging.getLogger()
        self._saved_logging = (root.handlers[:], root.level)
        self._writer = configure_logging(self.settings, stream=self.logs, cache_loggers=False)
        self._runner.__enter__()
        try:
            self.run(self._start())
        except BaseException as error:  # undo what started: the logging, the loop, the server
            self.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.run(self._stop())
        finally:
            self._runner.__exit__(kind, error, traceback)
            if self._writer is not None:
                self._writer.close(5)
            if self._saved_logging is not None:
                root = logging.getLogger()
                root.handlers[:], level = self._saved_logging
                root.setLevel(level)
            structlog.reset_defaults()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coroutine)

    async def _start(self) -> None:
        telemetry = Telemetry(
            tracer_provider=ServiceTracerProvider(),
            metrics=Metrics(new_registry()),
            access_log=True,
        )
        self._service = build_service(
            self.settings, telemetry=telemetry, clock=SystemClock(), ids=self.ids
        )
        self._server = await start_server(
            self._service,
            self.settings.grpc_address,
            self._interceptors(telemetry),
            settings=self.settings,
        )
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{self._server.port}")
        self._calls = {
            method: self._channel.unary_unary(method, None, None)
            for method in (REQUEST_PAYMENT, GET_PAYMENT)
        }
        self._http = await start_http_server(
            self._service,
            "127.0.0.1:0",
            Authenticator(None),
            settings=self.settings,
            telemetry=telemetry,
        )
        self._session = aiohttp.ClientSession()
        await self.probe()

    @property
    def http_port(self) -> int:
        """The JSON/HTTP listener's port (raw HTTP cases connect to it)."""
        require(self._http is not None, "the harness is not started")
        assert self._http is not None  # noqa: S101 - for the type checker, after `require`
        return self._http.port

    async def _stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._http is not None:
            await self._http.stop(0)
        if self._channel is not None:
            await self._channel.close(None)
        if self._server is not None:
            await self._server.stop(0)
        if self._service is not None:
            await self._service.drain(5)

    def assert_no_error_logs(self) -> None:
        """No line at error level: no unhandled exception, no failing reporter."""
        writer = self._writer
        require(writer is not None and writer.flush(5), "the log writer did not drain in 5 s")
        require(not self.logs.error_lines, "error-level log lines:", *self.logs.error_lines)

    async def send(self, method: str, body: bytes, source: str, transport: str = "grpc") -> Answer:
        """`body` (the serialized request; over `transport` "http", RequestPayment's JSON) to
        `method`: the answer, never a forbidden code."""
        if transport == "http":
            answer = await self._send_http(body)
        else:
            try:
                reply = await self._calls[method](body, timeout=CALL_TIMEOUT_SECONDS)
                answer = Answer(grpc.StatusCode.OK, body=reply)
            except grpc.aio.AioRpcError as error:
                trailers: dict[str, Any] = dict(error.trailing_metadata() or ())  # type: ignore[arg-type]
                answer = Answer(error.code(), details=error.details() or "", trailers=trailers)
        self.histogram[source, method.rsplit("/", 1)[1], answer.code.name] += 1
        require(answer.code not in FORBIDDEN, method, "answered", answer)
        return answer

    async def _send_http(self, document: bytes) -> Answer:
        """RequestPayment's JSON `document` over HTTP; the answer in the gRPC form the checks
        read: the response serialized, or the code and the status."""
        require(self._session is not None, "the harness is not started")
        assert self._session is not None  # noqa: S101 - for the type checker, after `require`
        async with self._session.post(
            f"http://127.0.0.1:{self.http_port}/v1/payments",
            data=document,
            timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_SECONDS),
        ) as response:
            text = await response.read()
            status = response.status
        if status == 200:
            reply = json_format.Parse(text, pb.RequestPaymentResponse())
            return Answer(grpc.StatusCode.OK, body=reply.SerializeToString())
        parsed = json_format.Parse(text, status_pb2.Status())
        code = http_fuzz.code_of(parsed.code)
        require(status in (http_status(code), TOO_LARGE.status), code, "answered HTTP", status)
        trailers = {"grpc-status-details-bin": parsed.SerializeToString()}
        return Answer(code, details=parsed.message, trailers=trailers)

    async def raw_http(self, data: bytes, source: str) -> None:
        """Send raw HTTP bytes to the listener: an answer within the timeout, never a server
        fault, the listener's JSON or the parser's 400 (`fuzzing.http.check_answer`)."""
        try:
            answer = await http_fuzz.exchange(self.http_port, data)
            what = http_fuzz.check_answer(answer)
        except (AssertionError, TimeoutError, json.JSONDecodeError) as error:
            raise PropertyFailedError(f"{data[:300]!r}: {error}") from None
        self.histogram[source, "HTTP", what] += 1

    async def probe(self) -> None:
        """A valid new payment: the server still serves."""
        self._probes += 1
        request = pb.RequestPaymentRequest(
            amount_minor=100,
            currency="EUR",
            order_id="probe",
            idempotency_key=f"probe-{self._probes}",
        )
        await self.request_payment(request.SerializeToString(), "probe")

    async def request_payment(self, body: bytes, source: str, transport: str = "grpc") -> None:
        """Send `body` to RequestPayment (over `transport`: a valid serialized request goes
        over HTTP as its JSON) and check the answer against the oracle."""
        before = self.ids.issued
        candidate = CountingIds.peek(before + 1)
        request = _decode(pb.RequestPaymentRequest, body)
        expected = oracle.expect_request_payment(request, self.model, simulation=self.simulation)
        sent = body
        if transport == "http":  # the request's JSON (FromString raises if `body` is not one)
            decoded = pb.RequestPaymentRequest.FromString(body) if request is None else request
            sent = json_format.MessageToJson(decoded).encode()
        answer = await self.send(REQUEST_PAYMENT, sent, source, transport)
        if len(sent) > self.settings.max_request_bytes:  # refused before any work: gRPC or HTTP 413
            require(answer.code is grpc.StatusCode.RESOURCE_EXHAUSTED, answer)
            self.outcomes[source, "too large"] += 1
            await self._assert_not_stored(candidate, before)
            return
        require(answer.code is expected.code, "expected", expected, "got", answer)
        if answer.code is grpc.StatusCode.INVALID_ARGUMENT:
            _assert_bad_request(answer, expected, "RequestPaymentRequest")
            await self._assert_not_stored(candidate, before)
            self.outcomes[source, "undecodable" if expected.undecodable else "rejected"] += 1
        elif answer.code is grpc.StatusCode.OK and request is not None:  # OK implies decoded
            reply = pb.RequestPaymentResponse.FromString(answer.body or b"")
            require(reply.idempotency_key == request.idempotency_key, reply)
            if expected.replay_of is None:
                require(reply.payment_id == candidate, reply, "is not the new payment", candidate)
                require(reply.status in oracle.first_statuses(request), reply, "for", request)
                payload = oracle.payload(request)
                self.model.add(oracle.Stored(candidate, request, payload, reply.status))
                self.outcomes[source, "created"] += 1
            else:
                first = expected.replay_of
                require(
                    (reply.payment_id, reply.status) == (first.payment_id, first.first_status),
                    reply,
                    "is not a replay of",
                    first,
                )
                await self._assert_not_stored(candidate)
                self.outcomes[source, "replayed"] += 1
        else:  # ALREADY_EXISTS: the key is taken by another payload; nothing new is stored
            await self._assert_not_stored(candidate)
            self.outcomes[source, "conflicted"] += 1

    async def get_payment(self, body: bytes, source: str) -> None:
        """Send `body` to GetPayment and check the answer against the oracle."""
        request = _decode(pb.GetPaymentRequest, body)
        expected = oracle.expect_get_payment(request, self.model)
        answer = await self.send(GET_PAYMENT, body, source)
        require(answer.code is expected.code, "expected", expected, "got", answer)
        if answer.code is grpc.StatusCode.INVALID_ARGUMENT:
            _assert_bad_request(answer, expected, "GetPaymentRequest")
        elif expected.replay_of is not None:  # OK: the payment exists
            stored = expected.replay_of
            reply = pb.GetPaymentResponse.FromString(answer.body or b"")
            sent = stored.request
            require(
                (reply.payment_id, reply.amount_minor, reply.currency, reply.order_id)
                == (stored.payment_id, sent.amount_minor, sent.currency, sent.order_id)
                and reply.idempotency_key == sent.idempotency_key,
                reply,
                "is not",
                stored,
            )
            require(reply.status in stored.current_statuses(), reply, stored)

    async def _assert_not_stored(self, candidate: str, issued_before: int | None = None) -> None:
        """Nothing was stored under the id the call would have created; with `issued_before`,
        the call did not even draw an id (it never reached the claim)."""
        if issued_before is not None:
            require(self.ids.issued == issued_before, "an invalid request reached the claim")
        body = pb.GetPaymentRequest(payment_id=candidate).SerializeToString()
        answer = await self.send(GET_PAYMENT, body, "check")
        require(answer.code is grpc.StatusCode.NOT_FOUND, candidate, "was stored:", answer)


def _decode(kind: type[MessageT], body: bytes) -> MessageT | None:
    """The message as the server decodes it, or None when the body does not parse."""
    try:
        return kind.FromString(body)
    except DecodeError:
        return None


def _assert_bad_request(answer: Answer, expected: oracle.Expected, message_type: str) -> None:
    if expected.undecodable:
        message = f"request body is not a valid payments.v1.{message_type}"
        require(answer.details == message and answer.bad_request_fields() == [""], answer)
    else:
        fields = answer.bad_request_fields()
        require(fields == list(expected.violations), fields, "instead of", expected, answer)
