"""Hypothesis strategies: field values on both sides of every limit, and byte mutations.

Each field mixes values that are valid, values just past a limit, and arbitrary ones, so a
drawn request is often valid (and must succeed), often invalid in one field (and must name just
that field), and sometimes invalid everywhere.
"""

from __future__ import annotations

import hashlib
import string
from typing import Any

from hypothesis import strategies as st

from fuzzing.oracle import INT64_MAX, INT64_MIN
from fuzzing.wire import INVALID_UTF8, KINDS, Mutation
from payments_service.domain import validation as limits
from payments_service.domain.currencies import ACTIVE_CURRENCIES
from payments_service.gen.payments.v1 import payments_pb2 as pb

AMOUNT_EDGES = (
    0,
    1,
    -1,
    limits.MAX_AMOUNT_MINOR,
    limits.MAX_AMOUNT_MINOR + 1,
    INT64_MIN,
    INT64_MAX,
)
ODD_CURRENCIES = ("", "usd", "Eur", "EURO", "EU", "XTS", "XXX", "HRK", "ÉUR", "EUR ", " EUR", "€")

# Python's str.isprintable() holds for letters, marks, numbers, punctuation, symbols and space.
printable = st.one_of(st.characters(categories=["L", "M", "N", "P", "S"]), st.just(" "))
key_characters = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
any_character = st.characters(codec="utf-8")  # anything a protobuf string can hold


def _around(limit: int, alphabet: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Strings of `alphabet` at the limit and just past it."""
    return st.text(alphabet, min_size=limit, max_size=limit + 2)


# Each field: a strategy of valid values, and one of values that are mostly not.
valid_amounts = st.integers(limits.MIN_AMOUNT_MINOR, limits.MAX_AMOUNT_MINOR)
other_amounts = st.one_of(st.sampled_from(AMOUNT_EDGES), st.integers(INT64_MIN, INT64_MAX))
valid_currencies = st.sampled_from(sorted(ACTIVE_CURRENCIES))
other_currencies = st.one_of(
    st.text(string.ascii_uppercase, min_size=3, max_size=3),  # the shape, often not a code
    st.sampled_from(ODD_CURRENCIES),
    st.text(max_size=5),
)
valid_order_ids = st.text(printable, min_size=1, max_size=limits.MAX_ORDER_ID_LENGTH)
other_order_ids = st.one_of(
    _around(limits.MAX_ORDER_ID_LENGTH, printable),
    st.text(max_size=20),  # control characters, separators, anything
)
valid_keys = st.text(key_characters, min_size=1, max_size=24)  # short: they repeat
other_keys = st.one_of(
    _around(limits.MAX_IDEMPOTENCY_KEY_LENGTH, key_characters),
    st.text(max_size=20),  # spaces, non-ASCII, empty
)
plain_metadata = st.dictionaries(
    st.text(min_size=1, max_size=limits.MAX_METADATA_KEY_LENGTH).filter(
        lambda key: key != limits.SIMULATE_KEY
    ),
    st.text(max_size=30),
    max_size=3,
)
simulations = st.sampled_from(sorted(limits.SIMULATE_VALUES)).map(
    lambda value: {limits.SIMULATE_KEY: value}
)
# Mostly plain: a `slow` payment costs the processor deadline.
valid_metadata = st.one_of(plain_metadata, plain_metadata, plain_metadata, simulations)
metadata_keys = st.one_of(
    st.text(min_size=1, max_size=limits.MAX_METADATA_KEY_LENGTH),
    st.sampled_from(["", limits.SIMULATE_KEY]),
    _around(limits.MAX_METADATA_KEY_LENGTH, any_character),
)
metadata_values = st.one_of(
    st.text(max_size=30),
    st.sampled_from([*sorted(limits.SIMULATE_VALUES), "", "DECLINE", "fast"]),
    _around(limits.MAX_METADATA_VALUE_LENGTH, any_character),
)
other_metadata = st.one_of(
    st.dictionaries(metadata_keys, metadata_values, max_size=4),
    st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.text(max_size=8),
        min_size=limits.MAX_METADATA_ENTRIES - 1,
        max_size=limits.MAX_METADATA_ENTRIES + 2,
    ),
)
FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "amount_minor": (valid_amounts, other_amounts),
    "currency": (valid_currencies, other_currencies),
    "order_id": (valid_order_ids, other_order_ids),
    "idempotency_key": (valid_keys, other_keys),
    "metadata": (valid_metadata, other_metadata),
}


DERIVED = object()  # marks a key to derive from the payload once every field is drawn


@st.composite
def payment_requests(draw: st.DrawFn) -> pb.RequestPaymentRequest:
    """A third all valid, a third with one field drawn from its other values, a third with
    each field drawn from either: valid requests, single violations and pile-ups alike.

    A valid key is mostly derived from the payload, so a new payload gets a new key (and is
    created) while a repeated one replays; the other valid keys are short drawn strings, which
    hypothesis repeats across payloads, so conflicts happen too."""
    shape = draw(st.sampled_from(["valid", "one", "mixed"]))
    odd_one = draw(st.sampled_from(sorted(FIELDS)))
    fields: dict[str, Any] = {}
    for name, (valid, other) in FIELDS.items():
        if shape == "valid":
            use_other = False
        elif shape == "one":
            use_other = name == odd_one
        else:
            use_other = draw(st.booleans())
        fields[name] = draw(other if use_other else valid)
        if name == "idempotency_key" and not use_other and draw(st.integers(0, 3)):
            fields[name] = DERIVED
    if fields["idempotency_key"] is DERIVED:
        payload = repr(sorted((k, v) for k, v in fields.items() if k != "idempotency_key"))
        fields["idempotency_key"] = "key-" + hashlib.sha256(payload.encode()).hexdigest()[:32]
    return pb.RequestPaymentRequest(**fields)


def payment_ids(known: list[str]) -> st.SearchStrategy[str]:
    """Ids of payments that exist (from `known`, filled while the test runs), well-formed ids
    nobody issued, and malformed ones."""
    hex_digits = st.text("0123456789abcdef", min_size=32, max_size=32)
    return st.one_of(
        st.integers(min_value=0).map(lambda i: known[i % len(known)] if known else ""),
        hex_digits.map("pay_".__add__),
        st.text("0123456789abcdefABCDEF", min_size=30, max_size=34).map("pay_".__add__),
        st.sampled_from(["", "pay_", "PAY_" + "0" * 32, "pay_" + "0" * 31 + "1\n"]),
        st.text(max_size=40),
    )


mutations = st.builds(
    Mutation,
    kind=st.sampled_from(KINDS),
    at=st.integers(min_value=0, max_value=2**16),
    data=st.one_of(st.binary(max_size=16), st.sampled_from(INVALID_UTF8)),
    number=st.integers(min_value=0, max_value=255),
)
mutation_lists = st.lists(mutations, min_size=1, max_size=4)
