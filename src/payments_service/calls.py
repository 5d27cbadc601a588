"""The record of one RPC, and the two tables every signal reads it through.

Neutral ground between the transport, which creates and completes a `CallRecord`, and the
observability reporters, which turn a completed record into a span, a log line and metrics.
Neither imports the other; both import this module.

- `CallRecord`: one per call, created and timed once by the observation interceptor; the
  application's observer annotates it with the payment it touched.
- `SERVER_FAULT_CODES`: which codes mean "the server failed" (vs "the client asked for something
  wrong"). It sets the access-log level and the span status alike, and matches the
  OpenTelemetry semantic conventions for gRPC server spans.
- `GO_CODE_NAMES`: how Go's `codes.Code.String()` spells each code: the `grpc_code` label values of
  go-grpc-middleware's Prometheus provider, which existing dashboards and alerts expect.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from opentelemetry.trace import Span

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

GO_CODE_NAMES: dict[grpc.StatusCode, str] = {
    code: "".join(part.capitalize() for part in code.name.split("_")) for code in grpc.StatusCode
}
GO_CODE_NAMES[grpc.StatusCode.OK] = "OK"
GO_CODE_NAMES[grpc.StatusCode.CANCELLED] = "Canceled"


@dataclass(frozen=True, slots=True)
class MethodInfo:
    """What every call of one RPC method shares, computed once per method."""

    full_method: str  # "/payments.v1.PaymentService/RequestPayment"
    service: str  # "payments.v1.PaymentService"
    name: str  # "RequestPayment"

    @classmethod
    def parse(cls, full_method: str) -> MethodInfo:
        service, _, name = full_method.lstrip("/").partition("/")
        return cls(full_method, service, name)


@dataclass(slots=True)
class CallRecord:
    """Everything the signals report about one call. Written by the observation interceptor
    (timing, request id, final code) and the payment observer (payment fields); read by the
    reporters once the call is complete."""

    method: MethodInfo
    started: float  # time.perf_counter() when the call entered the server's handler
    request_id: str = ""
    peer: str = ""
    code: grpc.StatusCode = grpc.StatusCode.OK
    duration: float = 0.0  # seconds, set once when the call completes
    error: BaseException | None = None  # an unexpected exception answered as INTERNAL
    span: Span | None = None  # the SERVER span the call runs in, when traced
    merchant_id: str | None = None
    payment_id: str | None = None
    payment_status: str | None = None
    currency: str | None = None
    amount_minor: int | None = None
    replayed: bool | None = None
    violations: tuple[str, ...] = field(default=())


_current: ContextVar[CallRecord | None] = ContextVar("payments_call", default=None)


def current_call() -> CallRecord | None:
    """The record of the RPC running in this task, or None outside an RPC."""
    return _current.get()


def enter_call(record: CallRecord) -> None:
    """Make `record` the current call of this task (each RPC runs in its own task)."""
    _current.set(record)
