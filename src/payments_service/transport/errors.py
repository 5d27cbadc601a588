"""The one place where exceptions become gRPC statuses.

| exception                     | gRPC code           | details (google.rpc)            |
| ----------------------------- | ------------------- | ------------------------------- |
| ValidationError               | INVALID_ARGUMENT    | BadRequest (every violation)    |
| IdempotencyKeyReusedError     | ALREADY_EXISTS      | ErrorInfo IDEMPOTENCY_KEY_REUSED|
| PaymentNotFoundError          | NOT_FOUND           | ResourceInfo                    |
| ResponsePendingError          | ABORTED             | ErrorInfo REQUEST_IN_PROGRESS   |
| StoreFullError                | RESOURCE_EXHAUSTED  | RetryInfo, ErrorInfo STORE_FULL |
| anything else                 | INTERNAL            | none; generic message, stack logged |

No handler catches exceptions itself, and no RPC ever ends with UNKNOWN.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from payments_service.domain.errors import (
    IdempotencyKeyReusedError,
    PaymentNotFoundError,
    PaymentsError,
    ResponsePendingError,
    StoreFullError,
    ValidationError,
)
from payments_service.transport.calls import begin_call
from payments_service.transport.interceptors.base import UnaryBehaviorInterceptor

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from payments_service.transport.interceptors.base import Behavior

log = structlog.get_logger(__name__)

ERROR_DOMAIN = "payments.v1"
INTERNAL_MESSAGE = "internal error; the failure was logged on the server"


def to_status(error: PaymentsError) -> status_pb2.Status:
    """The google.rpc.Status (code, message, details) for a domain error."""
    details: list[Message]
    if isinstance(error, ValidationError):
        code = code_pb2.INVALID_ARGUMENT
        message = "; ".join(f"{v.field}: {v.description}" for v in error.violations)
        details = [
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.violations
                ]
            )
        ]
    elif isinstance(error, IdempotencyKeyReusedError):
        code, message = code_pb2.ALREADY_EXISTS, str(error)
        details = [
            error_details_pb2.ErrorInfo(
                reason="IDEMPOTENCY_KEY_REUSED",
                domain=ERROR_DOMAIN,
                metadata={"idempotency_key": error.idempotency_key},
            )
        ]
    elif isinstance(error, PaymentNotFoundError):
        code, message = code_pb2.NOT_FOUND, str(error)
        details = [
            error_details_pb2.ResourceInfo(
                resource_type="payments.v1.Payment",
                resource_name=error.payment_id,
                description="no payment with this id (payments are kept for the idempotency TTL)",
            )
        ]
    elif isinstance(error, ResponsePendingError):
        code, message = code_pb2.ABORTED, str(error)
        details = [error_details_pb2.ErrorInfo(reason="REQUEST_IN_PROGRESS", domain=ERROR_DOMAIN)]
    elif isinstance(error, StoreFullError):
        code, message = code_pb2.RESOURCE_EXHAUSTED, str(error)
        details = [
            error_details_pb2.RetryInfo(
                retry_delay=duration_pb2.Duration(seconds=math.ceil(error.retry_after))
            ),
            error_details_pb2.ErrorInfo(reason="STORE_FULL", domain=ERROR_DOMAIN),
        ]
    else:  # a PaymentsError subclass without a mapping is a programming error
        code, message, details = code_pb2.INTERNAL, INTERNAL_MESSAGE, []
    status = status_pb2.Status(code=code, message=message)
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return status


class ErrorMappingInterceptor(UnaryBehaviorInterceptor):
    """Innermost interceptor: turns exceptions into statuses.

    It sets the code, message and details on the context and returns, instead of aborting, so no
    exception crosses the outer interceptors: each reads the final code from the call state,
    and the tracing library records the code through its context wrapper.
    """

    def wrap(self, method: str, behavior: Behavior) -> Behavior:
        async def mapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            state = begin_call(method)
            try:
                return await behavior(request, context)
            except PaymentsError as error:
                status = to_status(error)
                if isinstance(error, ValidationError):
                    state.violations = tuple(dict.fromkeys(v.field for v in error.violations))
            except grpc.aio.AbortError:
                raise  # a handler aborted on purpose; the context already has its status
            except asyncio.CancelledError:
                state.code = grpc.StatusCode.CANCELLED
                raise
            except Exception as error:
                log.exception("unhandled_exception", rpc_method=method)
                state.error = error
                status = status_pb2.Status(code=code_pb2.INTERNAL, message=INTERNAL_MESSAGE)
            code = _STATUS_CODES[status.code]
            state.code = code
            context.set_code(code)
            context.set_details(status.message)
            context.set_trailing_metadata(((_DETAILS_KEY, status.SerializeToString()),))
            return None

        return mapped


_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}
_DETAILS_KEY = "grpc-status-details-bin"  # where grpc-status carries a google.rpc.Status
