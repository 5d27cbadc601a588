"""Request IDs: accept the caller's `x-request-id` when it is safe, else make one; return it in
the initial metadata and bind it to the logging context for the whole call."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

import structlog

from payments_service.transport.calls import begin_call
from payments_service.transport.interceptors.base import UnaryBehaviorInterceptor

if TYPE_CHECKING:
    import grpc

    from payments_service.transport.interceptors.base import Behavior

REQUEST_ID_HEADER = "x-request-id"
# 1..128 characters that are safe in logs, headers and URLs: no spaces, quotes or control chars.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@=+/-]{1,128}")


def accepted_request_id(metadata: Any) -> str | None:
    """The caller's request id if it is present and safe, else None."""
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str):
            return value if _SAFE_REQUEST_ID.fullmatch(value) else None
    return None


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdInterceptor(UnaryBehaviorInterceptor):
    def wrap(self, method: str, behavior: Behavior) -> Behavior:
        async def with_request_id(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            request_id = accepted_request_id(context.invocation_metadata()) or new_request_id()
            begin_call(method).request_id = request_id
            structlog.contextvars.bind_contextvars(request_id=request_id)
            await context.send_initial_metadata(((REQUEST_ID_HEADER, request_id),))
            return await behavior(request, context)

        return with_request_id
