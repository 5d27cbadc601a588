"""Authentication in the signals: the merchant is on the access line and the span, a refusal is
counted, logged and traced as UNAUTHENTICATED, and no `authorization` value reaches any log line,
span or metric."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import grpc
import pytest

from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.security.api_keys import KeyRing
from payments_service.security.authenticator import Authenticator
from tests.conftest import payment_request
from tests.fakes import ExplodingRepository
from tests.integration.observability.conftest import Observed

# Recognisable, so a scan finds any copy; the unknown ones share the marker.
PLANTED_KEY = "sk_live_PLANTEDc2VjcmV0LWtleS1tYXJrZXI"
MARKER = "PLANTED"


@pytest.fixture
def authenticator(tmp_path: Path) -> Authenticator:
    path = tmp_path / "keys"
    path.write_text(f"alice {hashlib.sha256(PLANTED_KEY.encode()).hexdigest()}\n")
    return Authenticator(KeyRing.load(str(path)))


def bearer(value: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", value),)


async def test_the_merchant_is_on_the_access_line_and_the_span(
    observed_factory: Any, authenticator: Authenticator
) -> None:
    observed: Observed = await observed_factory(authenticator=authenticator)
    await observed.api.stub.RequestPayment(
        payment_request(), metadata=bearer(f"Bearer {PLANTED_KEY}")
    )
    (line,) = observed.access_lines()
    assert line["merchant_id"] == "alice"
    (span,) = observed.server_spans()
    assert span.attributes is not None
    assert span.attributes["merchant.id"] == "alice"


async def test_a_refusal_is_one_unauthenticated_client_fault_in_every_signal(
    observed_factory: Any, authenticator: Authenticator
) -> None:
    observed: Observed = await observed_factory(authenticator=authenticator)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await observed.api.stub.RequestPayment(payment_request())
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    (line,) = observed.access_lines()
    assert (line["grpc_code"], line["level"]) == ("UNAUTHENTICATED", "info")
    assert "merchant_id" not in line
    (span,) = observed.server_spans()
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert "merchant.id" not in span.attributes
    assert span.status.status_code.name == "UNSET"  # a client fault, not a server error
    method = "RequestPayment"
    handled = observed.sample(
        "grpc_server_handled_total",
        grpc_type="unary",
        grpc_service="payments.v1.PaymentService",
        grpc_method=method,
        grpc_code="Unauthenticated",
    )
    assert handled == 1


async def test_authorization_values_never_reach_logs_spans_metrics_or_errors(
    observed_factory: Any, authenticator: Authenticator
) -> None:
    observed: Observed = await observed_factory(authenticator=authenticator)
    broken: Observed = await observed_factory(
        authenticator=authenticator, repository=ExplodingRepository()
    )
    stub = observed.api.stub
    good = bearer(f"Bearer {PLANTED_KEY}")
    created = await stub.RequestPayment(payment_request(), metadata=good)
    await stub.GetPayment(pb.GetPaymentRequest(payment_id=created.payment_id), metadata=good)
    refused = [
        bearer(f"Bearer {PLANTED_KEY}x"),  # unknown
        bearer(f"Bearer {PLANTED_KEY} {PLANTED_KEY}"),  # malformed
        bearer(f"Basic {PLANTED_KEY}"),
        bearer(f"Bearer {PLANTED_KEY};"),
        (*good, *bearer(f"Bearer {PLANTED_KEY}y")),  # two headers
    ]
    outcomes = await asyncio.gather(
        *(stub.RequestPayment(payment_request(), metadata=m) for m in refused),
        # An unexpected failure logs a stack: the key must not be in its frames either.
        broken.api.stub.RequestPayment(payment_request(), metadata=good),
        return_exceptions=True,
    )
    assert all(isinstance(o, grpc.aio.AioRpcError) for o in outcomes)
    codes = [o.code() for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 5 + [grpc.StatusCode.INTERNAL]
    for error in outcomes:
        assert isinstance(error, grpc.aio.AioRpcError)
        assert MARKER not in (error.details() or "")
        assert MARKER not in str(error.trailing_metadata())

    logs = observed.log_text()
    assert "unhandled_exception" in logs  # the stack was logged ...
    assert len(observed.access_lines()) == 2 + 5 + 1
    assert MARKER not in logs  # ... and no line carries the key
    spans = observed.spans() + broken.spans()
    assert len([s for s in spans if s.kind.name == "SERVER"]) == 8
    for span in spans:
        assert MARKER not in span.to_json()
    assert MARKER not in observed.scrape() + broken.scrape()
