"""A grpcurl call's trace arrives at an OTLP/gRPC receiver, continuing the caller's trace."""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.otlp_receiver import OtlpReceiver
from tests.processes import ServerProcess

pytestmark = pytest.mark.e2e

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN_ID = "b7ad6b7169203331"
BODY = '{"amount_minor": 10, "currency": "EUR", "order_id": "o", "idempotency_key": "otlp"}'


def test_the_trace_of_a_grpcurl_call_reaches_the_otlp_endpoint(grpcurl: str) -> None:
    with OtlpReceiver() as receiver:
        server = ServerProcess(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="200"
        )
        try:
            result = subprocess.run(
                [
                    grpcurl,
                    "-plaintext",
                    "-H",
                    f"traceparent: 00-{TRACE_ID}-{PARENT_SPAN_ID}-01",
                    "-d",
                    BODY,
                    f"127.0.0.1:{server.port}",
                    "payments.v1.PaymentService/RequestPayment",
                ],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            server.proc.send_signal(signal.SIGTERM)  # graceful: flushes every pending span
            assert server.proc.wait(timeout=15) == 0
            spans = receiver.spans()
        finally:
            server.stop()
    names = {span.name for _, span in spans if span.trace_id.hex() == TRACE_ID}
    # grpcurl sends the header on its reflection stream too, so that span joins the trace.
    names.discard("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    # The memory store and the simulated processor are in-process calls and make no spans
    # (ARCHITECTURE.md, "Span tree").
    assert names == {"/payments.v1.PaymentService/RequestPayment"}
    (server_span,) = [s for _, s in spans if s.name.startswith("/payments.v1")]
    assert server_span.parent_span_id.hex() == PARENT_SPAN_ID
    assert {resource["service.name"] for resource, _ in spans} == {"payments-service"}
