"""The JSON/HTTP listener: aiohttp's low-level server around `HttpObservation`.

aiohttp (ARCHITECTURE.md, "The second transport", says why and what a request costs) parses
HTTP/1.1 with its C parser, serves TLS from an `ssl.SSLContext`, and stops in steps this module
drives: stop accepting, close idle connections, let requests in flight finish within the grace,
then cancel what is left. Its own routing, middleware and access log are not used: the route
table comes from the proto (`routes`), and every request is observed by `HttpObservation`.

`start_http_server` binds before anything is served, so a port in use is one ConfigError line
naming `PAYMENTS_HTTP_ADDRESS`; port 0 picks a free port (`HttpListener.port`).
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from payments_service.config import Settings, cannot_listen, variable
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.transport.http.observation import HttpObservation
from payments_service.transport.http.routes import RouteTable
from payments_service.transport.servicer import PaymentServicer

if TYPE_CHECKING:
    import ssl

    from payments_service.application.service import PaymentService
    from payments_service.observability.telemetry import Telemetry
    from payments_service.security.authenticator import Authenticator
    from payments_service.transport.admission import (
        ConcurrencyLimit,
        MerchantRateLimit,
        ShutdownGate,
    )

PAYMENT_SERVICE = pb.DESCRIPTOR.services_by_name["PaymentService"]
# Generated from the proto by `make proto` (scripts/gen_openapi.py), beside the stubs.
OPENAPI_DOCUMENT = "payments.openapi.json"
BACKLOG = 1024


def openapi_document() -> bytes:
    """The generated OpenAPI 3 document of the routes, as served at `/openapi.json`."""
    return (resources.files(pb.__package__ or "") / OPENAPI_DOCUMENT).read_bytes()


class MalformedRequests(logging.Filter):
    """aiohttp's parser refuses a malformed request (a bad request line, header or chunk) with
    a plain 400 before any handler, and logs it at error level with a traceback: client input
    would flood the error log. This filter, on the listener's own protocol logger, counts those
    and drops their lines (`payments_http_requests_malformed_total`); any other record of the
    protocol (a failure of aiohttp itself) is logged as it is."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            self.count += 1
            return False
        return True


def _protocol_logger(malformed: MalformedRequests) -> logging.Logger:
    """A logger for one listener's connections (not registered by name, so a test's many
    listeners never share one), under `payments.http` for its level and handlers."""
    logger = logging.Logger("payments.http.protocol")
    logger.parent = logging.getLogger("payments.http")
    logger.addFilter(malformed)
    return logger


@dataclass(slots=True)
class HttpListener:
    """A started listener: its port, and the drain and stop of the lifecycle."""

    runner: web.ServerRunner
    server: web.Server
    observation: HttpObservation
    port: int
    malformed: MalformedRequests = field(default_factory=MalformedRequests)

    def not_serving(self) -> None:
        """The drain began: `GET /v1/health` answers 503 and every response closes its
        connection, so clients reconnect elsewhere; calls are still served."""
        self.observation.draining = True

    async def stop(self, grace: float) -> None:
        """Stop accepting connections, close the idle ones, give requests in flight `grace`
        seconds (calls parked by the shared `ShutdownGate` are answered 503 when gRPC's stop
        releases it), then cancel what is left."""
        self.not_serving()
        for site in list(self.runner.sites):
            await site.stop()
        self.server.pre_shutdown()
        await self.server.shutdown(grace)
        await self.runner.cleanup()


async def start_http_server(
    service: PaymentService,
    address: str,
    authenticator: Authenticator,
    *,
    settings: Settings,
    telemetry: Telemetry,
    limit: ConcurrencyLimit | None = None,
    gate: ShutdownGate | None = None,
    rate_limit: MerchantRateLimit | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> HttpListener:
    """Serve payments.v1 as JSON/HTTP on `address` (TLS with `ssl_context`), every RPC through
    the gRPC servicer's own method, with the same authenticator, rate limit, gate and
    concurrency limit as gRPC."""
    routes = RouteTable.from_services(PAYMENT_SERVICE)
    servicer = PaymentServicer(service)
    every_call, health_checks = telemetry.http_reporters()
    observation = HttpObservation(
        routes,
        {r.method.full_method: getattr(servicer, r.method.name) for r in routes.routes},
        authenticator,
        document=openapi_document(),
        max_body_bytes=settings.max_request_bytes,
        body_limit_variable=variable(Settings, "max_request_bytes").name,
        tracer=None if telemetry.tracer_provider is None else telemetry.tracer(),
        reporters=every_call,
        health_reporters=health_checks,
        observe_health_checks=telemetry.observe_health_checks,
        limit=limit,
        gate=gate,
        rate_limit=rate_limit,
    )
    sock = _bind(address)
    malformed = MalformedRequests()
    server = web.Server(
        observation,
        logger=_protocol_logger(malformed),
        access_log=None,  # the observation point writes the one access line
        max_line_size=settings.http_max_header_bytes,
        max_field_size=settings.http_max_header_bytes,
        keepalive_timeout=settings.max_connection_idle_seconds,
    )
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=ssl_context, backlog=BACKLOG)
    await site.start()
    return HttpListener(runner, server, observation, int(sock.getsockname()[1]), malformed)


def _bind(address: str) -> socket.socket:
    """A listening-ready socket on `address`; ConfigError naming the variable when it cannot
    be bound (in use, or not an address of this host)."""
    host, _, port = address.rpartition(":")
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host.strip("[]") or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise cannot_listen("http_address", address, exc.strerror or "no such address") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        raise cannot_listen("http_address", address, exc.strerror or "bind failed") from None
    return sock
