"""The record of one call: what every signal of the call reports, observability's own.

- `CallRecord`: one per call. Its one writer is the transport's observation point (for gRPC,
  `transport.interceptors.observation`; for JSON/HTTP, `transport.http.observation`, which
  adds the `HttpExchange`), which creates it, times it once, fixes its final code
  and then hands it to the reporters (`observability.reporting`). Nobody else writes it.
- `PaymentFacts`: what the application reported about the payment a call touched. The
  application's observer (`observability.observer`) *emits* them with `report_payment`; the
  observation point collects them with `reported_payment` when the call ends.
- `SERVER_FAULT_CODES`: the codes that mean "the server failed" (vs "the client asked for
  something wrong"): the span status, the access line's default level and the SLO's error ratio
  (deploy/prometheus) all read this one set. It matches the OpenTelemetry semantic conventions
  for gRPC server spans.

Each RPC runs in its own task, and a task starts with a copy of its creator's context, so the
record and facts of one call are never seen by another.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
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


def default_log_level(code: grpc.StatusCode) -> str:
    """The access line's level for a code no error-table row chose: server faults at error."""
    return "error" if code in SERVER_FAULT_CODES else "info"


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


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    """The payment a call touched, as the application reported it."""

    payment_id: str
    currency: str
    amount_minor: int
    status: str | None = None  # the status the call answered (or GetPayment found)
    replayed: bool | None = None  # RequestPayment: an idempotent replay; None: not asked


@dataclass(slots=True)
class HttpExchange:
    """The HTTP side of a call that came over the JSON/HTTP transport (None on gRPC calls).
    `method` is a known HTTP method or `_OTHER`, and `route` a template of the route table or
    "" when no route matched, so both stay a small fixed set (metric labels)."""

    method: str  # "POST"
    route: str  # "/v1/payments/{payment_id}"
    path: str  # the request's path, as sent (a span attribute only)
    status: int = 0  # the response's status, set once when the call completes


@dataclass(slots=True)
class CallRecord:
    """Everything the signals report about one call; written by the observation point only."""

    method: MethodInfo
    started: float  # time.perf_counter() when the call entered the server's handler
    request_id: str = ""
    peer: str = ""
    code: grpc.StatusCode = grpc.StatusCode.OK
    log_level: str = "info"  # the access line's level
    duration: float = 0.0  # seconds, set once when the call completes
    error: BaseException | None = None  # an unexpected exception answered as INTERNAL
    span: Span | None = None  # the SERVER span the call runs in, when traced and recording
    merchant_id: str | None = None  # the authenticated caller's merchant, once known
    payment: PaymentFacts | None = None
    invalid_fields: tuple[str, ...] = ()  # the request fields a BadRequest named
    error_kind: str | None = None  # what failed, as the error table names it (no message)
    signals: tuple[tuple[str, str], ...] = ()  # what the error table says about a failure
    log_every: int = 1  # the access line: one in this many of such calls (a flood)
    http: HttpExchange | None = None  # the call came over HTTP (`transport.http`)


# The signal naming the rate limit that refused a call, one of RATE_LIMIT_SCOPES.
RATE_LIMIT_SCOPE = "rate_limit.scope"
RATE_LIMIT_SCOPES = ("merchant", "order")

_call: ContextVar[CallRecord | None] = ContextVar("payments_call", default=None)
_payment: ContextVar[PaymentFacts | None] = ContextVar("payments_payment", default=None)


def current_call() -> CallRecord | None:
    """The record of the RPC running in this task (read-only use: log lines), or None."""
    return _call.get()


def enter_call(record: CallRecord) -> None:
    """Make `record` the current call of this task, with no payment reported yet."""
    _call.set(record)
    _payment.set(None)


def report_payment(facts: PaymentFacts) -> None:
    """The application's observer: `facts` describe the payment this call touched (the last
    report wins)."""
    _payment.set(facts)


def reported_payment() -> PaymentFacts | None:
    """What the application reported about this call's payment, if anything."""
    return _payment.get()
