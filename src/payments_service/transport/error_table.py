"""The one place where exceptions become gRPC statuses.

| exception                     | gRPC code           | details (google.rpc)            |
| ----------------------------- | ------------------- | ------------------------------- |
| ValidationError               | INVALID_ARGUMENT    | BadRequest (every violation)    |
| IdempotencyKeyReusedError     | ALREADY_EXISTS      | ErrorInfo IDEMPOTENCY_KEY_REUSED|
| PaymentNotFoundError          | NOT_FOUND           | ResourceInfo                    |
| ResponsePendingError          | ABORTED             | ErrorInfo REQUEST_IN_PROGRESS   |
| UndecodableRequestError       | INVALID_ARGUMENT    | BadRequest (the body)           |
| UnauthenticatedError          | UNAUTHENTICATED     | none; one fixed message         |
| StoreNotReadyError            | UNAVAILABLE         | none (retry: still connecting)  |
| StoreFullError                | RESOURCE_EXHAUSTED  | RetryInfo, ErrorInfo STORE_FULL |
| ServerOverloadedError         | RESOURCE_EXHAUSTED  | RetryInfo, ErrorInfo OVERLOADED |
| ServerShuttingDownError       | UNAVAILABLE         | ErrorInfo SHUTTING_DOWN         |
| anything else                 | INTERNAL            | none; generic message, stack logged |

No handler catches exceptions itself; the observation interceptor hands every exception of a
call to `answer_error`, so no RPC ever ends with UNKNOWN.
"""

from __future__ import annotations

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
    StoreNotReadyError,
    UnauthenticatedError,
    ValidationError,
)

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from payments_service.calls import CallRecord

log = structlog.get_logger(__name__)

ERROR_DOMAIN = "payments.v1"
INTERNAL_MESSAGE = "internal error; the failure was logged on the server"


def _domain_status(error: PaymentsError) -> status_pb2.Status | None:
    """The google.rpc.Status (code, message, details) for a domain error; None if unmapped."""
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
    elif isinstance(error, StoreNotReadyError):
        # UNAVAILABLE: the retryable code; the server is still connecting to its store.
        code, message, details = code_pb2.UNAVAILABLE, str(error), []
    elif isinstance(error, UnauthenticatedError):
        # One message for a missing, malformed or unknown key: nothing about which keys exist.
        code, message, details = code_pb2.UNAUTHENTICATED, str(error), []
    elif isinstance(error, StoreFullError):
        code, message = code_pb2.RESOURCE_EXHAUSTED, str(error)
        details = [
            error_details_pb2.RetryInfo(
                retry_delay=duration_pb2.Duration(seconds=math.ceil(error.retry_after))
            ),
            error_details_pb2.ErrorInfo(reason="STORE_FULL", domain=ERROR_DOMAIN),
        ]
    else:  # a PaymentsError subclass without a mapping is a programming error
        return None
    return _status(code, message, details)


class UndecodableRequestError(Exception):
    """The request body is not a valid serialized message of the method's request type."""

    def __init__(self, message_type: str) -> None:
        self.message_type = message_type
        super().__init__(f"request body is not a valid {message_type}")


class ServerOverloadedError(Exception):
    """The process already runs its limit of concurrent calls (`PAYMENTS_MAX_CONCURRENT_RPCS`);
    this call was refused before any work was done, so retrying it is always safe."""

    RETRY_AFTER_SECONDS = 1

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"server is overloaded: {limit} calls are already in progress on this replica; "
            "nothing was done, retry after a short backoff"
        )


class ServerShuttingDownError(Exception):
    """The process is shutting down and took no new work; another replica will answer."""

    def __init__(self) -> None:
        super().__init__(
            "server is shutting down; nothing was done, retry (another replica will answer)"
        )


def to_status(error: Exception) -> status_pb2.Status | None:
    """The google.rpc.Status for an error the service answers on purpose, else None."""
    if isinstance(error, PaymentsError):
        return _domain_status(error)
    if isinstance(error, ServerShuttingDownError):
        return _status(
            code_pb2.UNAVAILABLE,
            str(error),
            [error_details_pb2.ErrorInfo(reason="SHUTTING_DOWN", domain=ERROR_DOMAIN)],
        )
    if isinstance(error, ServerOverloadedError):
        return _status(
            code_pb2.RESOURCE_EXHAUSTED,
            str(error),
            [
                error_details_pb2.RetryInfo(
                    retry_delay=duration_pb2.Duration(seconds=error.RETRY_AFTER_SECONDS)
                ),
                error_details_pb2.ErrorInfo(
                    reason="OVERLOADED",
                    domain=ERROR_DOMAIN,
                    metadata={"max_concurrent_rpcs": str(error.limit)},
                ),
            ],
        )
    if isinstance(error, UndecodableRequestError):
        # Fixed text: no parser internals, no exception class names. The parser does not say
        # which field broke, so the BadRequest names the body as a whole.
        return _status(
            code_pb2.INVALID_ARGUMENT,
            str(error),
            [
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field="", description=str(error)
                        )
                    ]
                )
            ],
        )
    return None


def answer_error(
    context: grpc.aio.ServicerContext[Any, Any], record: CallRecord, error: Exception
) -> None:
    """Answer `error` on `context` (code, message, google.rpc details) and note the code on the
    call's record. Anything without a mapping (an unexpected exception, or a PaymentsError
    subclass nobody mapped) is INTERNAL with a generic message, logged once with its traceback.

    It sets the status instead of raising: no exception crosses the interceptors above, and
    the tracing library sees the code through its context wrapper.
    """
    status = to_status(error)
    if status is None:
        log.error("unhandled_exception", rpc_method=record.method.full_method, exc_info=error)
        record.error = error
        status = status_pb2.Status(code=code_pb2.INTERNAL, message=INTERNAL_MESSAGE)
    elif isinstance(error, ValidationError):
        record.violations = tuple(dict.fromkeys(v.field for v in error.violations))
    code = _STATUS_CODES[status.code]
    record.code = code
    context.set_code(code)
    context.set_details(status.message)
    context.set_trailing_metadata(((_DETAILS_KEY, status.SerializeToString()),))


def _status(code: int, message: str, details: list[Message]) -> status_pb2.Status:
    status = status_pb2.Status(code=code, message=message)
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return status


_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}
_DETAILS_KEY = "grpc-status-details-bin"  # where grpc-status carries a google.rpc.Status
