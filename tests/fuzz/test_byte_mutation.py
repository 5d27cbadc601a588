"""Byte-level mutation of valid encoded RequestPayment and GetPayment messages, sent with
identity serializers over a real channel to the real in-process server.

Each mutated body gets exactly the answer its bytes call for: INVALID_ARGUMENT with the fixed
"not a valid ..." message when it does not parse, else the answer of the message it decodes to
(fuzzing/oracle.py). Never UNKNOWN or INTERNAL, nothing stored by a refused body, and a valid
call right after each case still succeeds. The mutations themselves are checked below."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError

from fuzzing.harness import Harness
from fuzzing.properties import REQUEST_BASES, get_bytes, request_bytes
from fuzzing.wire import (
    INVALID_UTF8,
    KINDS,
    Kind,
    Mutation,
    encode_varint,
    mutate,
    read_varint,
    top_level_fields,
)
from payments_service.gen.payments.v1 import payments_pb2 as pb
from tests.fuzz.conftest import budget

TYPICAL = REQUEST_BASES[1]
WIRE = TYPICAL.SerializeToString()


def test_mutated_request_payment_bytes_are_answered_as_they_decode() -> None:
    with Harness() as harness:
        budget(150)(request_bytes(harness))()
        harness.assert_no_error_logs()
    outcomes = {outcome for (source, outcome) in harness.outcomes if source == "bytes"}
    assert {"undecodable", "rejected", "created"} <= outcomes
    assert harness.histogram["probe", "RequestPayment", "OK"] == 151  # one per case, one at start


def test_mutated_get_payment_bytes_are_answered_as_they_decode() -> None:
    with Harness() as harness:
        budget(100)(get_bytes(harness))()
        harness.assert_no_error_logs()
    codes = {code for (source, rpc, code) in harness.histogram if source == "bytes"}
    assert {"INVALID_ARGUMENT", "NOT_FOUND"} <= codes  # most edits break the id or the body


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**63 - 1, -1, -(2**63)])
def test_varints_round_trip(value: int) -> None:
    encoded = encode_varint(value)
    assert read_varint(encoded, 0) == (value % 2**64, len(encoded))
    assert len(encoded) <= 10


def test_a_truncated_varint_is_malformed() -> None:
    with pytest.raises(ValueError, match="malformed"):
        read_varint(b"\x80\x80", 0)


def test_fields_are_found_up_to_the_first_malformed_one() -> None:
    numbers = [field.number for field in top_level_fields(WIRE)]
    assert numbers == [1, 2, 3, 4, 5, 5]
    assert [field.number for field in top_level_fields(WIRE[:-3])] == [1, 2, 3, 4, 5]


def parses_as(body: bytes) -> pb.RequestPaymentRequest | None:
    try:
        return pb.RequestPaymentRequest.FromString(body)
    except DecodeError:
        return None


@pytest.mark.parametrize(
    ("mutation", "same_message"),
    [
        pytest.param(Mutation("duplicate_field", at=1), True, id="duplicate-currency"),
        pytest.param(Mutation("swap_fields", at=0), True, id="swap-amount-currency"),
        pytest.param(
            Mutation("append_field", number=15 << 3, data=b"\xff" * 10), True, id="varint"
        ),
        pytest.param(Mutation("drop_field", at=1), False, id="drop-currency"),
    ],
)
def test_wire_level_edits_keep_a_message_that_parses(
    mutation: Mutation, same_message: bool
) -> None:
    decoded = parses_as(mutate(WIRE, [mutation]))
    assert decoded is not None
    assert (decoded.ListFields() == TYPICAL.ListFields()) is same_message


@pytest.mark.parametrize("index", range(len(INVALID_UTF8)))
@pytest.mark.parametrize("at", [1, 2, 3, 4, 5])  # currency, order_id, key, both map sides
def test_invalid_utf8_in_any_string_does_not_parse(index: int, at: int) -> None:
    assert parses_as(mutate(WIRE, [Mutation("invalid_utf8", at=at, number=index)])) is None


@pytest.mark.parametrize(
    "mutation",
    [
        pytest.param(Mutation("huge_length", number=n), id=f"length-{n}")
        for n in range(len(INVALID_UTF8))
    ]
    + [pytest.param(Mutation("truncate", at=len(WIRE) - 1), id="truncate")],
)
def test_broken_lengths_do_not_parse(mutation: Mutation) -> None:
    assert parses_as(mutate(WIRE, [mutation])) is None


# What each kind makes of the empty body (the encoding of a message with every field at its
# default) given at=3, data=b"x", number=9: an edit of a byte or of a field has nothing to edit
# and keeps it empty (no position modulo zero); the kinds that add bytes add them.
EMPTY_BODY_MUTATED: dict[Kind, bytes] = {
    "flip_bit": b"",
    "set_byte": b"",
    "insert": b"x",
    "delete": b"",
    "truncate": b"",
    "duplicate_field": b"",
    "drop_field": b"",
    "swap_fields": b"",
    # field (9 >> 3) % 20 + 1 = 2 with wire type 9 & 7 = FIXED64: tag 0x11, then "x" in 8 bytes
    "append_field": b"\x11x\x00\x00\x00\x00\x00\x00\x00",
    # a string field 1 + 3 % 5 = 4 (tag 0x22), length 3, INVALID_UTF8[9 % 7] (a UTF-16 surrogate)
    "invalid_utf8": b"\x22\x03\xed\xa0\x80",
    "huge_length": b"",
    "wire_type": b"",
}


def test_the_empty_body_table_covers_every_kind() -> None:
    assert set(EMPTY_BODY_MUTATED) == set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_every_mutation_applies_to_an_empty_body(kind: Kind) -> None:
    assert mutate(b"", [Mutation(kind, at=3, data=b"x", number=9)]) == EMPTY_BODY_MUTATED[kind]


def test_invalid_utf8_added_to_an_empty_body_does_not_parse() -> None:
    assert parses_as(b"") == pb.RequestPaymentRequest()
    assert parses_as(EMPTY_BODY_MUTATED["invalid_utf8"]) is None
