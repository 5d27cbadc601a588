"""Error details stay within bounds: the largest request the server accepts, full of invalid
metadata, is answered INVALID_ARGUMENT at a default grpc client (whose metadata limit is 8 KiB),
with a BadRequest and a message that list what fits and say "and N more"."""

from __future__ import annotations

import base64
from collections.abc import Callable

import grpc
import pytest
from google.rpc import error_details_pb2

from payments_service.domain.validation import MAX_METADATA_KEY_LENGTH, MAX_METADATA_VALUE_LENGTH
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.transport.error_table import DETAILS_KEY
from tests.conftest import TEST_SETTINGS, Api, payment_request
from tests.integration.test_grpc_api import detail

CLIENT_METADATA_LIMIT = 8 * 1024  # grpc's default for what a client accepts


def percent_encoded(message: str) -> str:
    """`grpc-message` as it travels: printable ASCII but '%' as is, every other byte %XX."""
    return "".join(
        chr(byte) if 0x20 <= byte <= 0x7E and byte != ord("%") else f"%{byte:02X}"
        for byte in message.encode()
    )


def trailers_of(error: grpc.aio.AioRpcError) -> tuple[tuple[str, str | bytes], ...]:
    return tuple(error.trailing_metadata() or ())  # type: ignore[arg-type]


def trailer_bytes(error: grpc.aio.AioRpcError) -> int:
    """The size of the status trailers on the wire (HTTP/2 counts name + value + 32 each)."""
    size = len("grpc-status") + 2 + 32
    size += len("grpc-message") + len(percent_encoded(error.details() or "")) + 32
    for key, value in trailers_of(error):
        shown = base64.b64encode(value).decode() if isinstance(value, bytes) else str(value)
        size += len(key) + len(shown) + 32
    return size


def largest(entry: Callable[[int], tuple[str, str]]) -> pb.RequestPaymentRequest:
    """A RequestPayment with as many metadata entries `entry(i)` as PAYMENTS_MAX_REQUEST_BYTES
    accepts."""
    request = payment_request(idempotency_key="k")
    number = 0
    while True:
        key, value = entry(number)
        request.metadata[key] = value
        if request.ByteSize() > TEST_SETTINGS.max_request_bytes:
            del request.metadata[key]
            return request
        number += 1


SHAPES: dict[str, Callable[[int], tuple[str, str]]] = {
    # Many short violations: keys one character too long, empty values.
    "many": lambda i: (f"{i:0{MAX_METADATA_KEY_LENGTH + 1}d}", ""),
    # Long ones: keys echoed in the description, non-ASCII (three bytes each, nine when
    # percent-encoded), values too long.
    "long non-ASCII": lambda i: (
        f"{i:06d}" + "界" * (MAX_METADATA_KEY_LENGTH - 6),
        "v" * (MAX_METADATA_VALUE_LENGTH + 1),
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
async def test_the_largest_invalid_request_is_invalid_argument_at_a_default_client(
    api: Api, shape: str
) -> None:
    request = largest(SHAPES[shape])
    assert request.ByteSize() > TEST_SETTINGS.max_request_bytes - 1024  # really the largest
    violations = len(request.metadata) + 1  # one per entry, and "at most 20 entries"

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await api.stub.RequestPayment(request, timeout=10)
    error = refused.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert trailer_bytes(error) < CLIENT_METADATA_LIMIT
    assert DETAILS_KEY in {key for key, _ in trailers_of(error)}

    bad_request = detail(error, error_details_pb2.BadRequest)
    listed = bad_request.field_violations
    last = listed[-1]
    assert last.field == ""
    assert last.description == f"and {violations - (len(listed) - 1)} more violations"
    assert listed[0].field == "metadata"
    message = error.details() or ""
    assert message.startswith("metadata: ")
    shown = message.count("; ")  # the violations listed, then "and N more"
    assert message.endswith(f"; and {violations - shown} more")
