"""A telemetry fault never hurts a call: the real server with its stdout stalled or closed, and
with its OTLP collector unreachable."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from tests.processes import SERVER

GRACE_SECONDS = 2.0


class Server:
    """The server with its stdout in a pipe this test controls: only the startup line is read,
    then the pipe is left alone (stalled) or closed, as the test chooses."""

    def __init__(self, **env: str) -> None:
        assert SERVER is not None
        self.proc = subprocess.Popen(
            [SERVER],
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
                "PAYMENTS_GRPC_ADDRESS": "127.0.0.1:0",
                "PAYMENTS_HTTP_ADDRESS": "127.0.0.1:0",
                "PAYMENTS_METRICS_ADDRESS": "127.0.0.1:0",
                "PAYMENTS_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
                "PAYMENTS_SHUTDOWN_DRAIN_SECONDS": "0",
                **env,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        started: dict[str, Any] = {}
        while started.get("event") != "server_started":
            line = self.proc.stdout.readline()
            assert line, "the server exited before it started"
            started = json.loads(line)
        self.port = int(started["port"])
        self.metrics_port = int(started["metrics_port"])

    def dropped_log_records(self) -> float:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("payments_log_records_dropped_total "):
                    return float(line.split()[1])
        raise AssertionError("payments_log_records_dropped_total is not exported")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@contextmanager
def running(**env: str) -> Iterator[Server]:
    server = Server(**env)
    try:
        yield server
    finally:
        server.stop()


def request(key: str) -> pb.RequestPaymentRequest:
    return pb.RequestPaymentRequest(
        amount_minor=100, currency="EUR", order_id=f"o-{key}", idempotency_key=key
    )


def test_a_stalled_stdout_never_stalls_calls_and_drops_are_counted() -> None:
    """Nobody reads stdout: the pipe fills, the writer thread blocks, the queue fills; calls,
    health checks included, go on, and the dropped lines are counted."""
    with running(PAYMENTS_LOG_QUEUE_RECORDS="50") as server:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.PaymentServiceStub(channel)
            # ~400 bytes a line: 1,000 calls is several times a 64 KiB pipe plus the queue.
            for n in range(1000):
                stub.RequestPayment(request(f"stall-{n}"), timeout=5)
            assert server.dropped_log_records() > 0
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="payments.v1.PaymentService"), timeout=1
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            reply = stub.RequestPayment(request("after-the-stall"), timeout=1)
            assert reply.status == pb.PAYMENT_STATUS_SUCCEEDED
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=GRACE_SECONDS + 2) == 0


def test_a_closed_stdout_fails_no_call_and_shutdown_still_drains() -> None:
    with running() as server:
        assert server.proc.stdout is not None
        server.proc.stdout.close()  # the reader is gone: every write now fails with EPIPE
        codes = []
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.PaymentServiceStub(channel)
            for n in range(50):
                try:
                    stub.RequestPayment(request(f"closed-{n}"), timeout=5)
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as error:
                    codes.append(error.code())
        assert codes == [grpc.StatusCode.OK] * 50
        # Every access line is dropped and counted, once the writer has tried to write it.
        deadline = time.monotonic() + 5
        while server.dropped_log_records() < 50:
            assert time.monotonic() < deadline, "fewer than 50 dropped lines counted"
            time.sleep(0.02)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=GRACE_SECONDS + 2) == 0


@contextmanager
def unreachable_collector(kind: str) -> Iterator[str]:
    """An OTLP endpoint that refuses connections, or one that accepts TCP and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if kind == "refused":
        listener.close()
    else:
        listener.listen(64)  # a black hole: connections complete, nothing is ever read
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        listener.close()


@pytest.mark.parametrize("kind", ["refused", "black-hole"])
def test_sigterm_exits_within_the_grace_when_the_collector_is_unreachable(kind: str) -> None:
    with (
        unreachable_collector(kind) as endpoint,
        running(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_BSP_SCHEDULE_DELAY="100") as server,
    ):
        assert server.proc.stdout is not None
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.PaymentServiceStub(channel)
            for n in range(200):
                stub.RequestPayment(request(f"down-{n}"), timeout=5)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        lines = [json.loads(line) for line in server.proc.stdout]  # until the process exits
        assert server.proc.wait(timeout=GRACE_SECONDS + 5) == 0
        elapsed = time.monotonic() - started
    assert elapsed <= GRACE_SECONDS + 2, f"shutdown took {elapsed:.1f}s"
    (complete,) = [line for line in lines if line["event"] == "shutdown_complete"]
    assert complete["spans_flushed"] is False
