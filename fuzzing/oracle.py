"""The expected answers, computed from the documented limits, not by calling the validator.

The limits (numbers, the currency list, the `simulate` values) are imported from the domain so a
change of a limit is followed here; the rules that combine them are written again, so a bug in
`domain/validation.py` makes the oracle and the server disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc

from payments_service.domain import validation as limits
from payments_service.domain.currencies import ACTIVE_CURRENCIES
from payments_service.gen.payments.v1 import payments_pb2 as pb

if TYPE_CHECKING:
    from collections.abc import Mapping

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
PAYMENT_ID = re.compile(r"pay_[0-9a-f]{32}")
KEY_CHARACTERS = range(0x21, 0x7F)  # printable ASCII without space

# A payload is everything but the key: two requests with one key replay exactly when it matches.
Payload = tuple[int, str, str, tuple[tuple[str, str], ...]]


def payload(request: pb.RequestPaymentRequest) -> Payload:
    return (
        request.amount_minor,
        request.currency,
        request.order_id,
        tuple(sorted(request.metadata.items())),
    )


def key_is_valid(key: str) -> bool:
    return 1 <= len(key) <= limits.MAX_IDEMPOTENCY_KEY_LENGTH and all(
        ord(c) in KEY_CHARACTERS for c in key
    )


def expected_violations(request: pb.RequestPaymentRequest, *, simulation: bool) -> list[str]:
    """The `field` of every BadRequest violation the server must report, in its order: one per
    scalar field, and one per broken metadata rule (too many entries; per entry: key length,
    value length, the `simulate` rule)."""
    fields: list[str] = []
    if not limits.MIN_AMOUNT_MINOR <= request.amount_minor <= limits.MAX_AMOUNT_MINOR:
        fields.append("amount_minor")
    if request.currency not in ACTIVE_CURRENCIES:
        fields.append("currency")
    order_id = request.order_id
    if not (1 <= len(order_id) <= limits.MAX_ORDER_ID_LENGTH and order_id.isprintable()):
        fields.append("order_id")
    if not key_is_valid(request.idempotency_key):
        fields.append("idempotency_key")
    fields.extend(["metadata"] * _metadata_violations(request.metadata, simulation=simulation))
    return fields


def _metadata_violations(metadata: Mapping[str, str], *, simulation: bool) -> int:
    count = int(len(metadata) > limits.MAX_METADATA_ENTRIES)
    for key, value in metadata.items():
        count += not 1 <= len(key) <= limits.MAX_METADATA_KEY_LENGTH
        count += len(value) > limits.MAX_METADATA_VALUE_LENGTH
        if key == limits.SIMULATE_KEY:
            count += not simulation or value not in limits.SIMULATE_VALUES
    return count


def final_status(request: pb.RequestPaymentRequest) -> pb.PaymentStatus.ValueType:
    """The simulated processor's verdict: `decline` fails, everything else succeeds."""
    if request.metadata.get(limits.SIMULATE_KEY) == "decline":
        return pb.PAYMENT_STATUS_FAILED
    return pb.PAYMENT_STATUS_SUCCEEDED


def first_statuses(request: pb.RequestPaymentRequest) -> frozenset[pb.PaymentStatus.ValueType]:
    """What the creating call may answer. `slow` outlives the processor deadline, so PENDING;
    the others answer at once, but a stalled event loop (a loaded machine) may also miss the
    deadline, and PENDING is then the right answer too."""
    if request.metadata.get(limits.SIMULATE_KEY) == "slow":
        return frozenset({pb.PAYMENT_STATUS_PENDING})
    return frozenset({final_status(request), pb.PAYMENT_STATUS_PENDING})


@dataclass(frozen=True, slots=True)
class Stored:
    """A payment the server created, as the model remembers it."""

    payment_id: str
    request: pb.RequestPaymentRequest
    payload: Payload
    first_status: pb.PaymentStatus.ValueType  # what the creating call answered

    def current_statuses(self) -> frozenset[pb.PaymentStatus.ValueType]:
        """What GetPayment may show: the first answer, or the verdict once a PENDING settles."""
        return frozenset({self.first_status, final_status(self.request)})


@dataclass(slots=True)
class Model:
    """What the server has stored, as seen through the answers it gave."""

    by_key: dict[str, Stored] = field(default_factory=dict)
    by_id: dict[str, Stored] = field(default_factory=dict)

    def add(self, stored: Stored) -> None:
        self.by_key[stored.request.idempotency_key] = stored
        self.by_id[stored.payment_id] = stored


@dataclass(frozen=True, slots=True)
class Expected:
    """The answer a request must get. `violations` for INVALID_ARGUMENT from validation,
    `undecodable` for a body that does not parse, `replay_of` for an idempotent replay."""

    code: grpc.StatusCode
    violations: tuple[str, ...] = ()
    undecodable: bool = False
    replay_of: Stored | None = None


def expect_request_payment(
    request: pb.RequestPaymentRequest | None, model: Model, *, simulation: bool
) -> Expected:
    """The answer to RequestPayment with `request` (None: the body does not parse)."""
    if request is None:
        return Expected(grpc.StatusCode.INVALID_ARGUMENT, undecodable=True)
    violations = expected_violations(request, simulation=simulation)
    if violations:
        return Expected(grpc.StatusCode.INVALID_ARGUMENT, tuple(violations))
    stored = model.by_key.get(request.idempotency_key)
    if stored is None:
        return Expected(grpc.StatusCode.OK)
    if stored.payload != payload(request):
        return Expected(grpc.StatusCode.ALREADY_EXISTS)
    return Expected(grpc.StatusCode.OK, replay_of=stored)


def expect_get_payment(request: pb.GetPaymentRequest | None, model: Model) -> Expected:
    """The answer to GetPayment with `request` (None: the body does not parse)."""
    if request is None:
        return Expected(grpc.StatusCode.INVALID_ARGUMENT, undecodable=True)
    if PAYMENT_ID.fullmatch(request.payment_id) is None:
        return Expected(grpc.StatusCode.INVALID_ARGUMENT, ("payment_id",))
    stored = model.by_id.get(request.payment_id)
    if stored is None:
        return Expected(grpc.StatusCode.NOT_FOUND)
    return Expected(grpc.StatusCode.OK, replay_of=stored)
