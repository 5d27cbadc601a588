"""The error table: every failure it knows gets its code, message, level and typed details;
anything else is INTERNAL with a generic message."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from payments_service.domain.errors import (
    FieldViolation,
    IdempotencyKeyReusedError,
    PaymentNotFoundError,
    PaymentsError,
    RateLimitedError,
    ResponsePendingError,
    StoreFullError,
    StoreNotReadyError,
    StoreReadOnlyError,
    StoreUnavailableError,
    ValidationError,
)
from payments_service.security.authenticator import (
    UNAUTHENTICATED_MESSAGE,
    AuthThrottledError,
    UnauthenticatedError,
)
from payments_service.transport.error_table import (
    ERROR_TABLE,
    INTERNAL_MESSAGE,
    MAX_BAD_REQUEST_BYTES,
    MAX_DESCRIPTION_BYTES,
    MAX_MESSAGE_BYTES,
    answer_for,
    rule_for_reason,
)
from payments_service.transport.errors import (
    ServerOverloadedError,
    ServerShuttingDownError,
    UndecodableRequestError,
)


@dataclass(frozen=True)
class Expected:
    code: grpc.StatusCode
    level: str
    reason: str | None = None
    retry_seconds: float | None = None
    message: str | None = None


CASES: list[tuple[Exception, Expected]] = [
    (
        ValidationError(
            [FieldViolation("amount_minor", "too small"), FieldViolation("currency", "bad")]
        ),
        Expected(
            grpc.StatusCode.INVALID_ARGUMENT,
            "info",
            message="amount_minor: too small; currency: bad",
        ),
    ),
    (
        UndecodableRequestError("payments.v1.RequestPaymentRequest"),
        Expected(
            grpc.StatusCode.INVALID_ARGUMENT,
            "info",
            message="request body is not a valid payments.v1.RequestPaymentRequest",
        ),
    ),
    (
        UnauthenticatedError("unknown"),
        Expected(grpc.StatusCode.UNAUTHENTICATED, "info", message=UNAUTHENTICATED_MESSAGE),
    ),
    (PaymentNotFoundError("pay_1"), Expected(grpc.StatusCode.NOT_FOUND, "info")),
    (
        IdempotencyKeyReusedError("key-1", "pay_1"),
        Expected(grpc.StatusCode.ALREADY_EXISTS, "info", "IDEMPOTENCY_KEY_REUSED"),
    ),
    (
        ResponsePendingError("key-1"),
        Expected(grpc.StatusCode.ABORTED, "info", "REQUEST_IN_PROGRESS", 1.0),
    ),
    (
        RateLimitedError("order", "10 new payments per order per 60 s", 12.5),
        Expected(grpc.StatusCode.RESOURCE_EXHAUSTED, "info", "RATE_LIMITED", 12.5),
    ),
    (
        AuthThrottledError(),  # an unauthenticated call, its access lines sampled
        Expected(grpc.StatusCode.UNAUTHENTICATED, "info", message=UNAUTHENTICATED_MESSAGE),
    ),
    (
        ServerOverloadedError(4),
        Expected(grpc.StatusCode.RESOURCE_EXHAUSTED, "warning", "OVERLOADED", 1.0),
    ),
    (
        StoreFullError(40.25),
        Expected(grpc.StatusCode.RESOURCE_EXHAUSTED, "warning", "STORE_FULL", 40.25),
    ),
    (
        StoreFullError(),  # a full disk: nobody knows when there will be room
        Expected(grpc.StatusCode.RESOURCE_EXHAUSTED, "warning", "STORE_FULL", 1.0),
    ),
    (
        StoreUnavailableError(),
        Expected(grpc.StatusCode.UNAVAILABLE, "warning", "STORE_UNAVAILABLE", 1.0),
    ),
    (
        StoreNotReadyError(),  # a kind of unavailability: its parent's row, its own message
        Expected(
            grpc.StatusCode.UNAVAILABLE,
            "warning",
            "STORE_UNAVAILABLE",
            1.0,
            "the payment store is not ready yet; retry shortly",
        ),
    ),
    (
        StoreReadOnlyError(),
        Expected(grpc.StatusCode.UNAVAILABLE, "error", "STORE_READ_ONLY", 1.0),
    ),
    (
        ServerShuttingDownError(),
        Expected(grpc.StatusCode.UNAVAILABLE, "warning", "SHUTTING_DOWN", 1.0),
    ),
]


def detail(status: status_pb2.Status, kind: type[Message]) -> Message | None:
    for packed in status.details:
        found = kind()
        if packed.Unpack(found):
            return found
    return None


@pytest.mark.parametrize(("error", "expected"), CASES, ids=lambda c: type(c).__name__)
def test_each_failure_is_answered_by_its_row(error: Exception, expected: Expected) -> None:
    answer = answer_for(error)
    assert (answer.code, answer.log_level, answer.unexpected) == (
        expected.code,
        expected.level,
        False,
    )
    assert answer.error_kind == (expected.reason or type(error).__name__)
    assert answer.status.code == expected.code.value[0]
    assert answer.status.message == (expected.message or str(error))
    info = detail(answer.status, error_details_pb2.ErrorInfo)
    if expected.reason is None:
        assert info is None
    else:
        assert isinstance(info, error_details_pb2.ErrorInfo)
        assert (info.reason, info.domain) == (expected.reason, "payments.v1")
    retry = detail(answer.status, error_details_pb2.RetryInfo)
    if expected.retry_seconds is None:
        assert retry is None
    else:
        assert isinstance(retry, error_details_pb2.RetryInfo)
        assert retry.retry_delay.ToTimedelta().total_seconds() == expected.retry_seconds


def test_every_row_of_the_table_is_pinned_above() -> None:
    pinned = {type(error) for error, _ in CASES}
    assert set(ERROR_TABLE) <= pinned


def test_a_bad_request_lists_every_violation_and_names_the_invalid_fields() -> None:
    answer = answer_for(
        ValidationError(
            [
                FieldViolation("amount_minor", "too small"),
                FieldViolation("currency", "bad"),
                FieldViolation("currency", "worse"),
            ]
        )
    )
    bad_request = detail(answer.status, error_details_pb2.BadRequest)
    assert isinstance(bad_request, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("amount_minor", "too small"),
        ("currency", "bad"),
        ("currency", "worse"),
    ]
    assert answer.invalid_fields == ("amount_minor", "currency")


def test_key_reuse_names_the_key_and_not_found_names_the_resource() -> None:
    reused = detail(
        answer_for(IdempotencyKeyReusedError("key-1", "pay_1")).status,
        error_details_pb2.ErrorInfo,
    )
    assert isinstance(reused, error_details_pb2.ErrorInfo)
    assert dict(reused.metadata) == {"idempotency_key": "key-1"}
    not_found = answer_for(PaymentNotFoundError("pay_1"))
    missing = detail(not_found.status, error_details_pb2.ResourceInfo)
    assert isinstance(missing, error_details_pb2.ResourceInfo)
    assert (missing.resource_type, missing.resource_name) == ("payments.v1.Payment", "pay_1")


class _UnmappedError(PaymentsError):
    pass


@pytest.mark.parametrize(
    "error",
    [RuntimeError("a bug with a secret"), _UnmappedError("details that must not leak")],
    ids=["unexpected", "unmapped-domain-error"],
)
def test_anything_the_table_does_not_know_is_internal_with_a_generic_message(
    error: Exception,
) -> None:
    answer = answer_for(error)
    assert (answer.code, answer.log_level, answer.unexpected) == (
        grpc.StatusCode.INTERNAL,
        "error",
        True,
    )
    assert answer.status.message == INTERNAL_MESSAGE
    assert not answer.status.details
    assert answer.error_kind == f"{type(error).__module__}.{type(error).__qualname__}".removeprefix(
        "builtins."
    )


def test_a_bad_request_lists_what_fits_and_says_how_many_more() -> None:
    violations = [FieldViolation("metadata", f"entry {n} is wrong " + "x" * 60) for n in range(500)]
    answer = answer_for(ValidationError(violations))
    bad_request = detail(answer.status, error_details_pb2.BadRequest)
    assert isinstance(bad_request, error_details_pb2.BadRequest)
    listed = bad_request.field_violations
    assert bad_request.ByteSize() <= MAX_BAD_REQUEST_BYTES + 64
    assert (listed[-1].field, listed[-1].description) == (
        "",
        f"and {500 - (len(listed) - 1)} more violations",
    )
    assert [v.description for v in listed[:-1]] == [v.description for v in violations[:-1]][
        : len(listed) - 1
    ]
    message = answer.status.message
    assert len(message.encode()) <= MAX_MESSAGE_BYTES
    shown = message.count("; ")
    assert message.endswith(f"; and {500 - shown} more")
    assert message.startswith("metadata: entry 0 is wrong")


@pytest.mark.parametrize("text", ["é" * 400, "界" * 400, "a" * 1000])
def test_a_long_description_or_message_is_cut_without_breaking_a_character(text: str) -> None:
    answer = answer_for(ValidationError([FieldViolation("order_id", text)]))
    bad_request = detail(answer.status, error_details_pb2.BadRequest)
    assert isinstance(bad_request, error_details_pb2.BadRequest)
    (only,) = bad_request.field_violations
    assert len(only.description.encode()) <= MAX_DESCRIPTION_BYTES
    assert only.description.endswith("…")
    assert text.startswith(only.description.removesuffix("…"))
    message = answer.status.message
    assert len(message.encode()) <= MAX_MESSAGE_BYTES
    assert message.startswith("order_id: ")
    assert message.endswith("…")


def test_a_row_is_found_by_its_reason_and_an_unknown_reason_is_an_error() -> None:
    assert rule_for_reason("OVERLOADED") is ERROR_TABLE[ServerOverloadedError]
    with pytest.raises(KeyError):
        rule_for_reason("NO_SUCH_REASON")
