"""One client interface over both transports, so a contract case is written once and runs over
gRPC and JSON/HTTP against the same in-process service.

`GrpcClient` calls the stub; `HttpClient` sends the same request as grpc-gateway's JSON (the
message's proto3 JSON, the metadata as headers) and parses the answer back into the same proto
types, so a case compares messages and `google.rpc.Status`es without knowing the transport.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import aiohttp
import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import status_pb2
from multidict import CIMultiDict

from payments_service.application.service import PaymentService
from payments_service.config import Settings
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.observability.telemetry import Telemetry
from payments_service.security.authenticator import Authenticator
from payments_service.transport.admission import ConcurrencyLimit, ShutdownGate
from payments_service.transport.http.server import HttpListener, start_http_server
from tests.conftest import TEST_SETTINGS

Metadata = Sequence[tuple[str, str]]
M = TypeVar("M", bound=Message)
TRANSPORTS = ("grpc", "http")


@dataclass(frozen=True)
class Reply:
    """A call's answer on either transport: the response message, or the failure's code and
    google.rpc.Status (`http_status` and `headers`: the HTTP response's, over HTTP)."""

    code: grpc.StatusCode
    message: Any = None
    status: status_pb2.Status = field(default_factory=status_pb2.Status)
    http_status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names: HTTP's, or
    # gRPC's trailers

    def detail(self, kind: type[M]) -> M:
        """The one detail of type `kind` in the status."""
        found = []
        for packed in self.status.details:
            message = kind()
            if packed.Unpack(message):
                found.append(message)
        assert len(found) == 1, f"expected one {kind.__name__}, found {len(found)}"
        return found[0]

    def ok(self) -> Any:
        assert self.code is grpc.StatusCode.OK, (self.code, self.status)
        return self.message


class Client(Protocol):
    transport: str

    async def request_payment(
        self, request: pb.RequestPaymentRequest, metadata: Metadata = ()
    ) -> Reply: ...

    async def get_payment(self, payment_id: str, metadata: Metadata = ()) -> Reply: ...


class GrpcClient:
    transport = "grpc"

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = pb_grpc.PaymentServiceStub(channel)

    async def request_payment(
        self, request: pb.RequestPaymentRequest, metadata: Metadata = ()
    ) -> Reply:
        return await _grpc(self._stub.RequestPayment(request, metadata=tuple(metadata)))

    async def get_payment(self, payment_id: str, metadata: Metadata = ()) -> Reply:
        call = self._stub.GetPayment(
            pb.GetPaymentRequest(payment_id=payment_id), metadata=tuple(metadata)
        )
        return await _grpc(call)


async def _grpc(call: Any) -> Reply:
    try:
        return Reply(grpc.StatusCode.OK, await call)
    except grpc.aio.AioRpcError as error:
        status = status_pb2.Status(code=error.code().value[0], message=error.details() or "")
        trailers: dict[str, Any] = dict(error.trailing_metadata() or ())  # type: ignore[arg-type]
        if "grpc-status-details-bin" in trailers:
            status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        return Reply(error.code(), status=status, headers=trailers)


class HttpClient:
    transport = "http"

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def request_payment(
        self, request: pb.RequestPaymentRequest, metadata: Metadata = ()
    ) -> Reply:
        body = json_format.MessageToJson(request)
        return await self.send(
            "POST", "/v1/payments", pb.RequestPaymentResponse, metadata, body.encode()
        )

    async def get_payment(self, payment_id: str, metadata: Metadata = ()) -> Reply:
        return await self.send("GET", f"/v1/payments/{payment_id}", pb.GetPaymentResponse, metadata)

    async def send(
        self,
        method: str,
        path: str,
        response_type: type[Message],
        metadata: Metadata = (),
        body: bytes | None = None,
    ) -> Reply:
        headers = CIMultiDict(metadata)
        async with self.session.request(
            method, self.base + path, data=body, headers=headers
        ) as response:
            return parse_reply(response.status, await response.read(), response_type, response)


def parse_reply(
    status: int, body: bytes, response_type: type[Message], response: Any = None
) -> Reply:
    """An HTTP answer as a Reply: the response message on 200, else the google.rpc.Status."""
    headers = {} if response is None else {k.lower(): v for k, v in response.headers.items()}
    if status == 200:
        return Reply(
            grpc.StatusCode.OK,
            json_format.Parse(body, response_type()),
            http_status=status,
            headers=headers,
        )
    parsed = json_format.Parse(body, status_pb2.Status())
    code = next(c for c in grpc.StatusCode if c.value[0] == parsed.code)
    return Reply(code, status=parsed, http_status=status, headers=headers)


@asynccontextmanager
async def http_listener(
    service: PaymentService,
    *,
    authenticator: Authenticator | None = None,
    telemetry: Telemetry | None = None,
    limit: ConcurrencyLimit | None = None,
    gate: ShutdownGate | None = None,
    settings: Settings = TEST_SETTINGS,
    address: str = "127.0.0.1:0",
) -> AsyncIterator[HttpListener]:
    """The JSON/HTTP listener on `address` for `service`, stopped at the end."""
    listener = await start_http_server(
        service,
        address,
        authenticator or Authenticator(None),
        settings=settings,
        telemetry=telemetry or Telemetry(),
        limit=limit,
        gate=gate,
    )
    try:
        yield listener
    finally:
        await listener.stop(0)


@asynccontextmanager
async def http_client(port: int) -> AsyncIterator[HttpClient]:
    async with aiohttp.ClientSession() as session:
        yield HttpClient(session, f"http://127.0.0.1:{port}")


def with_settings(**changes: Any) -> Settings:
    return dataclasses.replace(TEST_SETTINGS, **changes)


@asynccontextmanager
async def client_for(
    transport: str,
    channel: grpc.aio.Channel,
    service: PaymentService,
    authenticator: Authenticator | None = None,
) -> AsyncIterator[Client]:
    """A client of `transport`: gRPC over `channel`, or JSON/HTTP to a listener started here for
    the same `service` (with the same `authenticator` as the gRPC server's)."""
    if transport == "grpc":
        yield GrpcClient(channel)
        return
    async with (
        http_listener(service, authenticator=authenticator) as listener,
        http_client(listener.port) as client,
    ):
        yield client
