"""Byte-level mutation of encoded protobuf messages.

A mutation is data (a kind, a position hint, some bytes and a number), so hypothesis can draw,
shrink and print it. Positions are taken modulo the message's length, so any mutation applies
to any message. The field-aware kinds parse the top-level fields of the wire format and stop at
the first malformed one, so they still apply after an earlier mutation broke the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Kind = Literal[
    "flip_bit",
    "set_byte",
    "insert",
    "delete",
    "truncate",
    "duplicate_field",
    "drop_field",
    "swap_fields",
    "append_field",
    "invalid_utf8",
    "huge_length",
    "wire_type",
]
KINDS: tuple[Kind, ...] = get_args(Kind)

VARINT, FIXED64, LENGTH_DELIMITED, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5
MAP_FIELD = 5  # RequestPaymentRequest.metadata: entries are messages {1: key, 2: value}
# Byte sequences that are not UTF-8: a lone 0xff, a bad continuation, a UTF-16 surrogate, an
# overlong '/', a code point past U+10FFFF, a stray continuation byte, a truncated sequence.
INVALID_UTF8 = (
    b"\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"\xf4\x90\x80\x80",
    b"abc\x80",
    b"\xe2\x82",
)
HUGE_LENGTHS = (2**31, 2**32 + 1, 2**63, 2**64 - 1, 65_536, 1_000_000)


@dataclass(frozen=True, slots=True)
class Mutation:
    kind: Kind
    at: int = 0  # a position hint, taken modulo the length
    data: bytes = b""
    number: int = 0  # a byte value, a count, a field number and wire type, or a table index


@dataclass(frozen=True, slots=True)
class Field:
    """One top-level field: tag at [start, tag_end), then (for LENGTH_DELIMITED) the length up
    to `payload_start`, then the payload up to `end`."""

    start: int
    tag_end: int
    payload_start: int
    end: int
    number: int
    wire_type: int


def encode_varint(value: int) -> bytes:
    value &= 2**64 - 1  # negative int64 values are sent as their two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data: bytes, position: int) -> tuple[int, int]:
    """(value, next position); ValueError when the varint is truncated or longer than 10 bytes."""
    value = shift = 0
    for index in range(position, min(len(data), position + 10)):
        value |= (data[index] & 0x7F) << shift
        shift += 7
        if data[index] < 0x80:
            return value, index + 1
    raise ValueError("malformed varint")


def top_level_fields(data: bytes) -> list[Field]:
    """The well-formed top-level fields of `data`, up to the first malformed one."""
    fields: list[Field] = []
    position = 0
    while position < len(data):
        try:
            tag, tag_end = read_varint(data, position)
            wire_type, number = tag & 7, tag >> 3
            if wire_type == VARINT:
                _, end = read_varint(data, tag_end)
                payload_start = tag_end
            elif wire_type == LENGTH_DELIMITED:
                length, payload_start = read_varint(data, tag_end)
                end = payload_start + length
            elif wire_type in (FIXED64, FIXED32):
                payload_start = tag_end
                end = tag_end + (8 if wire_type == FIXED64 else 4)
            else:  # groups and the undefined wire types 6 and 7
                return fields
        except ValueError:
            return fields
        if number == 0 or end > len(data):
            return fields
        fields.append(Field(position, tag_end, payload_start, end, number, wire_type))
        position = end
    return fields


def mutate(data: bytes, mutations: tuple[Mutation, ...] | list[Mutation]) -> bytes:
    for mutation in mutations:
        data = apply(data, mutation)
    return data


def apply(data: bytes, mutation: Mutation) -> bytes:  # noqa: PLR0911 - one return per kind
    kind, at, number = mutation.kind, mutation.at, mutation.number
    if kind == "insert":
        position = at % (len(data) + 1)
        return data[:position] + mutation.data + data[position:]
    if kind == "append_field":
        return data + _field_bytes(number, mutation.data)
    if kind == "invalid_utf8":  # appends a string field to a message that has none
        return _invalid_utf8(data, top_level_fields(data), at, number)
    if not data:
        return data
    if kind == "flip_bit":
        bit = at % (len(data) * 8)
        flipped = data[bit // 8] ^ (1 << (bit % 8))
        return data[: bit // 8] + bytes([flipped]) + data[bit // 8 + 1 :]
    if kind == "set_byte":
        position = at % len(data)
        return data[:position] + bytes([number & 0xFF]) + data[position + 1 :]
    if kind == "delete":
        position = at % len(data)
        return data[:position] + data[position + 1 + number % 8 :]
    if kind == "truncate":
        return data[: at % len(data)]
    return _apply_to_field(data, mutation)


def _apply_to_field(data: bytes, mutation: Mutation) -> bytes:  # noqa: PLR0911
    kind, at, number = mutation.kind, mutation.at, mutation.number
    fields = top_level_fields(data)
    if not fields:
        return data
    chosen = fields[at % len(fields)]
    whole = data[chosen.start : chosen.end]
    if kind == "duplicate_field":  # proto3: the last value of a scalar wins, maps merge
        return data[: chosen.end] + whole + data[chosen.end :]
    if kind == "drop_field":
        return data[: chosen.start] + data[chosen.end :]
    if kind == "swap_fields":  # field order carries no meaning on the wire
        following = fields[(at + 1) % len(fields)]
        if following.start <= chosen.start:
            return data
        return (
            data[: chosen.start]
            + data[following.start : following.end]
            + data[chosen.end : following.start]
            + whole
            + data[following.end :]
        )
    if kind == "huge_length":
        delimited = [f for f in fields if f.wire_type == LENGTH_DELIMITED]
        if not delimited:
            return data
        target = delimited[at % len(delimited)]
        length = encode_varint(HUGE_LENGTHS[number % len(HUGE_LENGTHS)])
        return data[: target.tag_end] + length + data[target.payload_start :]
    # wire_type: the same field number announced with another wire type
    tag = encode_varint(chosen.number << 3 | (number % 8))
    return data[: chosen.start] + tag + data[chosen.tag_end :]


def _invalid_utf8(data: bytes, fields: list[Field], at: int, number: int) -> bytes:
    """Replace a string's bytes (or a map entry's key or value) with bytes that are not UTF-8;
    append such a string field when the message has none."""
    bad = INVALID_UTF8[number % len(INVALID_UTF8)]
    delimited = [f for f in fields if f.wire_type == LENGTH_DELIMITED]
    if not delimited:
        return data + _delimited(1 + at % 5, bad)
    target = delimited[at % len(delimited)]
    if target.number == MAP_FIELD:
        key, value = (bad, b"v") if at % 2 else (b"k", bad)
        payload = _delimited(1, key) + _delimited(2, value)
    else:
        payload = bad
    return data[: target.start] + _delimited(target.number, payload) + data[target.end :]


def _delimited(number: int, payload: bytes) -> bytes:
    return encode_varint(number << 3 | LENGTH_DELIMITED) + encode_varint(len(payload)) + payload


def _field_bytes(number: int, data: bytes) -> bytes:
    """A field built from `number` (its low 3 bits the wire type, the rest the field number,
    1..20) and `data` (the value): a random varint, fixed-size bytes, a string, or a bare tag
    for the group and undefined wire types."""
    wire_type, field_number = number & 7, (number >> 3) % 20 + 1
    tag = encode_varint(field_number << 3 | wire_type)
    if wire_type == VARINT:
        return tag + encode_varint(int.from_bytes(data[:10] or b"\x00", "little"))
    if wire_type == LENGTH_DELIMITED:
        return tag + encode_varint(len(data)) + data
    if wire_type in (FIXED64, FIXED32):
        size = 8 if wire_type == FIXED64 else 4
        return tag + data[:size].ljust(size, b"\x00")
    return tag
