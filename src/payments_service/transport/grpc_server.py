"""Building and stopping the grpc.aio server. `start_server` returns the bound port, so tests
bind port 0 and callers never assume a fixed port."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import _async as health_aio  # the module `health.aio` re-exports
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.transport.admission import ShutdownGate
from payments_service.transport.servicer import PaymentServicer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from payments_service.application.service import PaymentService
    from payments_service.config import Settings

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
# The largest valid RequestPayment is ~15 KiB (20 metadata entries of 40 + 500 characters, at
# most 4 UTF-8 bytes each, plus the other fields); 64 KiB leaves room and caps abuse.
MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024
# grpc-core's default cap on received metadata (headers), kept explicit because docs/limits.md
# states what a client gets past it.
MAX_METADATA_BYTES = 8 * 1024
# The stop sequence (RunningServer.stop): how long new calls are parked before grpc's stop
# begins, and how long after it (GOAWAY on the wire) before the parked calls are answered.
PARK_SECONDS = 0.25
GOAWAY_SECONDS = 0.1
KEEPALIVE_TIMEOUT_SECONDS = 20.0
# Clients may ping this often (with or without calls) without being sent GOAWAY
# too_many_pings; grpc's default is 5 minutes, which punishes clients with a 10 s keepalive.
CLIENT_PING_INTERVAL_SECONDS = 10.0


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


@dataclass(frozen=True, slots=True)
class ConnectionPolicy:
    """How long connections live and how much one connection may hold (docs/limits.md).

    - keepalive: the server pings an idle transport every `keepalive_time_seconds` and closes
      it when no ack comes within 20 s, so a dead peer's connection and calls are freed;
    - max connection idle: a connection without calls for this long gets GOAWAY;
    - max connection age (+ grace): every connection gets GOAWAY after this age (grpc adds
      +/-10 % jitter), so clients re-resolve DNS and new replicas get traffic; calls still open
      `grace` seconds later are cancelled. This is what frees a call whose client sent headers
      and never the message: no handler runs for it, so no limit of ours sees it;
    - `max_concurrent_rpcs`: our own limit (the interceptor sheds past it, counted). The
      HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS of each connection is the same number, and grpc's
      own `maximum_concurrent_rpcs` is set to twice it plus headroom as a backstop: it counts
      calls whose message never came too, and refuses past it with RESOURCE_EXHAUSTED
      "Concurrent RPC limit exceeded!" before any interceptor (uncounted; see docs/limits.md).
    """

    max_concurrent_rpcs: int = 1000
    max_connection_idle_seconds: float = 300.0
    max_connection_age_seconds: float = 300.0
    max_connection_age_grace_seconds: float = 30.0
    keepalive_time_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionPolicy:
        return cls(
            max_concurrent_rpcs=settings.max_concurrent_rpcs,
            max_connection_idle_seconds=settings.max_connection_idle_seconds,
            max_connection_age_seconds=settings.max_connection_age_seconds,
            max_connection_age_grace_seconds=settings.max_connection_age_grace_seconds,
            keepalive_time_seconds=settings.keepalive_time_seconds,
        )

    @property
    def grpc_max_concurrent_rpcs(self) -> int:
        """The backstop: room for every admitted call, as many half-open ones, and probes."""
        return 2 * self.max_concurrent_rpcs + 100

    def options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.keepalive_time_ms", _ms(self.keepalive_time_seconds)),
            ("grpc.keepalive_timeout_ms", _ms(KEEPALIVE_TIMEOUT_SECONDS)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", _ms(CLIENT_PING_INTERVAL_SECONDS)),
            ("grpc.max_connection_idle_ms", _ms(self.max_connection_idle_seconds)),
            ("grpc.max_connection_age_ms", _ms(self.max_connection_age_seconds)),
            ("grpc.max_connection_age_grace_ms", _ms(self.max_connection_age_grace_seconds)),
            ("grpc.max_concurrent_streams", self.max_concurrent_rpcs),
            ("grpc.max_metadata_size", MAX_METADATA_BYTES),
        ]


@dataclass(slots=True)
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    gate: ShutdownGate = field(default_factory=ShutdownGate)

    async def not_serving(self) -> None:
        """Report NOT_SERVING on every health service name, for good; calls are still served."""
        await self.health.enter_graceful_shutdown()

    async def serving(self) -> None:
        """Report SERVING (both the overall and the PaymentService health)."""
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

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
    policy: ConnectionPolicy | None = None,
    gate: ShutdownGate | None = None,
    serving: bool = True,
) -> RunningServer:
    """Serve on `address`: TLS with `credentials` (see `security.tls`), else plaintext, with
    the connection `policy` (defaults: `ConnectionPolicy()`). With `serving=False` health says
    NOT_SERVING until `RunningServer.serving()`."""
    policy = policy or ConnectionPolicy()
    server = grpc.aio.server(
        interceptors=list(interceptors),
        options=[
            ("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),  # a busy port must fail loudly, not be shared
            *policy.options(),
        ],
        maximum_concurrent_rpcs=policy.grpc_max_concurrent_rpcs,
    )
    pb_grpc.add_PaymentServiceServicer_to_server(PaymentServicer(service), server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    await server.start()
    running = RunningServer(server, port, health_servicer, gate or ShutdownGate())
    if serving:
        await running.serving()
    else:
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    return running
