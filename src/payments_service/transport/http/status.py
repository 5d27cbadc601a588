"""The HTTP status of every answer: grpc-gateway's standard mapping from the gRPC code.

The gRPC code of a failure comes from the one error table (`transport.error_table`); this
module turns it into the HTTP status (`HTTP_STATUS`, grpc-gateway's `HTTPStatusFromCode`) and
the response headers. It is the only place the HTTP transport decides a status, so
ARCHITECTURE.md's error table renders its HTTP column from here (`payments_service.reference`).

A few requests are refused by the HTTP layer itself before any RPC is chosen, as
grpc-gateway's routing errors are (its `HTTPStatusError`): an unknown path, a method the path
does not serve and a body over the size limit. `HttpRefusalError` carries their own status with the
gRPC code their `google.rpc.Status` body reports.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import grpc
from google.rpc import error_details_pb2

if TYPE_CHECKING:
    from google.rpc import status_pb2

# grpc-gateway v2, runtime/errors.go `HTTPStatusFromCode`.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
# The statuses whose `Retry-After` header is taken from the answer's `RetryInfo`.
RETRY_AFTER_STATUSES = frozenset({429, 503})


def http_status(code: grpc.StatusCode) -> int:
    return HTTP_STATUS[code]


class HttpRefusalError(Exception):
    """A request the HTTP layer refuses before any RPC runs, with its own HTTP status and the
    gRPC code its body reports (grpc-gateway's routing errors)."""

    def __init__(self, status: int, code: grpc.StatusCode, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


class Refusal(NamedTuple):
    """A refusal of the HTTP layer itself: its status, the code its body reports, and when."""

    status: int
    code: grpc.StatusCode
    when: str


NOT_FOUND = Refusal(404, grpc.StatusCode.NOT_FOUND, "a path no route serves")
METHOD_NOT_ALLOWED = Refusal(
    405,
    grpc.StatusCode.UNIMPLEMENTED,
    "a method the path is not served with (the `Allow` header lists those it is)",
)
TOO_LARGE = Refusal(
    413,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    "a body over `PAYMENTS_MAX_REQUEST_BYTES`; the connection is closed",
)
REFUSALS = (NOT_FOUND, METHOD_NOT_ALLOWED, TOO_LARGE)


def not_found() -> HttpRefusalError:
    return HttpRefusalError(NOT_FOUND.status, NOT_FOUND.code, "no such path")


def method_not_allowed() -> HttpRefusalError:
    return HttpRefusalError(
        METHOD_NOT_ALLOWED.status, METHOD_NOT_ALLOWED.code, "method not allowed on this path"
    )


def body_too_large(limit: int, variable: str) -> HttpRefusalError:
    return HttpRefusalError(
        TOO_LARGE.status,
        TOO_LARGE.code,
        f"request body is larger than {limit} bytes ({variable}); nothing was done",
    )


def retry_after_seconds(status: status_pb2.Status) -> int | None:
    """Whole seconds from the status's `RetryInfo` (rounded up, at least 1), or None."""
    for packed in status.details:
        if packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            packed.Unpack(info)
            delay: float = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
            return max(1, math.ceil(delay))
    return None
