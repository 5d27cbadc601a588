"""The observation point of the JSON/HTTP transport: the HTTP twin of the gRPC observation
interceptor (`transport.interceptors.observation`), writing the same `CallRecord` for the same
reporters.

For each request it:

1. finds the route (`routes.RouteTable`), so the record's method is the RPC the route maps to
   and both transports report the same `rpc.method`; creates the record with its
   `HttpExchange` (method, route, path, status) and starts its clock, once;
2. accepts the caller's `x-request-id` when it is safe, else makes one, and returns it;
3. starts the SERVER span (`tracing.start_http_server_span`), continuing the caller's
   `traceparent`, with the HTTP semantic-convention attributes and `rpc.service`/`rpc.method`;
4. refuses what the HTTP layer refuses itself (an unknown path, a method the path does not
   serve, a body over `PAYMENTS_MAX_REQUEST_BYTES`), parks then refuses calls at shutdown
   (`ShutdownGate`) and sheds calls past `PAYMENTS_MAX_CONCURRENT_RPCS` (`ConcurrencyLimit`):
   the same gate and limit instances as gRPC, so both transports share one budget;
5. transcodes the body (`transcoding`), authenticates the `Authorization` header with the same
   `Authenticator` (the principal it makes current is what the servicer scopes by; failures
   throttled per peer address), takes a token from the same merchant rate limit, and runs the
   RPC through the gRPC servicer's own method: one implementation, two transports;
6. answers every exception through the one error table (`answer_for`); the HTTP status comes
   from the gRPC code (`status.http_status`), the body is the `google.rpc.Status` JSON, and a
   429 or 503 carries `Retry-After` from its `RetryInfo`;
7. collects the principal and the payment facts, fixes the code, status and duration, and hands
   the record to the reporters (span, access line, metrics).

Health checks (`GET /v1/health`) get the health reporters and neither the gate nor the limit,
as on gRPC; while the process drains they answer 503 (SHUTTING_DOWN), the HTTP form of the
health service's NOT_SERVING, and every response asks the client to close its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import orjson
from aiohttp import web
from google.protobuf import json_format
from google.rpc import status_pb2

from payments_service.observability.record import (
    CallRecord,
    HttpExchange,
    MethodInfo,
    default_log_level,
    enter_call,
)
from payments_service.observability.reporting import Reporters
from payments_service.observability.tracing import recording_span, start_http_server_span
from payments_service.security.authenticator import AUTHORIZATION_HEADER
from payments_service.transport.completion import complete, note_answer
from payments_service.transport.errors import (
    ServerOverloadedError,
    ServerShuttingDownError,
    UndecodableRequestError,
)
from payments_service.transport.http.routes import OPENAPI_PATH
from payments_service.transport.http.status import (
    METHOD_NOT_ALLOWED,
    RETRY_AFTER_STATUSES,
    TOO_LARGE,
    HttpRefusalError,
    body_too_large,
    http_status,
    retry_after_seconds,
)
from payments_service.transport.http.transcoding import (
    CONTENT_TYPE,
    IDEMPOTENCY_KEY_HEADER,
    decode_request,
    encode_message,
)
from payments_service.transport.interceptors.auth import PUBLIC_METHODS, admit_caller
from payments_service.transport.interceptors.observation import (
    HEALTH_CHECK_PREFIXES,
    REQUEST_ID_HEADER,
    accepted_request_id,
    new_request_id,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from google.protobuf.message import Message
    from opentelemetry.trace import Tracer
    from opentelemetry.util.types import AttributeValue

    from payments_service.observability.reporting import Reporter
    from payments_service.security.authenticator import Authenticator
    from payments_service.transport.admission import (
        ConcurrencyLimit,
        MerchantRateLimit,
        ShutdownGate,
    )
    from payments_service.transport.http.routes import Match, Route, RouteTable

    # A servicer method: (request, context) -> response; the context is not used.
    RpcHandler = Callable[[Message, Any], Awaitable[Message]]


# OpenTelemetry's known HTTP methods; any other is reported as `_OTHER` (bounded labels).
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
_NO_RPC = MethodInfo("", "", "")
_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class _Observed:
    """What every request of one route shares, computed once."""

    info: MethodInfo
    template: str  # "" when no route matched
    reporters: Reporters
    traced: bool
    limit: ConcurrencyLimit | None = None
    gate: ShutdownGate | None = None
    public: bool = True
    health: bool = False


class HttpObservation:
    """The aiohttp request handler: see the module docstring. `handlers` maps an RPC's full
    method to its implementation (the gRPC servicer's method); `document` is what
    `GET /openapi.json` serves."""

    def __init__(
        self,
        routes: RouteTable,
        handlers: Mapping[str, RpcHandler],
        authenticator: Authenticator,
        *,
        document: bytes,
        max_body_bytes: int,
        body_limit_variable: str,
        tracer: Tracer | None = None,
        reporters: Sequence[Reporter] = (),
        health_reporters: Sequence[Reporter] = (),
        observe_health_checks: bool = False,
        limit: ConcurrencyLimit | None = None,
        gate: ShutdownGate | None = None,
        rate_limit: MerchantRateLimit | None = None,
    ) -> None:
        self._routes = routes
        self._handlers = dict(handlers)
        self._authenticate = authenticator.authenticate
        self._rate_limit = rate_limit
        self._document = document
        self._max_body = max_body_bytes
        self._body_variable = body_limit_variable
        self._tracer = tracer
        self.draining = False  # set at the drain (`HttpListener.not_serving`)
        every, health = Reporters(reporters), Reporters(health_reporters)
        traced = tracer is not None
        self._observed: dict[Route, _Observed] = {}
        for route in routes.routes:
            info = route.method
            is_health = info.full_method.startswith(HEALTH_CHECK_PREFIXES)
            self._observed[route] = _Observed(
                info,
                route.template,
                reporters=health if is_health else every,
                traced=traced and (observe_health_checks or not is_health),
                limit=None if is_health else limit,
                gate=None if is_health else gate,
                public=info.full_method in PUBLIC_METHODS,
                health=is_health,
            )
        self._document_route = _Observed(_NO_RPC, OPENAPI_PATH, every, traced)
        self._unrouted = _Observed(_NO_RPC, "", every, traced)

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        verb = request.method if request.method in KNOWN_METHODS else "_OTHER"
        path = request.rel_url.raw_path  # as sent: path parameters are unescaped one by one
        observed, match, refusal = self._resolve(verb, path)
        record = CallRecord(observed.info, started)
        enter_call(record)
        record.http = http = HttpExchange(verb, observed.template, path)
        record.request_id = (
            accepted_request_id(((REQUEST_ID_HEADER, request.headers.get(REQUEST_ID_HEADER)),))
            or new_request_id()
        )
        record.peer = _peer(request)
        headers = {REQUEST_ID_HEADER: record.request_id}
        status = http_status(grpc.StatusCode.CANCELLED)  # unless answered
        with self._span(request, verb, observed):
            record.span = recording_span()
            observed.reporters.started(record)
            try:
                status, body = await self._respond(
                    request, record, observed, headers, match=match, refusal=refusal
                )
            finally:
                http.status = status
                complete(record)
                observed.reporters.finished(record)
        response = web.Response(
            body=body, status=status, headers=headers, content_type=CONTENT_TYPE
        )
        if self.draining or status == TOO_LARGE.status:  # the rest of a large body is unread
            response.force_close()
        return response

    def _resolve(
        self, verb: str, path: str
    ) -> tuple[_Observed, Match | None, HttpRefusalError | None]:
        """The route's shared state and match, or the refusal (None, None: the document)."""
        if path == OPENAPI_PATH and verb == "GET":
            return self._document_route, None, None
        try:
            match = self._routes.match(verb, path)
        except HttpRefusalError as refusal:
            return self._unrouted, None, refusal
        return self._observed[match.route], match, None

    def _span(
        self, request: web.BaseRequest, verb: str, observed: _Observed
    ) -> contextlib.AbstractContextManager[object]:
        if self._tracer is None or not observed.traced:
            return contextlib.nullcontext()
        return start_http_server_span(
            self._tracer,
            _span_name(verb, observed.template),
            request.headers,
            _span_attributes(request, verb, observed),
        )

    async def _respond(
        self,
        request: web.BaseRequest,
        record: CallRecord,
        observed: _Observed,
        headers: dict[str, str],
        *,
        match: Match | None,
        refusal: HttpRefusalError | None,
    ) -> tuple[int, bytes]:
        """The response's status and body; every failure answered, the record's code set."""
        try:
            if refusal is not None:
                if refusal.status == METHOD_NOT_ALLOWED.status:
                    headers["Allow"] = ", ".join(self._routes.allowed(request.rel_url.raw_path))
                raise refusal
            if match is None:
                return 200, self._document
            return 200, await self._admitted(request, match, observed, record.peer)
        except asyncio.CancelledError:  # the server stopped past its grace
            record.code = grpc.StatusCode.CANCELLED
            record.log_level = default_log_level(record.code)
            raise
        except HttpRefusalError as refused:
            record.code = refused.code
            return refused.status, _error_body(refused.code, str(refused))
        except Exception as error:
            return self._answer(record, error, headers)

    async def _admitted(
        self, request: web.BaseRequest, match: Match, observed: _Observed, peer: str
    ) -> bytes:
        """The call, once past the shutdown gate, the drain (health) and the limit."""
        gate = observed.gate
        if gate is not None and gate.closed:
            await gate.wait()
            raise ServerShuttingDownError
        if observed.health and self.draining:
            raise ServerShuttingDownError
        limit = observed.limit
        if limit is None:
            return await self._call(request, match, observed, peer)
        if not limit.try_enter():
            raise ServerOverloadedError(limit.limit)
        try:
            return await self._call(request, match, observed, peer)
        finally:
            limit.leave()

    async def _call(
        self, request: web.BaseRequest, match: Match, observed: _Observed, peer: str
    ) -> bytes:
        route = match.route
        raw = b""
        if route.body:
            message_type = route.request_type.DESCRIPTOR.full_name
            raw = await _read_body(request, self._max_body, self._body_variable, message_type)
        message = decode_request(
            route, raw, match.params, request.headers.getall(IDEMPOTENCY_KEY_HEADER, ())
        )
        if not observed.public:
            headers = request.headers.getall(AUTHORIZATION_HEADER, ())
            metadata = [(AUTHORIZATION_HEADER, value) for value in headers]
            admit_caller(self._authenticate, self._rate_limit, metadata, peer)
        reply = await self._handlers[observed.info.full_method](message, None)
        return encode_message(reply)

    def _answer(
        self, record: CallRecord, error: Exception, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        """Answer `error` through the one error table and note the answer on the record."""
        answer = note_answer(record, error)
        status = http_status(answer.code)
        if status in RETRY_AFTER_STATUSES:
            seconds = retry_after_seconds(answer.status)
            if seconds is not None:
                headers["Retry-After"] = str(seconds)
        return status, _status_json(answer.status)


async def _read_body(
    request: web.BaseRequest, limit: int, variable: str, message_type: str
) -> bytes:
    """The whole body, refused (413) as soon as it is known to exceed `limit` bytes (after
    decompression, when the client compressed it)."""
    length = request.content_length
    if length is not None and length > limit:
        raise body_too_large(limit, variable)
    body = bytearray()
    try:
        async for chunk in request.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > limit:
                raise body_too_large(limit, variable)
    except HttpRefusalError:
        raise
    except Exception:  # a broken chunked encoding or compression, a reset: the client's
        raise UndecodableRequestError(message_type) from None
    return bytes(body)


def _status_json(status: status_pb2.Status) -> bytes:
    return orjson.dumps(json_format.MessageToDict(status))


def _error_body(code: grpc.StatusCode, message: str) -> bytes:
    return _status_json(status_pb2.Status(code=code.value[0], message=message))


def _span_name(verb: str, template: str) -> str:
    """OpenTelemetry's HTTP server span name: `{method} {route}`, or the method alone."""
    return f"{verb} {template}" if template else verb


def _span_attributes(
    request: web.BaseRequest, verb: str, observed: _Observed
) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "http.request.method": verb,
        "url.path": request.rel_url.raw_path,
        "url.scheme": request.scheme,
    }
    if verb == "_OTHER":
        attributes["http.request.method_original"] = request.method
    if observed.template:
        attributes["http.route"] = observed.template
    if observed.info.name:
        attributes["rpc.service"] = observed.info.service
        attributes["rpc.method"] = observed.info.name
    user_agent = request.headers.get("User-Agent")
    if user_agent is not None:
        attributes["user_agent.original"] = user_agent
    return attributes


def _peer(request: web.BaseRequest) -> str:
    """The client's address as grpc spells a peer: `ipv4:127.0.0.1:53211`, `ipv6:[::1]:53211`."""
    transport = request.transport
    peername = None if transport is None else transport.get_extra_info("peername")
    if not isinstance(peername, tuple) or len(peername) < 2:
        return ""
    host, port = peername[0], peername[1]
    return f"ipv6:[{host}]:{port}" if ":" in str(host) else f"ipv4:{host}:{port}"
