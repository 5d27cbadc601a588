"""Property-based tests over RequestPayment and GetPayment field values, against the real
in-process server on port 0 over a real channel (one server per test, every example inside it).

For each drawn request the harness (fuzzing/harness.py) checks: never UNKNOWN or INTERNAL; an
invalid request is INVALID_ARGUMENT whose BadRequest lists exactly the violated fields (computed
from the limits in fuzzing/oracle.py, not by the validator) and stores nothing; a valid one
creates (or replays, or conflicts when its key was drawn before); GetPayment returns what was
stored, NOT_FOUND for ids nobody issued, INVALID_ARGUMENT for malformed ids."""

from __future__ import annotations

import grpc
import pytest
from hypothesis import given

from fuzzing.harness import Harness, PropertyFailedError
from fuzzing.oracle import expected_violations
from fuzzing.properties import get_fields, request_fields
from fuzzing.strategies import payment_requests
from payments_service.domain.errors import ValidationError
from payments_service.domain.validation import validate_payment_request
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.security.authenticator import Authenticator
from payments_service.transport.interceptors.auth import AuthInterceptor
from tests.fuzz.conftest import budget


def codes(harness: Harness, source: str, rpc: str) -> set[str]:
    return {code for (s, r, code) in harness.histogram if (s, r) == (source, rpc)}


def test_request_payment_fields_get_exactly_the_answer_the_limits_give() -> None:
    with Harness() as harness:
        budget(150)(request_fields(harness))()
        harness.assert_no_error_logs()
    # The budget reaches every kind of answer, so the properties above were exercised.
    assert codes(harness, "fields", "RequestPayment") == {
        "OK",
        "INVALID_ARGUMENT",
        "ALREADY_EXISTS",
    }
    assert {"created", "replayed", "rejected", "conflicted"} <= {
        outcome for (_, outcome) in harness.outcomes
    }


def test_with_simulation_off_any_simulate_key_is_a_metadata_violation() -> None:
    with Harness(simulation=False) as harness:
        budget(60)(request_fields(harness))()
        harness.assert_no_error_logs()
    assert ("fields", "rejected") in harness.outcomes
    assert ("fields", "created") in harness.outcomes


def test_get_payment_ids_get_exactly_the_answer_the_shape_and_the_store_give() -> None:
    with Harness() as harness:
        for number in range(3):  # a few more payments to find
            harness.run(harness.probe())
            assert harness.ids.issued == number + 2
        budget(100)(get_fields(harness))()
        harness.assert_no_error_logs()
    assert codes(harness, "fields", "GetPayment") == {"OK", "NOT_FOUND", "INVALID_ARGUMENT"}


@budget(150)
@given(request=payment_requests())
def test_the_oracle_names_the_fields_the_validator_names(request: pb.RequestPaymentRequest) -> None:
    """The same property without a server, with more examples: the oracle's fields are the
    validator's, in its order (simulation on and off)."""
    for simulation in (True, False):
        try:
            validate_payment_request(
                amount_minor=request.amount_minor,
                currency=request.currency,
                order_id=request.order_id,
                idempotency_key=request.idempotency_key,
                metadata=request.metadata,
                simulation=simulation,
                merchant_id="default",
            )
            fields = []
        except ValidationError as error:
            fields = [violation.field for violation in error.violations]
        assert fields == expected_violations(request, simulation=simulation)


@pytest.mark.parametrize(
    ("request_fields_", "simulation", "expected"),
    [
        pytest.param(
            {"amount_minor": 0, "currency": "usd", "order_id": "", "idempotency_key": "has space"},
            True,
            ["amount_minor", "currency", "order_id", "idempotency_key"],
            id="readme-example",
        ),
        pytest.param(
            {
                "amount_minor": 99_999_999_999,
                "currency": "EUR",
                "order_id": "o" * 128,
                "idempotency_key": "~" * 255,
            },
            True,
            [],
            id="every-limit-exactly",
        ),
        pytest.param(
            {
                "amount_minor": 100_000_000_000,
                "currency": "XTS",
                "order_id": "o" * 129,
                "idempotency_key": "k" * 256,
            },
            True,
            ["amount_minor", "currency", "order_id", "idempotency_key"],
            id="every-limit-plus-one",
        ),
        pytest.param(
            {"metadata": {"": "v", "k" * 41: "v" * 501, "simulate": "fast"}},
            True,
            ["metadata"] * 4,
            id="metadata-one-per-broken-rule",
        ),
        pytest.param(
            {"metadata": {str(i): "v" for i in range(21)}},
            True,
            ["metadata"],
            id="metadata-21-entries",
        ),
        pytest.param({"metadata": {"simulate": "slow"}}, False, ["metadata"], id="simulation-off"),
        pytest.param({"order_id": "tab\there"}, True, ["order_id"], id="order-id-not-printable"),
        pytest.param({"idempotency_key": "clé"}, True, ["idempotency_key"], id="key-not-ascii"),
    ],
)
def test_the_oracle_computes_the_documented_violations(
    request_fields_: dict[str, object], simulation: bool, expected: list[str]
) -> None:
    fields: dict[str, object] = {
        "amount_minor": 1,
        "currency": "EUR",
        "order_id": "o",
        "idempotency_key": "k",
    }
    fields.update(request_fields_)
    request = pb.RequestPaymentRequest(**fields)  # type: ignore[arg-type]
    assert expected_violations(request, simulation=simulation) == expected


def test_the_harness_fails_when_the_server_disagrees_with_the_oracle() -> None:
    """The properties can fail: with the oracle told simulation is off while the server has it
    on, a `simulate=slow` request the server accepts is reported."""
    request = pb.RequestPaymentRequest(
        amount_minor=5,
        currency="EUR",
        order_id="o",
        idempotency_key="k",
        metadata={"simulate": "slow"},
    )
    with Harness() as harness:
        harness.simulation = False
        with pytest.raises(PropertyFailedError, match="INVALID_ARGUMENT"):
            harness.run(harness.request_payment(request.SerializeToString(), "fields"))


def test_the_harness_fails_on_unknown() -> None:
    """Without the observation interceptor (only the auth step, which the handlers need; grpc
    decodes the body itself), garbage is answered UNKNOWN, and the harness reports it."""
    with Harness(interceptors=lambda _telemetry: [AuthInterceptor(Authenticator(None))]) as harness:
        with pytest.raises(PropertyFailedError, match="UNKNOWN"):
            harness.run(harness.request_payment(b"\xff\xff\xff", "bytes"))
        assert harness.histogram["bytes", "RequestPayment", grpc.StatusCode.UNKNOWN.name] == 1
