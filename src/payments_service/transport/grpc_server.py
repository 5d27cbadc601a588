"""Building and stopping the grpc.aio server. `start_server` returns the bound port, so tests
bind port 0 and callers never assume a fixed port."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import _async as health_aio  # the module `health.aio` re-exports
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
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
# The largest valid RequestPayment is ~15 KiB (20 metadata entries of 40 + 500 characters, at
# most 4 UTF-8 bytes each, plus the other fields); 64 KiB leaves room and caps abuse.
MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024


@dataclass(slots=True)
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer

    async def serving(self) -> None:
        """Report SERVING (both the overall and the PaymentService health)."""
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING at once, refuse new calls, let in-flight ones finish in `grace`."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_server(
    service: PaymentService,
    address: str,
    interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]] = (),
    credentials: grpc.ServerCredentials | None = None,
    *,
    serving: bool = True,
) -> RunningServer:
    """Serve on `address`: TLS with `credentials` (see `security.tls`), else plaintext. With
    `serving=False` health says NOT_SERVING until `RunningServer.serving()`."""
    server = grpc.aio.server(
        interceptors=list(interceptors),
        options=[
            ("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),  # a busy port must fail loudly, not be shared
        ],
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
    running = RunningServer(server, port, health_servicer)
    if serving:
        await running.serving()
    else:
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    return running
