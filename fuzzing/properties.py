"""The four properties, each a hypothesis test bound to a running `Harness`.

Each factory returns a `@given` function of no arguments; the caller applies the settings
(`settings(...)(prop)()`): a small derandomized budget in the suite, a large seeded one in the
campaign. Every example is checked in full by the harness (code, details, what was stored),
and the byte-level ones also check that a valid call still succeeds right after.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hypothesis import given
from hypothesis import strategies as st

from fuzzing.http import (
    VALID_BODY,
    VALID_REQUESTS,
    assemble,
    byte_edits,
    header_lists,
    methods,
    mutate_bytes,
    paths,
    raw_request,
)
from fuzzing.strategies import mutation_lists, payment_ids, payment_requests
from fuzzing.wire import mutate
from payments_service.domain import validation as limits
from payments_service.gen.payments.v1 import payments_pb2 as pb

if TYPE_CHECKING:
    from fuzzing.harness import Harness
    from fuzzing.wire import Mutation

Property = Callable[[], None]

# Valid messages the byte-level mutations start from: the smallest, a typical one, each
# simulated outcome, and one at every length limit.
REQUEST_BASES = (
    pb.RequestPaymentRequest(amount_minor=1, currency="USD", order_id="o", idempotency_key="k"),
    pb.RequestPaymentRequest(
        amount_minor=1250,
        currency="EUR",
        order_id="order-42",
        idempotency_key="5b0d7c1e-demo-1",
        metadata={"customer": "cus_123", "channel": "web"},
    ),
    pb.RequestPaymentRequest(
        amount_minor=700,
        currency="GBP",
        order_id="order-44",
        idempotency_key="decline-1",
        metadata={"simulate": "decline"},
    ),
    pb.RequestPaymentRequest(
        amount_minor=500,
        currency="JPY",
        order_id="order-43",
        idempotency_key="slow-1",
        metadata={"simulate": "slow"},
    ),
    pb.RequestPaymentRequest(
        amount_minor=limits.MAX_AMOUNT_MINOR,
        currency="CHF",
        order_id="é" * limits.MAX_ORDER_ID_LENGTH,
        idempotency_key="~" * limits.MAX_IDEMPOTENCY_KEY_LENGTH,
        metadata={
            f"{i:02d}".ljust(limits.MAX_METADATA_KEY_LENGTH, "m"): "\U0001f600" * 25
            for i in range(limits.MAX_METADATA_ENTRIES)
        },
    ),
)


def get_bases(known_id: str) -> tuple[pb.GetPaymentRequest, ...]:
    return (
        pb.GetPaymentRequest(payment_id=known_id),
        pb.GetPaymentRequest(payment_id="pay_" + "f" * 32),
        pb.GetPaymentRequest(payment_id="pay_x"),
    )


def request_fields(harness: Harness) -> Property:
    @given(request=payment_requests())
    def request_payment_answers_as_the_limits_say(request: pb.RequestPaymentRequest) -> None:
        harness.run(harness.request_payment(request.SerializeToString(), "fields"))

    return request_payment_answers_as_the_limits_say


def get_fields(harness: Harness) -> Property:
    known = harness.known_ids  # a live view would change under hypothesis; new ids join below

    @given(payment_id=payment_ids(known))
    def get_payment_answers_as_the_shape_and_the_store_say(payment_id: str) -> None:
        known[:] = harness.known_ids
        body = pb.GetPaymentRequest(payment_id=payment_id).SerializeToString()
        harness.run(harness.get_payment(body, "fields"))

    return get_payment_answers_as_the_shape_and_the_store_say


def request_bytes(harness: Harness) -> Property:
    bases = [base.SerializeToString() for base in REQUEST_BASES]

    @given(base=st.sampled_from(bases), mutations=mutation_lists)
    def mutated_request_payment_is_never_a_server_fault(
        base: bytes, mutations: list[Mutation]
    ) -> None:
        harness.run(harness.request_payment(mutate(base, mutations), "bytes"))
        harness.run(harness.probe())

    return mutated_request_payment_is_never_a_server_fault


def get_bytes(harness: Harness) -> Property:
    bases = [base.SerializeToString() for base in get_bases(harness.known_ids[0])]

    @given(base=st.sampled_from(bases), mutations=mutation_lists)
    def mutated_get_payment_is_never_a_server_fault(base: bytes, mutations: list[Mutation]) -> None:
        harness.run(harness.get_payment(mutate(base, mutations), "bytes"))
        harness.run(harness.probe())

    return mutated_get_payment_is_never_a_server_fault


def http_fields(harness: Harness) -> Property:
    @given(request=payment_requests())
    def request_payment_over_http_answers_as_the_limits_say(
        request: pb.RequestPaymentRequest,
    ) -> None:
        harness.run(harness.request_payment(request.SerializeToString(), "http-fields", "http"))

    return request_payment_over_http_answers_as_the_limits_say


def http_bytes(harness: Harness) -> Property:
    @given(
        base=st.sampled_from(VALID_REQUESTS),
        head_edits=st.one_of(st.just([]), byte_edits),
        body_edits=st.one_of(st.just([]), byte_edits),
    )
    def mutated_http_requests_are_never_a_server_fault(
        base: tuple[bytes, bytes],
        head_edits: list[tuple[str, int, int]],
        body_edits: list[tuple[str, int, int]],
    ) -> None:
        head, body = base
        data = assemble(mutate_bytes(head, head_edits), mutate_bytes(body, body_edits))
        harness.run(harness.raw_http(data, "http-bytes"))
        harness.run(harness.probe())

    return mutated_http_requests_are_never_a_server_fault


def http_headers(harness: Harness) -> Property:
    @given(
        target=st.sampled_from(
            ((b"POST", b"/v1/payments"), (b"GET", b"/v1/payments/pay_x"), (b"GET", b"/v1/health"))
        ),
        headers=header_lists,
        with_body=st.booleans(),
    )
    def hostile_headers_are_never_a_server_fault(
        target: tuple[bytes, bytes], headers: list[tuple[bytes, bytes]], with_body: bool
    ) -> None:
        data = raw_request(*target, headers, VALID_BODY if with_body else b"")
        harness.run(harness.raw_http(data, "http-headers"))
        harness.run(harness.probe())

    return hostile_headers_are_never_a_server_fault


def http_paths(harness: Harness) -> Property:
    @given(method=methods, path=paths)
    def hostile_methods_and_paths_are_never_a_server_fault(method: bytes, path: bytes) -> None:
        harness.run(harness.raw_http(raw_request(method, path, []), "http-paths"))
        harness.run(harness.probe())

    return hostile_methods_and_paths_are_never_a_server_fault


PROPERTIES: dict[str, Callable[[Harness], Property]] = {
    "request-fields": request_fields,
    "get-fields": get_fields,
    "request-bytes": request_bytes,
    "get-bytes": get_bytes,
    "http-fields": http_fields,
    "http-bytes": http_bytes,
    "http-headers": http_headers,
    "http-paths": http_paths,
}
