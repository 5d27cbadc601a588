"""Request validation rules. Every rule runs; the error lists every violation, not the first."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from payments_service.domain.currencies import ACTIVE_CURRENCIES
from payments_service.domain.errors import FieldViolation, ValidationError
from payments_service.domain.model import PaymentRequest

MIN_AMOUNT_MINOR = 1
MAX_AMOUNT_MINOR = 99_999_999_999
MAX_ORDER_ID_LENGTH = 128
MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_METADATA_ENTRIES = 20
MAX_METADATA_KEY_LENGTH = 40
MAX_METADATA_VALUE_LENGTH = 500
SIMULATE_KEY = "simulate"
SIMULATE_VALUES = frozenset({"decline", "slow"})

_CURRENCY_SHAPE = re.compile(r"[A-Z]{3}")
# Printable ASCII without space: '!' (0x21) .. '~' (0x7e).
_IDEMPOTENCY_KEY_SHAPE = re.compile(r"[\x21-\x7e]+")
PAYMENT_ID_SHAPE = re.compile(r"pay_[0-9a-f]{32}")


def validate_payment_request(
    *,
    merchant_id: str,
    amount_minor: int,
    currency: str,
    order_id: str,
    idempotency_key: str,
    metadata: Mapping[str, str],
    simulation: bool = True,
) -> PaymentRequest:
    """Return the request as a domain value, or raise ValidationError naming every bad field.

    `merchant_id` is the authenticated caller (not a message field, so not validated here); the
    request carries it so every store operation is scoped by it.

    With `simulation` off the `simulate` metadata key is refused: it is a test hook, and a
    production caller must not be able to force an outcome.
    """
    violations: list[FieldViolation] = []
    if not MIN_AMOUNT_MINOR <= amount_minor <= MAX_AMOUNT_MINOR:
        violations.append(
            FieldViolation(
                "amount_minor",
                f"must be between {MIN_AMOUNT_MINOR} and {MAX_AMOUNT_MINOR} minor units, "
                f"got {amount_minor}",
            )
        )
    violations.extend(_currency_violations(currency))
    violations.extend(_order_id_violations(order_id))
    violations.extend(_idempotency_key_violations(idempotency_key))
    violations.extend(_metadata_violations(metadata, simulation=simulation))
    if violations:
        raise ValidationError(violations)
    return PaymentRequest(
        amount_minor=amount_minor,
        currency=currency,
        order_id=order_id,
        idempotency_key=idempotency_key,
        metadata=MappingProxyType(dict(metadata)),
        merchant_id=merchant_id,
    )


def validate_payment_id(payment_id: str) -> str:
    if not payment_id:
        raise ValidationError([FieldViolation("payment_id", "is required")])
    if PAYMENT_ID_SHAPE.fullmatch(payment_id) is None:
        raise ValidationError(
            [FieldViolation("payment_id", "must be pay_ followed by 32 lowercase hex digits")]
        )
    return payment_id


def _currency_violations(currency: str) -> list[FieldViolation]:
    if not currency:
        return [FieldViolation("currency", "is required (an ISO 4217 code such as USD)")]
    if _CURRENCY_SHAPE.fullmatch(currency) is None:
        return [FieldViolation("currency", "must be exactly three uppercase letters, e.g. USD")]
    if currency not in ACTIVE_CURRENCIES:
        return [FieldViolation("currency", f"{currency} is not an active ISO 4217 currency code")]
    return []


def _order_id_violations(order_id: str) -> list[FieldViolation]:
    if not order_id:
        return [FieldViolation("order_id", "is required")]
    if len(order_id) > MAX_ORDER_ID_LENGTH:
        return [FieldViolation("order_id", f"must be at most {MAX_ORDER_ID_LENGTH} characters")]
    if not order_id.isprintable():
        return [FieldViolation("order_id", "must contain printable characters only")]
    return []


def _idempotency_key_violations(key: str) -> list[FieldViolation]:
    if not key:
        return [FieldViolation("idempotency_key", "is required")]
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        return [
            FieldViolation(
                "idempotency_key", f"must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters"
            )
        ]
    if _IDEMPOTENCY_KEY_SHAPE.fullmatch(key) is None:
        return [
            FieldViolation(
                "idempotency_key", "must be printable ASCII characters without whitespace"
            )
        ]
    return []


def _metadata_violations(metadata: Mapping[str, str], *, simulation: bool) -> list[FieldViolation]:
    violations: list[FieldViolation] = []
    if len(metadata) > MAX_METADATA_ENTRIES:
        violations.append(
            FieldViolation("metadata", f"must have at most {MAX_METADATA_ENTRIES} entries")
        )
    # Keys are echoed (truncated) to say which entry is wrong; values never are: they may hold
    # anything a client put there, so they stay out of error messages and logs.
    for key in sorted(metadata):
        value = metadata[key]
        shown = key[:MAX_METADATA_KEY_LENGTH]
        if not 1 <= len(key) <= MAX_METADATA_KEY_LENGTH:
            violations.append(
                FieldViolation(
                    "metadata", f"keys must be 1 to {MAX_METADATA_KEY_LENGTH} characters"
                )
            )
        if len(value) > MAX_METADATA_VALUE_LENGTH:
            violations.append(
                FieldViolation(
                    "metadata",
                    f"value of {shown!r} must be at most {MAX_METADATA_VALUE_LENGTH} characters",
                )
            )
        if key == SIMULATE_KEY and not simulation:
            violations.append(
                FieldViolation(
                    "metadata",
                    f"{SIMULATE_KEY!r} is a test hook and is switched off on this server",
                )
            )
        elif key == SIMULATE_KEY and value not in SIMULATE_VALUES:
            violations.append(
                FieldViolation(
                    "metadata",
                    f"{SIMULATE_KEY!r} is reserved and only takes "
                    f"{' or '.join(sorted(SIMULATE_VALUES))}",
                )
            )
    return violations
