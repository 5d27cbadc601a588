"""Translation between protobuf messages and domain values. No logic beyond mapping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from google.protobuf.timestamp_pb2 import Timestamp

from payments_service.domain.model import PaymentStatus
from payments_service.gen.payments.v1 import payments_pb2 as pb

if TYPE_CHECKING:
    from payments_service.application.service import RequestPaymentResult
    from payments_service.domain.model import Payment

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STATUS_TO_PROTO: dict[PaymentStatus, pb.PaymentStatus.ValueType] = {
    PaymentStatus.PENDING: pb.PAYMENT_STATUS_PENDING,
    PaymentStatus.SUCCEEDED: pb.PAYMENT_STATUS_SUCCEEDED,
    PaymentStatus.FAILED: pb.PAYMENT_STATUS_FAILED,
}


def request_payment_response(result: RequestPaymentResult) -> pb.RequestPaymentResponse:
    payment = result.payment
    return pb.RequestPaymentResponse(
        payment_id=payment.payment_id,
        status=STATUS_TO_PROTO[result.response.status],
        message=result.response.message,
        idempotency_key=payment.idempotency_key,
        created_at=_timestamp(payment.created_at),
    )


def get_payment_response(payment: Payment) -> pb.GetPaymentResponse:
    request = payment.request
    return pb.GetPaymentResponse(
        payment_id=payment.payment_id,
        status=STATUS_TO_PROTO[payment.status],
        amount_minor=request.amount_minor,
        currency=request.currency,
        order_id=request.order_id,
        idempotency_key=request.idempotency_key,
        created_at=_timestamp(payment.created_at),
        message=payment.outcome.message,
    )


def _timestamp(moment: datetime) -> Timestamp:
    """`Timestamp.FromDatetime` without its pure-Python calendar arithmetic (a measurable share
    of each call): whole seconds and nanoseconds since the epoch from one subtraction."""
    since = moment - _EPOCH
    return Timestamp(seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000)
