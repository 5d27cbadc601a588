"""Validation: both sides of every boundary, and every violation reported at once."""

from __future__ import annotations

from typing import Any

import pytest

from payments_service.domain.errors import ValidationError
from payments_service.domain.validation import validate_payment_id, validate_payment_request

VALID: dict[str, Any] = {
    "merchant_id": "default",
    "amount_minor": 1250,
    "currency": "EUR",
    "order_id": "order-42",
    "idempotency_key": "key-1",
    "metadata": {},
}


def violations_of(**overrides: Any) -> list[str]:
    """The fields named by the ValidationError for VALID with `overrides`, [] if it passes."""
    try:
        validate_payment_request(**{**VALID, **overrides})
    except ValidationError as error:
        return [v.field for v in error.violations]
    return []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # amount_minor: 1 ... 99_999_999_999
        ({"amount_minor": 0}, ["amount_minor"]),
        ({"amount_minor": -1}, ["amount_minor"]),
        ({"amount_minor": 1}, []),
        ({"amount_minor": 99_999_999_999}, []),
        ({"amount_minor": 100_000_000_000}, ["amount_minor"]),
        # currency: three uppercase letters AND an active ISO 4217 code
        ({"currency": ""}, ["currency"]),
        ({"currency": "usd"}, ["currency"]),
        ({"currency": "Usd"}, ["currency"]),
        ({"currency": "US"}, ["currency"]),
        ({"currency": "USDD"}, ["currency"]),
        ({"currency": "US1"}, ["currency"]),
        ({"currency": " USD"}, ["currency"]),
        ({"currency": "ABC"}, ["currency"]),
        ({"currency": "HRK"}, ["currency"]),
        ({"currency": "XXX"}, ["currency"]),
        ({"currency": "USD"}, []),
        ({"currency": "JPY"}, []),
        ({"currency": "ZWG"}, []),
        # order_id: 1 ... 128 printable characters
        ({"order_id": ""}, ["order_id"]),
        ({"order_id": "o"}, []),
        ({"order_id": "o" * 128}, []),
        ({"order_id": "o" * 129}, ["order_id"]),
        ({"order_id": "commande n° 7 — été"}, []),
        ({"order_id": "line\nbreak"}, ["order_id"]),
        ({"order_id": "nul\x00"}, ["order_id"]),
        # idempotency_key: 1 ... 255 printable ASCII, no whitespace
        ({"idempotency_key": ""}, ["idempotency_key"]),
        ({"idempotency_key": "k"}, []),
        ({"idempotency_key": "k" * 255}, []),
        ({"idempotency_key": "k" * 256}, ["idempotency_key"]),
        ({"idempotency_key": "has space"}, ["idempotency_key"]),
        ({"idempotency_key": "tab\there"}, ["idempotency_key"]),
        ({"idempotency_key": "clé"}, ["idempotency_key"]),
        ({"idempotency_key": "!~{}[]:/@"}, []),
        # metadata: <= 20 entries; keys 1 ... 40; values <= 500; simulate in {decline, slow}
        ({"metadata": {f"k{i}": "v" for i in range(20)}}, []),
        ({"metadata": {f"k{i}": "v" for i in range(21)}}, ["metadata"]),
        ({"metadata": {"k" * 40: "v"}}, []),
        ({"metadata": {"k" * 41: "v"}}, ["metadata"]),
        ({"metadata": {"": "v"}}, ["metadata"]),
        ({"metadata": {"note": "v" * 500}}, []),
        ({"metadata": {"note": "v" * 501}}, ["metadata"]),
        ({"metadata": {"simulate": "decline"}}, []),
        ({"metadata": {"simulate": "slow"}}, []),
        ({"metadata": {"simulate": "explode"}}, ["metadata"]),
        ({"metadata": {"simulate": ""}}, ["metadata"]),
    ],
)
def test_each_rule_accepts_its_boundary_and_rejects_one_past_it(
    overrides: dict[str, Any], expected: list[str]
) -> None:
    assert violations_of(**overrides) == expected


def test_every_violated_field_is_reported_not_only_the_first() -> None:
    fields = violations_of(
        amount_minor=0,
        currency="usd",
        order_id="",
        idempotency_key="",
        metadata={"simulate": "nope", "x" * 41: "y" * 501},
    )
    assert fields == [
        "amount_minor",
        "currency",
        "order_id",
        "idempotency_key",
        "metadata",
        "metadata",
        "metadata",
    ]


def test_violation_messages_never_echo_metadata_values() -> None:
    secret = "4111111111111111-secret"
    with pytest.raises(ValidationError) as caught:
        validate_payment_request(**{**VALID, "metadata": {"card": secret * 30}})
    assert secret not in str(caught.value)
    assert all(secret not in v.description for v in caught.value.violations)


def test_a_valid_request_becomes_an_immutable_domain_value() -> None:
    metadata = {"note": "hello"}
    request = validate_payment_request(**{**VALID, "metadata": metadata})
    metadata["note"] = "changed after validation"
    assert request.metadata == {"note": "hello"}
    with pytest.raises(TypeError):
        request.metadata["note"] = "x"  # type: ignore[index]


@pytest.mark.parametrize(
    ("payment_id", "valid"),
    [
        ("pay_" + "0" * 32, True),
        ("pay_" + "a1" * 16, True),
        ("", False),
        ("pay_" + "0" * 31, False),
        ("pay_" + "0" * 33, False),
        ("pay_" + "A" * 32, False),
        ("PAY_" + "0" * 32, False),
        ("0" * 32, False),
        ("pay_" + "g" * 32, False),
    ],
)
def test_payment_id_shape(payment_id: str, valid: bool) -> None:
    if valid:
        assert validate_payment_id(payment_id) == payment_id
    else:
        with pytest.raises(ValidationError) as caught:
            validate_payment_id(payment_id)
        assert [v.field for v in caught.value.violations] == ["payment_id"]


def test_fingerprint_ignores_key_and_map_order_but_not_payload() -> None:
    a = validate_payment_request(**{**VALID, "metadata": {"a": "1", "b": "2"}})
    b = validate_payment_request(
        **{**VALID, "idempotency_key": "other", "metadata": {"b": "2", "a": "1"}}
    )
    assert a.fingerprint() == b.fingerprint()
    for change in (
        {"amount_minor": 1251},
        {"currency": "USD"},
        {"order_id": "order-43"},
        {"metadata": {"a": "1", "b": "3"}},
        {"metadata": {"a": "1"}},
    ):
        other = validate_payment_request(**{**VALID, "metadata": {"a": "1", "b": "2"}, **change})
        assert other.fingerprint() != a.fingerprint(), change


@pytest.mark.parametrize("value", ["decline", "slow", "explode", ""])
def test_with_simulation_off_any_simulate_key_is_one_metadata_violation(value: str) -> None:
    with pytest.raises(ValidationError) as raised:
        validate_payment_request(**{**VALID, "metadata": {"simulate": value}}, simulation=False)
    assert [(v.field, v.description) for v in raised.value.violations] == [
        ("metadata", "'simulate' is a test hook and is switched off on this server")
    ]


def test_with_simulation_off_other_metadata_is_still_accepted() -> None:
    request = validate_payment_request(
        **{**VALID, "metadata": {"simulated": "x", "cart": "42"}}, simulation=False
    )
    assert dict(request.metadata) == {"simulated": "x", "cart": "42"}
