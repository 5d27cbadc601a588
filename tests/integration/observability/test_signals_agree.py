"""For every outcome, the span, the access-log line and the metrics tell the same story."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from payments_service.adapters.stores.memory import InMemoryPaymentRepository
from payments_service.domain.errors import PaymentsError
from payments_service.domain.model import Payment
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.observability.metrics import GO_CODE_NAMES
from payments_service.observability.record import SERVER_FAULT_CODES
from tests.conftest import payment_request
from tests.fakes import ExplodingRepository, FakeClock
from tests.integration.observability.conftest import Observed

REQUEST_PAYMENT = "/payments.v1.PaymentService/RequestPayment"
GET_PAYMENT = "/payments.v1.PaymentService/GetPayment"
UNKNOWN_ID = "pay_" + "0" * 32


async def call(observed: Observed, method: str, request: Any) -> grpc.StatusCode:
    stub = observed.api.stub
    rpc = stub.RequestPayment if method == REQUEST_PAYMENT else stub.GetPayment
    try:
        await rpc(request, metadata=(("x-request-id", "req-agree"),))
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


CASES = [
    pytest.param(REQUEST_PAYMENT, payment_request(), grpc.StatusCode.OK, id="ok"),
    pytest.param(
        REQUEST_PAYMENT,
        payment_request(amount_minor=0),
        grpc.StatusCode.INVALID_ARGUMENT,
        id="invalid-argument",
    ),
    pytest.param(
        GET_PAYMENT,
        pb.GetPaymentRequest(payment_id=UNKNOWN_ID),
        grpc.StatusCode.NOT_FOUND,
        id="not-found",
    ),
]


@pytest.mark.parametrize(("method", "request_message", "code"), CASES)
async def test_span_log_and_metric_name_the_same_code(
    observed: Observed, method: str, request_message: Any, code: grpc.StatusCode
) -> None:
    assert await call(observed, method, request_message) is code
    assert_agreement(observed, method, code, expect_exception=False)


async def test_already_exists_agrees(observed: Observed) -> None:
    await observed.api.stub.RequestPayment(payment_request())
    observed.exporter.clear()
    code = await call(observed, REQUEST_PAYMENT, payment_request(amount_minor=1))
    assert code is grpc.StatusCode.ALREADY_EXISTS
    assert_agreement(observed, REQUEST_PAYMENT, code, expect_exception=False, handled_before=0)


async def test_unexpected_exception_is_internal_error_recorded_once(observed_factory: Any) -> None:
    observed: Observed = await observed_factory(repository=ExplodingRepository())
    code = await call(observed, REQUEST_PAYMENT, payment_request())
    assert code is grpc.StatusCode.INTERNAL
    span = assert_agreement(observed, REQUEST_PAYMENT, code, expect_exception=True)
    assert span.status.status_code is StatusCode.ERROR
    (event,) = [e for e in span.events if e.name == "exception"]
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "RuntimeError"
    # The stack is logged once, as structured data, on the unhandled_exception line only.
    (logged,) = observed.log_lines("unhandled_exception")
    assert logged["exception"][0]["exc_type"] == "RuntimeError"
    assert logged["trace_id"] == format(span.context.trace_id, "032x")
    assert "exception" not in observed.access_lines()[0]


def assert_agreement(
    observed: Observed,
    method: str,
    code: grpc.StatusCode,
    *,
    expect_exception: bool,
    handled_before: int = 0,
) -> Any:
    (span,) = observed.server_spans()
    assert span.name == method
    assert span.kind is SpanKind.SERVER
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == code.value[0]
    assert span.attributes["request.id"] == "req-agree"
    expected_status = StatusCode.ERROR if code in SERVER_FAULT_CODES else StatusCode.UNSET
    assert span.status.status_code is expected_status
    exceptions = [e for e in span.events if e.name == "exception"]
    assert len(exceptions) == (1 if expect_exception else 0)

    (line,) = [x for x in observed.access_lines() if x["request_id"] == "req-agree"]
    assert line["grpc_code"] == code.name
    assert line["rpc_method"] == method
    assert line["trace_id"] == format(span.context.trace_id, "032x")
    assert line["span_id"] == format(span.context.span_id, "016x")
    assert line["level"] == ("error" if code in SERVER_FAULT_CODES else "info")

    service, name = method.lstrip("/").split("/")
    labels = {"grpc_type": "unary", "grpc_service": service, "grpc_method": name}
    handled = observed.sample("grpc_server_handled_total", **labels, grpc_code=GO_CODE_NAMES[code])
    assert handled == handled_before + 1
    return span


class FailingRecordRepository(InMemoryPaymentRepository):
    """Claims work; recording the outcome blows up (a lost database connection)."""

    async def record(self, payment_id: str, **kwargs: Any) -> Payment:
        raise RuntimeError("connection reset while recording")


async def test_an_unexpected_failure_logs_one_stack_without_request_data(
    observed_factory: Any,
) -> None:
    secret = "tok_live_in_a_local_variable"
    repository = FailingRecordRepository(ttl=timedelta(hours=1), clock=FakeClock())
    observed: Observed = await observed_factory(repository=repository)
    code = await call(observed, REQUEST_PAYMENT, payment_request(metadata={"card": secret}))
    assert code is grpc.StatusCode.INTERNAL
    await observed.api.service.drain(5)
    assert [line["event"] for line in observed.log_lines() if "exception" in line] == [
        "unhandled_exception"
    ]
    assert secret not in observed.log_text()


class UnmappedError(PaymentsError):
    """A domain error nobody added to the error table (a programming error)."""


class UnmappedErrorRepository(InMemoryPaymentRepository):
    async def claim(self, candidate: Payment) -> Any:
        raise UnmappedError("a new rule nobody mapped")


async def test_an_unmapped_domain_error_is_internal_and_logged_once_with_its_stack(
    observed_factory: Any,
) -> None:
    repository = UnmappedErrorRepository(ttl=timedelta(hours=1), clock=FakeClock())
    observed: Observed = await observed_factory(repository=repository)
    code = await call(observed, REQUEST_PAYMENT, payment_request())
    assert code is grpc.StatusCode.INTERNAL
    assert_agreement(observed, REQUEST_PAYMENT, code, expect_exception=True)
    (logged,) = observed.log_lines("unhandled_exception")
    assert logged["exception"][0]["exc_type"] == "UnmappedError"
