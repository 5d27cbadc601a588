"""The real `payments-server` executable: configuration errors, serving, graceful shutdown."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from tests.otlp_receiver import OtlpReceiver
from tests.processes import SERVER, ServerProcess


def payment(key: str, **fields: object) -> pb.RequestPaymentRequest:
    """A valid RequestPayment with idempotency key `key`, for an order of its own (other
    fields overridable)."""
    values: dict[str, object] = {"amount_minor": 100, "currency": "EUR", "order_id": f"o-{key}"}
    values.update(fields)
    return pb.RequestPaymentRequest(idempotency_key=key, **values)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    process = ServerProcess(
        PAYMENTS_PROCESSOR_TIMEOUT_SECONDS="1.5",
        PAYMENTS_SIMULATED_SLOW_SECONDS="2",
        PAYMENTS_LOG_LEVEL="debug",  # payment_created lines mark a call as inside the server
    )
    yield process
    process.stop()


def test_sigterm_lets_an_in_flight_call_finish_then_exits_zero(server: ServerProcess) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.PaymentServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest()).status == 1  # SERVING
        done = stub.RequestPayment(payment("e2e-slow", metadata={"simulate": "slow"}))
        assert done.status == pb.PAYMENT_STATUS_PENDING
        server.wait_for("payment_created")
        # A second slow call is in flight (it answers after the 1.5 s deadline) when SIGTERM lands.
        in_flight = stub.RequestPayment.future(
            payment("e2e-in-flight", metadata={"simulate": "slow"})
        )
        server.wait_for("payment_created")  # the second call is now inside the server
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait_for("shutdown_started")
        assert in_flight.result(timeout=10).status == pb.PAYMENT_STATUS_PENDING
        with pytest.raises(grpc.RpcError):
            stub.Health(pb.HealthRequest(), timeout=2)
    complete = server.wait_for("shutdown_complete")
    assert complete["unsettled_payments"] == 0
    assert server.proc.wait(timeout=10) == 0


def healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    """The container HEALTHCHECK command, run against the server on `port`."""
    command = shutil.which("payments-healthcheck", path=str(Path(sys.executable).parent))
    assert command is not None
    return subprocess.run(
        [command],
        env={**os.environ, "PAYMENTS_GRPC_ADDRESS": f"[::]:{port}"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_python_dash_m_entry_point_serves_and_stops_cleanly() -> None:
    process = ServerProcess([sys.executable, "-m", "payments_service"])
    try:
        with grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel:
            reply = pb_grpc.PaymentServiceStub(channel).Health(pb.HealthRequest(), timeout=5)
        assert reply.status == "ok"
        assert healthcheck(process.port).returncode == 0
        process.proc.send_signal(signal.SIGINT)
        assert process.proc.wait(timeout=10) == 0
        unhealthy = healthcheck(process.port)
        assert unhealthy.returncode == 1
        assert "NOT SERVING" in unhealthy.stdout
    finally:
        process.stop()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PAYMENTS_LOG_LEVEL", "loud"),
        ("PAYMENTS_IDEMPOTENCY_TTL_SECONDS", "-1"),
        ("PAYMENTS_MEMORY_STORE_MAX_MIB", "0"),
    ],
)
def test_an_invalid_setting_exits_2_with_one_line_naming_it(name: str, value: str) -> None:
    assert SERVER is not None
    proc = subprocess.run(
        [SERVER],
        env={**os.environ, name: value},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"payments-server: invalid {name}=")
    assert proc.stdout == ""


def test_sigterm_flushes_the_spans_of_the_last_calls_to_the_otlp_endpoint() -> None:
    with OtlpReceiver() as receiver:
        # A long batch delay: without the flush on shutdown these spans would be lost.
        process = ServerProcess(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="60000",
        )
        try:
            with grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel:
                stub = pb_grpc.PaymentServiceStub(channel)
                for key in ("flush-1", "flush-2", "flush-3"):
                    stub.RequestPayment(payment(key))
            process.proc.send_signal(signal.SIGTERM)
            assert process.proc.wait(timeout=15) == 0
        finally:
            process.stop()
        # Flushed before exit: every span is there at once, no waiting.
        spans = receiver.spans()
    # Each new payment: its SERVER span (the in-memory store and the simulated processor emit
    # none), exported by the fast encoder over OTLP/gRPC.
    names = sorted(s.name for _, s in spans)
    assert names == ["/payments.v1.PaymentService/RequestPayment"] * 3
    assert {resource["service.name"] for resource, _ in spans} == {"payments-service"}


def test_a_fresh_server_without_an_otlp_endpoint_writes_nothing_to_stderr(
    server: ServerProcess,
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        pb_grpc.PaymentServiceStub(channel).RequestPayment(payment("quiet"))
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=15) == 0
    assert server.proc.stderr is not None
    assert server.proc.stderr.read() == ""
