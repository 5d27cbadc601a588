"""The one error mapping: each domain error has its code, message and typed details."""

from __future__ import annotations

import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2

from payments_service.domain.errors import (
    FieldViolation,
    IdempotencyKeyReusedError,
    PaymentNotFoundError,
    PaymentsError,
    ResponsePendingError,
    StoreFullError,
    ValidationError,
)
from payments_service.transport.error_table import to_status as maybe_status


def to_status(error: Exception) -> status_pb2.Status:
    status = maybe_status(error)
    assert status is not None, f"{type(error).__name__} has no mapping"
    return status


def test_validation_error_lists_every_violation_in_a_bad_request() -> None:
    status = to_status(
        ValidationError(
            [FieldViolation("amount_minor", "too small"), FieldViolation("currency", "bad")]
        )
    )
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert status.message == "amount_minor: too small; currency: bad"
    detail = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(detail)
    assert [(v.field, v.description) for v in detail.field_violations] == [
        ("amount_minor", "too small"),
        ("currency", "bad"),
    ]


def test_key_reuse_is_already_exists_with_error_info() -> None:
    status = to_status(IdempotencyKeyReusedError("key-1", "pay_1"))
    assert status.code == code_pb2.ALREADY_EXISTS
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "IDEMPOTENCY_KEY_REUSED",
        "payments.v1",
        {"idempotency_key": "key-1"},
    )


def test_not_found_names_the_resource() -> None:
    status = to_status(PaymentNotFoundError("pay_1"))
    assert status.code == code_pb2.NOT_FOUND
    info = error_details_pb2.ResourceInfo()
    assert status.details[0].Unpack(info)
    assert (info.resource_type, info.resource_name) == ("payments.v1.Payment", "pay_1")


def test_in_progress_replay_is_aborted_so_clients_retry() -> None:
    status = to_status(ResponsePendingError("key-1"))
    assert status.code == code_pb2.ABORTED
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "REQUEST_IN_PROGRESS"


@pytest.mark.parametrize(("retry_after", "seconds"), [(1.0, 1), (40.2, 41), (300.0, 300)])
def test_a_full_store_is_resource_exhausted_with_retry_info(
    retry_after: float, seconds: int
) -> None:
    status = to_status(StoreFullError(retry_after))
    assert status.code == code_pb2.RESOURCE_EXHAUSTED
    assert "store is full" in status.message
    retry, info = error_details_pb2.RetryInfo(), error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(retry)
    assert (retry.retry_delay.seconds, retry.retry_delay.nanos) == (seconds, 0)
    assert status.details[1].Unpack(info)
    assert (info.reason, info.domain) == ("STORE_FULL", "payments.v1")


def test_an_unmapped_domain_error_has_no_status_of_its_own() -> None:
    """No mapping: `answer_error` then answers INTERNAL and logs it (tested end to end)."""

    class NewError(PaymentsError):
        pass

    assert maybe_status(NewError("details that must not leak")) is None
