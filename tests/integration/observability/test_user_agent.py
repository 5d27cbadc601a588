"""Nothing a caller sends adds a log line of its own: a 3,000-character user-agent is cut in the
span to the attribute value limit, without the SDK's warning per call, and the calls log
exactly one access line each."""

from __future__ import annotations

import grpc
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from payments_service.bootstrap import build_interceptors, build_service
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.observability.telemetry import Telemetry
from payments_service.observability.tracing import build_tracer_provider
from payments_service.transport.grpc_server import start_server
from tests.conftest import TEST_SETTINGS, CapturedLogs, payment_request
from tests.fakes import FakeClock, SequentialIds

USER_AGENT = "u" * 3000
CALLS = 5


async def test_a_long_user_agent_adds_no_log_line_and_is_cut_in_the_span(
    captured_logs: CapturedLogs,
) -> None:
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider(TEST_SETTINGS, (SimpleSpanProcessor(exporter),))
    assert provider is not None
    telemetry = Telemetry(tracer_provider=provider, access_log=True)
    service = build_service(
        TEST_SETTINGS, telemetry=telemetry, clock=FakeClock(), ids=SequentialIds()
    )
    server = await start_server(service, "127.0.0.1:0", build_interceptors(telemetry))
    options = (("grpc.primary_user_agent", USER_AGENT),)
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{server.port}", options=options
        ) as channel:
            stub = pb_grpc.PaymentServiceStub(channel)
            for number in range(CALLS):
                await stub.RequestPayment(payment_request(idempotency_key=f"k{number}"), timeout=5)
            missing = pb.GetPaymentRequest(payment_id="pay_" + "f" * 32)
            with pytest.raises(grpc.aio.AioRpcError) as not_found:
                await stub.GetPayment(missing, timeout=5)
            assert not_found.value.code() is grpc.StatusCode.NOT_FOUND
    finally:
        await server.stop(0)
        await service.drain(5)
        provider.shutdown()

    lines = [line for line in captured_logs.lines() if line["level"] != "debug"]  # as served
    assert [line["event"] for line in lines] == ["rpc_completed"] * (CALLS + 1), lines
    agents = {
        span.attributes["rpc.user_agent"]
        for span in exporter.get_finished_spans()
        if span.attributes is not None and "rpc.user_agent" in span.attributes
    }
    limit = TEST_SETTINGS.span_attribute_value_limit
    assert {len(str(agent)) for agent in agents} == {limit}
    assert all(str(agent).startswith("u" * 100) for agent in agents)
