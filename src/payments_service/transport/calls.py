"""Per-call state shared by the interceptors: one object per RPC, one timing per RPC.

The first interceptor to see a call creates its `CallState`; the error mapping writes the final
status code into it; the application's observer annotates it with what it learned about the
payment; tracing, the access log and the metrics read it when the call ends. Every consumer
therefore reports the same code, the same duration and the same payment.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass

import grpc

# Codes that mean "the server failed" (vs "the client asked for something wrong"). This one
# table drives the log level and the span status alike; it matches the OpenTelemetry semantic
# conventions for gRPC server spans.
SERVER_FAULT_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

# How Go's codes.Code.String() spells each code: the label values of go-grpc-middleware's
# Prometheus provider, which existing dashboards and alerts expect.
GO_CODE_NAMES: dict[grpc.StatusCode, str] = {
    code: "".join(part.capitalize() for part in code.name.split("_")) for code in grpc.StatusCode
}
GO_CODE_NAMES[grpc.StatusCode.OK] = "OK"
GO_CODE_NAMES[grpc.StatusCode.CANCELLED] = "Canceled"


@dataclass(slots=True)
class CallState:
    method: str
    started: float
    request_id: str | None = None
    merchant_id: str | None = None  # set once the caller is authenticated
    code: grpc.StatusCode = grpc.StatusCode.OK
    error: Exception | None = None  # an unexpected exception mapped to INTERNAL
    payment_id: str | None = None
    payment_status: str | None = None
    currency: str | None = None
    amount_minor: int | None = None
    replayed: bool | None = None
    violations: tuple[str, ...] = ()
    _duration: float | None = None

    def duration(self) -> float:
        """Seconds since the call started, measured once: the first caller fixes it."""
        if self._duration is None:
            self._duration = time.perf_counter() - self.started
        return self._duration


_current: ContextVar[CallState | None] = ContextVar("payments_call", default=None)


def begin_call(method: str) -> CallState:
    """The state of the RPC running in this task, created on first use."""
    state = _current.get()
    if state is None or state.method != method:
        state = CallState(method=method, started=time.perf_counter())
        _current.set(state)
    return state


def current_call() -> CallState | None:
    return _current.get()
