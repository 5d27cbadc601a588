"""Building and stopping the grpc.aio server. `start_server` returns the bound port, so tests
bind port 0 and callers never assume a fixed port."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import _async as health_aio  # the module `health.aio` re-exports
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from payments_service.config import Settings, cannot_listen
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.transport.admission import ShutdownGate
from payments_service.transport.servicer import PaymentServicer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from payments_service.application.service import PaymentService

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PaymentService"].full_name
HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# Every unary method served, for metrics initialised at zero before the first call.
UNARY_METHODS = (
    *(
        f"/{SERVICE_NAME}/{m.name}"
        for m in pb.DESCRIPTOR.services_by_name["PaymentService"].methods
    ),
    f"/{HEALTH_SERVICE_NAME}/Check",
)
# The stop sequence (RunningServer.stop): how long new calls are parked before grpc's stop
# begins, and how long after it (GOAWAY on the wire) before the parked calls are answered.
PARK_SECONDS = 0.25
GOAWAY_SECONDS = 0.1
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def backstop_concurrent_rpcs(settings: Settings) -> int:
    """grpc's own `maximum_concurrent_rpcs`, a backstop behind ours: room for every admitted
    call, as many calls whose message never came (grpc counts those, our limit cannot see
    them), and probes. Past it grpc refuses with RESOURCE_EXHAUSTED before any interceptor."""
    return 2 * settings.max_concurrent_rpcs + 100


# Streams one connection may open beyond the admission limit, when the limit is not set: the
# calls past `PAYMENTS_MAX_CONCURRENT_RPCS` reach our interceptor and are shed there.
STREAM_HEADROOM = 100


def streams_per_connection(settings: Settings) -> int:
    """HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: `PAYMENTS_MAX_CONCURRENT_STREAMS`, else above the
    admission limit, so that a single connection's excess calls are answered
    RESOURCE_EXHAUSTED with RetryInfo by the admission limit, instead of being held by the
    client or refused by the transport (RST_STREAM REFUSED_STREAM: UNAVAILABLE, no details)."""
    if settings.max_concurrent_streams is not None:
        return settings.max_concurrent_streams
    return settings.max_concurrent_rpcs + STREAM_HEADROOM


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """The grpc server options from the settings (docs/limits.md):

    - keepalive: the server pings a transport idle for `keepalive_time_seconds` and closes it
      when no ack comes within `keepalive_timeout_seconds`, so a dead peer's calls are freed;
      clients may ping every `min_client_ping_interval_seconds` (grpc's default is 5 minutes,
      which punishes clients with a 10 s keepalive with GOAWAY too_many_pings);
    - max connection idle: a connection without calls for this long gets GOAWAY;
    - max connection age (+ grace): every connection gets GOAWAY after this age (grpc adds
      +/-10 % jitter), so clients re-resolve DNS and new replicas get traffic; calls still open
      `grace` later are cancelled. This is what frees a call whose client sent headers and never
      the message: no handler runs for it, so no limit of ours sees it;
    - HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection: `streams_per_connection`, above
      our admission limit;
    - the request message and metadata sizes grpc-core accepts.
    """
    return [
        ("grpc.max_receive_message_length", settings.max_request_bytes),
        ("grpc.max_metadata_size", settings.max_metadata_bytes),
        ("grpc.so_reuseport", 0),  # a busy port must fail loudly, not be shared
        ("grpc.keepalive_time_ms", _ms(settings.keepalive_time_seconds)),
        ("grpc.keepalive_timeout_ms", _ms(settings.keepalive_timeout_seconds)),
        ("grpc.keepalive_permit_without_calls", 1),
        (
            "grpc.http2.min_ping_interval_without_data_ms",
            _ms(settings.min_client_ping_interval_seconds),
        ),
        ("grpc.max_connection_idle_ms", _ms(settings.max_connection_idle_seconds)),
        ("grpc.max_connection_age_ms", _ms(settings.max_connection_age_seconds)),
        ("grpc.max_connection_age_grace_ms", _ms(settings.max_connection_age_grace_seconds)),
        ("grpc.max_concurrent_streams", streams_per_connection(settings)),
    ]


def _check_can_listen(address: str) -> None:
    """Bind `address` once before grpc does, so a port in use is one clear line (grpc-core
    would log its own error first). Port 0 always binds."""
    host, _, port = address.rpartition(":")
    if port == "0":
        return
    try:
        resolved = socket.getaddrinfo(
            host.strip("[]") or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise cannot_listen("grpc_address", address, exc.strerror or "no such address") from None
    for family, kind, proto, _, sockaddr in resolved:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpc binds
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                raise cannot_listen(
                    "grpc_address", address, exc.strerror or "bind failed"
                ) from None


@dataclass(slots=True)
class RunningServer:
    """A started server and its health.

    Health names: `payments.v1.PaymentService` is readiness (SERVING once the store is open,
    NOT_SERVING while the store cannot be reached and from the start of a shutdown); the
    overall status `""` is liveness and startup: SERVING once the store has been opened, and
    NOT_SERVING only when shutting down, so no liveness probe restarts a process that is
    waiting for its store to come back (deploy/kubernetes). `ready` is the readiness status, for
    the `payments_health_serving` gauge."""

    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    gate: ShutdownGate = field(default_factory=ShutdownGate)
    ready: bool = False
    store_reachable: bool = True
    stopping: bool = False

    async def not_serving(self) -> None:
        """Report NOT_SERVING on every health service name, for good; calls are still served."""
        self.stopping = True
        self.ready = False
        await self.health.enter_graceful_shutdown()

    async def serving(self) -> None:
        """Report SERVING (both the overall and the PaymentService health): the store is open.
        Readiness stays NOT_SERVING while the store is known to be unreachable."""
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self._set_ready(self.store_reachable)

    async def set_store_reachable(self, reachable: bool) -> None:
        """Readiness follows the store (`adapters.stores.health.StoreHealth`); liveness not."""
        self.store_reachable = reachable
        await self._set_ready(reachable)

    async def _set_ready(self, ready: bool) -> None:
        if self.stopping:  # NOT_SERVING for good (grpc's health servicer ignores sets too)
            return
        self.ready = ready
        status = health_pb2.HealthCheckResponse.SERVING if ready else _NOT_SERVING
        await self.health.set(SERVICE_NAME, status)

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, refuse new calls (UNAVAILABLE), let in-flight ones finish within
        `grace` seconds; then grpc cancels what is left.

        grpc-core's stop answers CANCELLED to calls it had received but not yet handed to a
        handler, so first the gate parks new calls for `PARK_SECONDS` (grpc-core's queue
        drains into handlers), grpc's stop begins (GOAWAY), and `GOAWAY_SECONDS` later the
        parked calls are answered UNAVAILABLE (`transport.admission.ShutdownGate`).
        """
        started = time.monotonic()
        await self.not_serving()
        self.gate.close()
        await asyncio.sleep(min(PARK_SECONDS, grace))
        left = max(0.0, grace - (time.monotonic() - started))
        stopping = asyncio.ensure_future(self.server.stop(left))
        await asyncio.sleep(min(GOAWAY_SECONDS, left))
        self.gate.release()
        await stopping


async def start_server(
    service: PaymentService,
    address: str,
    interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]] = (),
    credentials: grpc.ServerCredentials | None = None,
    *,
    settings: Settings | None = None,
    gate: ShutdownGate | None = None,
    serving: bool = True,
) -> RunningServer:
    """Serve on `address`: TLS with `credentials` (see `security.tls`), else plaintext, with
    the connection and size limits of `settings` (default: every default). With
    `serving=False` health says NOT_SERVING until `RunningServer.serving()`."""
    settings = settings or Settings()
    _check_can_listen(address)
    server = grpc.aio.server(
        interceptors=list(interceptors),
        options=server_options(settings),
        maximum_concurrent_rpcs=backstop_concurrent_rpcs(settings),
    )
    pb_grpc.add_PaymentServiceServicer_to_server(PaymentServicer(service), server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError:  # grpc's "Failed to bind to address" (after it logged why)
        await server.stop(None)
        raise cannot_listen("grpc_address", address, "grpc could not bind it") from None
    await server.start()
    running = RunningServer(server, port, health_servicer, gate or ShutdownGate())
    if serving:
        await running.serving()
    else:
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, _NOT_SERVING)
    return running
