"""The error table: the one place where a failure becomes a status.

`ERROR_TABLE` maps each failure the service answers on purpose to a `Rule`: the gRPC code, the
log level of the call's access line, and the `google.rpc` details the client gets (an
`ErrorInfo` with a reason in domain `payments.v1`, a `RetryInfo` where retrying later helps, and
any type-specific detail such as `BadRequest`). The message is the exception's own text, which
the raising code writes for the client: it never carries SQL, a DSN, a file path or a secret.
Anything the table does not know is a bug: INTERNAL with a generic message, its traceback
logged once. ARCHITECTURE.md renders this table (`payments_service.reference`).

Every answer stays within bounds: the status travels in the trailers (`grpc-message`,
percent-encoded, and `grpc-status-details-bin`, base64), and a client refuses trailers past its
metadata limit (8 KiB by default), which would turn the code the server meant into
RESOURCE_EXHAUSTED. So the message is cut to `MAX_MESSAGE_BYTES` and a BadRequest to
`MAX_BAD_REQUEST_BYTES`, each ending with "and N more" when something was left out: at most
about 5 KiB of trailers, whatever the request.

Each answer also names its `error_kind` for the call's access line and span: the `ErrorInfo`
reason when the row has one (e.g. STORE_UNAVAILABLE), else the failure's type name; never a
message, which for a driver's error may quote SQL or a DSN.

The exception classes live with the layer that raises them: the domain and the repository
port (`domain.errors`), security (`security.authenticator`) and the transport itself
(`transport.errors`). No handler catches exceptions: the observation interceptor hands every
exception of a call to `answer_for`, so no RPC ever ends with UNKNOWN.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from payments_service.domain.errors import (
    IdempotencyKeyReusedError,
    PaymentNotFoundError,
    RateLimitedError,
    ResponsePendingError,
    StoreFullError,
    StoreReadOnlyError,
    StoreUnavailableError,
    ValidationError,
)
from payments_service.observability.record import RATE_LIMIT_SCOPE
from payments_service.security.authenticator import AuthThrottledError, UnauthenticatedError
from payments_service.transport.errors import (
    ServerOverloadedError,
    ServerShuttingDownError,
    UndecodableRequestError,
)

if TYPE_CHECKING:
    from google.protobuf.message import Message

ERROR_DOMAIN = "payments.v1"
INTERNAL_MESSAGE = "internal error; the failure was logged on the server"
DETAILS_KEY = "grpc-status-details-bin"  # where grpc-status carries a google.rpc.Status
PUSHBACK_KEY = "grpc-retry-pushback-ms"  # gRPC's retry design (A6): the server's delay
PUSHBACK_CODES = frozenset(
    {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED}
)
# How long a client is told to wait before retrying, where nothing better is known.
RETRY_SECONDS = 1.0
# Refusals a client can cause in a flood (a key scan) log one access line in this many.
FLOOD_LOG_EVERY = 100
# The bounds of a status (see the module docstring): the message in UTF-8 bytes (its
# percent-encoding is at most three times as long), the BadRequest serialized, one description.
MAX_MESSAGE_BYTES = 512
MAX_BAD_REQUEST_BYTES = 2048
MAX_DESCRIPTION_BYTES = 256


def _no_details(_: Any) -> Sequence[Message]:
    return ()


@dataclass(frozen=True, slots=True)
class Rule:
    """How one kind of failure is answered.

    `retry_after`: seconds for `RetryInfo` (a number, or read from the error), None for none;
    `metadata`: the `ErrorInfo` metadata, from the error; `details`: further details;
    `message`: the client's message (default: the error's own text); `signals`: fields the
    call's span and access line carry besides the error kind (e.g. which rate limit applied);
    `log_every`: log one access line in this many (a flood a client can cause).
    """

    code: grpc.StatusCode
    log_level: str  # of the call's access line: info (the client's doing), warning, error
    reason: str | None = None
    retry_after: float | Callable[[Any], float] | None = None
    metadata: Callable[[Any], Mapping[str, str]] | None = None
    details: Callable[[Any], Sequence[Message]] = _no_details
    detail_names: tuple[str, ...] = ()  # the `details` types, for the rendered table
    message: Callable[[Any], str] = str
    signals: Callable[[Any], Mapping[str, str]] | None = None
    log_every: int = 1

    def delay(self, error: Exception) -> float | None:
        """The seconds after which a retry may succeed (`RetryInfo`), if the row says."""
        retry = self.retry_after
        if retry is None or isinstance(retry, float):
            return retry
        return retry(error)

    def status(self, error: Exception) -> status_pb2.Status:
        """The google.rpc.Status the client receives for `error`."""
        details: list[Message] = list(self.details(error))
        delay = self.delay(error)
        if delay is not None:
            details.append(error_details_pb2.RetryInfo(retry_delay=_duration(delay)))
        if self.reason is not None:
            metadata = self.metadata(error) if self.metadata is not None else {}
            details.append(
                error_details_pb2.ErrorInfo(
                    reason=self.reason, domain=ERROR_DOMAIN, metadata=metadata
                )
            )
        return _status(self.code, _cut(self.message(error), MAX_MESSAGE_BYTES), details)

    def summary(self) -> str:
        """`CODE` and its details, as the docs show them."""
        parts = [f"`{self.code.name}`", *self.detail_names]
        if self.retry_after is not None:
            parts.append("RetryInfo")
        if self.reason is not None:
            parts.append(f"ErrorInfo `{self.reason}`")
        return " + ".join(parts)

    @staticmethod
    def meaning(error_type: type[BaseException]) -> str:
        """The first sentence of the failure's docstring: what it means."""
        doc = " ".join((error_type.__doc__ or "").split())
        return doc.split(". ", 1)[0].rstrip(".") + "."


def _bad_request(violations: Sequence[tuple[str, str]]) -> error_details_pb2.BadRequest:
    """The violations that fit in `MAX_BAD_REQUEST_BYTES`, then "and N more violations"."""
    bad_request = error_details_pb2.BadRequest()
    for index, (field, description) in enumerate(violations):
        bad_request.field_violations.add(
            field=field, description=_cut(description, MAX_DESCRIPTION_BYTES)
        )
        if bad_request.ByteSize() > MAX_BAD_REQUEST_BYTES:
            del bad_request.field_violations[-1]
            left = len(violations) - index
            bad_request.field_violations.add(field="", description=f"and {left} more violations")
            break
    return bad_request


def _validation_details(error: ValidationError) -> Sequence[Message]:
    return (_bad_request([(v.field, v.description) for v in error.violations]),)


def _validation_message(error: ValidationError) -> str:
    """Every violation, "; "-separated, as many as fit in `MAX_MESSAGE_BYTES`, then "and N
    more"."""
    budget = MAX_MESSAGE_BYTES - len("; and 99999 more")
    shown: list[str] = []
    used = 0
    for index, violation in enumerate(error.violations):
        part = _cut(f"{violation.field}: {violation.description}", budget)
        used += len(part.encode()) + (2 if shown else 0)
        if shown and used > budget:
            return "; ".join([*shown, f"and {len(error.violations) - index} more"])
        shown.append(part)
    return "; ".join(shown)


def _undecodable_details(error: UndecodableRequestError) -> Sequence[Message]:
    # The parser does not say which field broke: the BadRequest names the body as a whole.
    return (_bad_request([("", str(error))]),)


def _not_found_details(error: PaymentNotFoundError) -> Sequence[Message]:
    return (
        error_details_pb2.ResourceInfo(
            resource_type="payments.v1.Payment",
            resource_name=error.payment_id,
            description="no payment with this id (payments are kept for the idempotency TTL)",
        ),
    )


ERROR_TABLE: dict[type[Exception], Rule] = {
    ValidationError: Rule(
        grpc.StatusCode.INVALID_ARGUMENT,
        "info",
        details=_validation_details,
        detail_names=("BadRequest (every violation, up to 2 KiB)",),
        message=_validation_message,
    ),
    UndecodableRequestError: Rule(
        grpc.StatusCode.INVALID_ARGUMENT,
        "info",
        details=_undecodable_details,
        detail_names=("BadRequest (the body)",),
    ),
    UnauthenticatedError: Rule(grpc.StatusCode.UNAUTHENTICATED, "info"),
    AuthThrottledError: Rule(grpc.StatusCode.UNAUTHENTICATED, "info", log_every=FLOOD_LOG_EVERY),
    PaymentNotFoundError: Rule(
        grpc.StatusCode.NOT_FOUND,
        "info",
        details=_not_found_details,
        detail_names=("ResourceInfo",),
    ),
    IdempotencyKeyReusedError: Rule(
        grpc.StatusCode.ALREADY_EXISTS,
        "info",
        reason="IDEMPOTENCY_KEY_REUSED",
        metadata=lambda error: {"idempotency_key": error.idempotency_key},
    ),
    ResponsePendingError: Rule(
        grpc.StatusCode.ABORTED,
        "info",
        reason="REQUEST_IN_PROGRESS",
        retry_after=RETRY_SECONDS,
    ),
    RateLimitedError: Rule(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "info",
        reason="RATE_LIMITED",
        retry_after=lambda error: float(error.retry_after),
        metadata=lambda error: {"scope": error.scope, "limit": error.limit},
        signals=lambda error: {RATE_LIMIT_SCOPE: error.scope},
    ),
    ServerOverloadedError: Rule(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "warning",
        reason="OVERLOADED",
        retry_after=RETRY_SECONDS,
        metadata=lambda error: {"max_concurrent_rpcs": str(error.limit)},
    ),
    StoreFullError: Rule(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "warning",
        reason="STORE_FULL",
        retry_after=lambda error: (
            RETRY_SECONDS if error.retry_after is None else float(error.retry_after)
        ),
    ),
    StoreUnavailableError: Rule(
        grpc.StatusCode.UNAVAILABLE,
        "warning",
        reason="STORE_UNAVAILABLE",
        retry_after=RETRY_SECONDS,
    ),
    StoreReadOnlyError: Rule(
        grpc.StatusCode.UNAVAILABLE,
        "error",  # an operator must act
        reason="STORE_READ_ONLY",
        retry_after=RETRY_SECONDS,
    ),
    ServerShuttingDownError: Rule(
        grpc.StatusCode.UNAVAILABLE,
        "warning",
        reason="SHUTTING_DOWN",
        retry_after=RETRY_SECONDS,
    ),
}
# Anything else: a bug.
INTERNAL_RULE = Rule(grpc.StatusCode.INTERNAL, "error")


@dataclass(frozen=True, slots=True)
class Answer:
    """What the call answers for a failure: its code, the status (message and details) and the
    access line's level; `error_kind`: what failed, for the access line and the span (see the
    module docstring); `unexpected`: a bug (INTERNAL), to be logged with its traceback;
    `invalid_fields`: the request fields a BadRequest names."""

    code: grpc.StatusCode
    status: status_pb2.Status
    log_level: str
    error_kind: str
    unexpected: bool = False
    invalid_fields: tuple[str, ...] = ()
    retry_after: float | None = None  # seconds, as in the RetryInfo
    signals: tuple[tuple[str, str], ...] = ()  # for the span and the access line
    log_every: int = 1


def rule_for(error_type: type[BaseException]) -> Rule | None:
    """The rule for a failure type: its own row, else its nearest ancestor's; None if none."""
    if error_type in _RULES:
        return _RULES[error_type]
    rule = next((ERROR_TABLE[c] for c in error_type.__mro__ if c in ERROR_TABLE), None)
    _RULES[error_type] = rule
    return rule


_RULES: dict[type[BaseException], Rule | None] = {}  # rule_for's answers, by type


def rule_for_reason(reason: str) -> Rule:
    """The row whose `ErrorInfo.reason` is `reason` (the limits table names rows this way)."""
    for rule in ERROR_TABLE.values():
        if rule.reason == reason:
            return rule
    raise KeyError(reason)


def answer_for(error: Exception) -> Answer:
    """How a call that raised `error` is answered."""
    rule = rule_for(type(error))
    if rule is None:
        status = _status(INTERNAL_RULE.code, INTERNAL_MESSAGE, ())
        kind = type(error).__qualname__
        module = type(error).__module__
        if module != "builtins":
            kind = f"{module}.{kind}"
        return Answer(INTERNAL_RULE.code, status, INTERNAL_RULE.log_level, kind, unexpected=True)
    status = rule.status(error)
    return Answer(
        rule.code,
        status,
        rule.log_level,
        rule.reason or type(error).__name__,
        invalid_fields=_invalid_fields(status),
        retry_after=rule.delay(error),
        signals=() if rule.signals is None else tuple(rule.signals(error).items()),
        log_every=rule.log_every,
    )


async def send_answer(
    context: grpc.aio.ServicerContext[Any, Any],
    answer: Answer,
    trailers: tuple[tuple[str, str], ...] = (),
) -> None:
    """Answer the call with `answer` at once: code, message, the details in the status trailer,
    `trailers`, and for a retryable refusal with a known delay the `grpc-retry-pushback-ms`
    trailer (a gRPC client's own retry policy waits that long; other clients read RetryInfo).

    `abort` sends it as a trailers-only response, the one a gRPC client may retry
    transparently (a response that sent headers is committed: gRPC's retry design, A6). Its
    AbortError is caught here: the status is already on the wire, grpc ends the call quietly,
    and no exception crosses the interceptors above (the tracing library sees the code through
    its context wrapper, without an exception event)."""
    metadata: list[tuple[str, str | bytes]] = [
        *trailers,
        (DETAILS_KEY, answer.status.SerializeToString()),
    ]
    if answer.retry_after is not None and answer.code in PUSHBACK_CODES:
        metadata.append((PUSHBACK_KEY, str(max(1, math.ceil(answer.retry_after * 1000)))))
    with contextlib.suppress(grpc.aio.AbortError):
        await context.abort(answer.code, answer.status.message, tuple(metadata))


def _invalid_fields(status: status_pb2.Status) -> tuple[str, ...]:
    fields: dict[str, None] = {}
    for packed in status.details:
        if packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            packed.Unpack(bad_request)
            fields.update((v.field, None) for v in bad_request.field_violations if v.field)
    return tuple(fields)


def _cut(text: str, max_bytes: int) -> str:
    """`text` if its UTF-8 form fits in `max_bytes`, else its longest prefix that does with
    "…" (never a broken character)."""
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max_bytes - len("…".encode())].decode(errors="ignore") + "…"


def _duration(seconds: float) -> duration_pb2.Duration:
    whole = math.floor(seconds)
    return duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def _status(code: grpc.StatusCode, message: str, details: Sequence[Message]) -> status_pb2.Status:
    status = status_pb2.Status(code=code.value[0], message=message)
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return status
