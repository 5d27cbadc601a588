"""payments.v1.PaymentService handlers: request -> domain -> service -> response. Nothing else:
errors are mapped by `transport.error_table`, observability lives in the interceptors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.security.principal import current_principal
from payments_service.transport import mapping

if TYPE_CHECKING:
    import grpc

    from payments_service.application.service import PaymentService


class PaymentServicer(pb_grpc.PaymentServiceServicer):
    def __init__(self, service: PaymentService) -> None:
        self._service = service

    async def RequestPayment(  # noqa: N802 - gRPC method names are fixed by the proto
        self, request: pb.RequestPaymentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RequestPaymentResponse:
        result = await self._service.request_payment(
            merchant_id=_merchant(),
            amount_minor=request.amount_minor,
            currency=request.currency,
            order_id=request.order_id,
            idempotency_key=request.idempotency_key,
            metadata=request.metadata,
        )
        return mapping.request_payment_response(result)

    async def GetPayment(  # noqa: N802
        self, request: pb.GetPaymentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetPaymentResponse:
        payment = await self._service.get_payment(_merchant(), request.payment_id)
        return mapping.get_payment_response(payment)

    async def Health(  # noqa: N802
        self, request: pb.HealthRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.HealthResponse:
        return pb.HealthResponse(status="ok")


def _merchant() -> str:
    """The caller's merchant, from the principal authentication set (`default` with
    authentication off). None would mean a server built without the auth step: fail closed
    (INTERNAL), never unscoped."""
    principal = current_principal()
    if principal is None:
        raise RuntimeError("no authenticated principal for this call: AuthInterceptor missing")
    return principal.merchant_id
