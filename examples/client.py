"""A client of payments.v1.PaymentService that retries safely: copy it into a real client.

- The channel carries the service config (`examples/service_config.json`): gRPC itself retries
  UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED and DEADLINE_EXCEEDED on RequestPayment with
  exponential backoff and jitter, waiting what the server asks (`grpc-retry-pushback-ms`).
- Every call has a deadline.
- One idempotency key per *logical* payment, made once and sent on every attempt, so a retry
  can never charge twice: the server answers the first payment again.
- A refusal that outlived the retries says when to come back (`google.rpc.RetryInfo`).
- TLS and the API key, when given.

Usage: `python examples/client.py HOST:PORT [--ca ca.pem] [--api-key-env PAYMENTS_API_KEY]`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import cast

import grpc
from google.rpc import error_details_pb2, status_pb2

from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc

SERVICE_CONFIG = Path(__file__).with_name("service_config.json")
DEADLINE_SECONDS = 10.0  # the whole call, retries included


def channel(
    target: str, *, ca_pem: bytes | None = None, api_key: str | None = None
) -> grpc.aio.Channel:
    """A channel with the service config; TLS with `ca_pem`, the API key on every call."""
    options = [("grpc.service_config", SERVICE_CONFIG.read_text()), ("grpc.enable_retries", 1)]
    if ca_pem is None:
        if api_key is not None:
            raise ValueError("an API key travels only over TLS")
        return grpc.aio.insecure_channel(target, options=options)
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    if api_key is not None:
        bearer = grpc.access_token_call_credentials(api_key)  # authorization: Bearer <key>
        credentials = grpc.composite_channel_credentials(credentials, bearer)
    return grpc.aio.secure_channel(target, credentials, options=options)


def retry_delay(error: grpc.aio.AioRpcError) -> timedelta | None:
    """When the server said a retry could succeed, from the RetryInfo in its status."""
    trailers = cast("Sequence[tuple[str, str | bytes]]", error.trailing_metadata() or ())
    for key, value in trailers:
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    delay: timedelta = info.retry_delay.ToTimedelta()
                    return delay
    return None


async def pay(
    stub: pb_grpc.PaymentServiceAsyncStub,
    *,
    amount_minor: int,
    currency: str,
    order_id: str,
    idempotency_key: str,
) -> pb.RequestPaymentResponse:
    """Request one payment. The key names this payment: reuse it to retry, never make a new
    one for the same intent."""
    request = pb.RequestPaymentRequest(
        amount_minor=amount_minor,
        currency=currency,
        order_id=order_id,
        idempotency_key=idempotency_key,
    )
    answer: pb.RequestPaymentResponse = await stub.RequestPayment(request, timeout=DEADLINE_SECONDS)
    return answer


async def main() -> None:
    parser = argparse.ArgumentParser(description="Request one payment, retrying safely.")
    parser.add_argument("target", help="HOST:PORT of the gRPC server")
    parser.add_argument("--ca", type=Path, help="the CA certificate that signed the server's")
    parser.add_argument("--api-key-env", default="PAYMENTS_API_KEY", help="variable with the key")
    args = parser.parse_args()
    ca_pem = args.ca.read_bytes() if args.ca else None
    async with channel(args.target, ca_pem=ca_pem, api_key=os.environ.get(args.api_key_env)) as ch:
        stub = pb_grpc.PaymentServiceStub(ch)
        key = str(uuid.uuid4())  # once per logical payment; persist it with the order
        try:
            answer = await pay(
                stub, amount_minor=1250, currency="EUR", order_id="order-42", idempotency_key=key
            )
        except grpc.aio.AioRpcError as error:
            delay = retry_delay(error)
            hint = f"; retry the same key after {delay}" if delay is not None else ""
            print(f"{error.code().name}: {error.details()}{hint}")
            raise SystemExit(1) from None
        print(f"{answer.payment_id} {pb.PaymentStatus.Name(answer.status)} (key {key})")


if __name__ == "__main__":
    asyncio.run(main())
