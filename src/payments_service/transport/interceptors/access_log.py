"""One canonical access-log line per RPC, written when the call ends.

Client faults log at info, server faults at error (the table in `transport.calls`). The line
carries the request id and the trace/span ids through the logging processors; metadata values
are never logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from payments_service.transport.calls import SERVER_FAULT_CODES, begin_call
from payments_service.transport.interceptors.base import UnaryBehaviorInterceptor

if TYPE_CHECKING:
    import grpc

    from payments_service.transport.calls import CallState
    from payments_service.transport.interceptors.base import Behavior

ACCESS_EVENT = "rpc_completed"


class AccessLogInterceptor(UnaryBehaviorInterceptor):
    def __init__(self, excluded_prefixes: tuple[str, ...] = ()) -> None:
        super().__init__()
        self._excluded = excluded_prefixes
        self._log = structlog.get_logger("payments.access")

    def wrap(self, method: str, behavior: Behavior) -> Behavior:
        if method.startswith(self._excluded):
            return behavior

        async def logged(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            state = begin_call(method)
            try:
                return await behavior(request, context)
            finally:
                self._write(state, context.peer())

        return logged

    def _write(self, state: CallState, peer: str) -> None:
        fields: dict[str, Any] = {
            "rpc_method": state.method,
            "grpc_code": state.code.name,
            "duration_ms": round(state.duration() * 1000, 3),
            "peer": peer,
        }
        if state.merchant_id is not None:
            fields["merchant_id"] = state.merchant_id
        if state.payment_id is not None:
            fields["payment_id"] = state.payment_id
        if state.replayed is not None:
            fields["idempotent_replay"] = state.replayed
        if state.code in SERVER_FAULT_CODES:
            self._log.error(ACCESS_EVENT, **fields)
        else:
            self._log.info(ACCESS_EVENT, **fields)
