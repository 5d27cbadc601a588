"""The floor: the cheapest grpc.aio server that answers payments.v1 on this machine.

RequestPayment, GetPayment and Health from two dicts: no validation, no interceptors, no
logging, no reflection or health service. Idempotency by key still holds (a replay returns the
stored response) and GetPayment finds the ids it created, so every benchmark workload runs
unchanged against it. Binds 127.0.0.1:0, prints `{"event": "server_started", "port": N}` and
exits 0 on SIGTERM.

    python -m benchmarks.floor_server
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from benchmarks.serving import serve_until_signalled
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc

SUCCEEDED_MESSAGE = "payment succeeded"


class FloorServicer(pb_grpc.PaymentServiceServicer):
    def __init__(self) -> None:
        self._by_key: dict[str, pb.RequestPaymentResponse] = {}
        self._by_id: dict[str, pb.GetPaymentResponse] = {}

    async def RequestPayment(  # noqa: N802 - gRPC method names are fixed by the proto
        self, request: pb.RequestPaymentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RequestPaymentResponse:
        return self.request_sync(request)

    async def GetPayment(  # noqa: N802
        self, request: pb.GetPaymentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetPaymentResponse:
        payment = self.lookup(request.payment_id)
        if payment is None:
            context.set_code(grpc.StatusCode.NOT_FOUND)
            return pb.GetPaymentResponse()
        return payment

    async def Health(  # noqa: N802
        self, request: pb.HealthRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.HealthResponse:
        return pb.HealthResponse(status="ok")

    def request_sync(self, request: pb.RequestPaymentRequest) -> pb.RequestPaymentResponse:
        """The stored response for the key, or a new SUCCEEDED payment (shared with the sync
        floor)."""
        response = self._by_key.get(request.idempotency_key)
        if response is None:
            response = self._create(request)
        return response

    def lookup(self, payment_id: str) -> pb.GetPaymentResponse | None:
        return self._by_id.get(payment_id)

    def _create(self, request: pb.RequestPaymentRequest) -> pb.RequestPaymentResponse:
        created_at = Timestamp()
        created_at.GetCurrentTime()
        payment_id = f"pay_{uuid.uuid4().hex}"
        response = pb.RequestPaymentResponse(
            payment_id=payment_id,
            status=pb.PAYMENT_STATUS_SUCCEEDED,
            message=SUCCEEDED_MESSAGE,
            idempotency_key=request.idempotency_key,
            created_at=created_at,
        )
        self._by_key[request.idempotency_key] = response
        self._by_id[payment_id] = pb.GetPaymentResponse(
            payment_id=payment_id,
            status=pb.PAYMENT_STATUS_SUCCEEDED,
            amount_minor=request.amount_minor,
            currency=request.currency,
            order_id=request.order_id,
            idempotency_key=request.idempotency_key,
            created_at=created_at,
            message=SUCCEEDED_MESSAGE,
        )
        return response


async def serve() -> None:
    server = grpc.aio.server()
    pb_grpc.add_PaymentServiceServicer_to_server(FloorServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await serve_until_signalled(server, port)


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
