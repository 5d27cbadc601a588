"""The real `payments-server` through SIGTERM: NOT_SERVING at once, still serving during the
drain, then no new calls, in-flight calls finish, exit 0 within drain + grace + 2 s; a second
signal exits 1 at once. A client at full rate through SIGTERM sees no CANCELLED: a call the
server had accepted (it has an access line) gets its real answer, every other one UNAVAILABLE."""

from __future__ import annotations

import asyncio
import collections
import signal
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from tests.e2e.test_server_process import payment
from tests.processes import ServerProcess

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
WORKERS = 32


async def test_a_full_rate_client_sees_no_cancelled_for_any_call_the_server_accepted(
    drained: ServerProcess,
) -> None:
    outcomes: dict[str, grpc.StatusCode] = {}
    stopping = asyncio.Event()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{drained.port}") as channel:
        stub = pb_grpc.PaymentServiceStub(channel)

        async def client(worker: int) -> None:
            n = 0
            while not stopping.is_set():
                key = f"w{worker}-{n}"
                n += 1
                try:
                    await stub.RequestPayment(
                        payment(key), metadata=(("x-request-id", key),), timeout=10
                    )
                    outcomes[key] = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as error:
                    outcomes[key] = error.code()

        clients = [asyncio.create_task(client(w)) for w in range(WORKERS)]
        deadline = time.monotonic() + 30
        while sum(c is grpc.StatusCode.OK for c in outcomes.values()) < 300:
            assert time.monotonic() < deadline, "the server never reached full rate"
            await asyncio.sleep(0.01)
        signalled = time.monotonic()
        drained.proc.send_signal(signal.SIGTERM)
        status = await asyncio.to_thread(drained.proc.wait, 20)
        elapsed = time.monotonic() - signalled
        stopping.set()
        await asyncio.gather(*clients)

    assert status == 0
    assert elapsed <= 1 + 5 + 2
    lines = drained.seen
    started = next(i for i, line in enumerate(lines) if line["event"] == "shutdown_started")
    accepted = {
        str(line["request_id"]): str(line["grpc_code"])
        for line in lines
        if line["event"] == "rpc_completed"
    }
    served_in_drain = [
        line
        for line in lines[started:]
        if line["event"] == "rpc_completed" and line["grpc_code"] == "OK"
    ]
    assert served_in_drain, "nothing was served during the drain"
    for key, code in outcomes.items():
        if key in accepted:  # the server handed it to a handler: a real answer, the logged one
            assert code.name == accepted[key], key
            assert code is not grpc.StatusCode.CANCELLED, key
        else:  # never reached a handler: refused by grpc's stop (GOAWAY) or a closed port
            assert code is grpc.StatusCode.UNAVAILABLE, (key, code)
    # No CANCELLED at all: the stop parks new calls before grpc-core's stop could cancel them
    # (transport.admission.ShutdownGate); every refused call is UNAVAILABLE, which clients retry.
    codes = collections.Counter(code.name for code in outcomes.values())
    assert codes["CANCELLED"] == 0, codes
    assert codes["OK"] >= 300


def test_health_is_not_serving_at_once_while_calls_are_still_served_during_the_drain() -> None:
    process = ServerProcess(
        PAYMENTS_SHUTDOWN_DRAIN_SECONDS="2", PAYMENTS_SHUTDOWN_GRACE_SECONDS="3"
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            stub = pb_grpc.PaymentServiceStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == SERVING
            signalled = time.monotonic()
            process.proc.send_signal(signal.SIGTERM)
            started = process.wait_for("shutdown_started")
            assert started["drain_seconds"] == 2.0
            check = health_pb2.HealthCheckRequest(service="payments.v1.PaymentService")
            assert health.Check(check, timeout=5).status == NOT_SERVING
            answer = stub.RequestPayment(payment("in-drain"), timeout=5)
            assert answer.status == pb.PAYMENT_STATUS_SUCCEEDED
            process.wait_for("shutdown_stopping_server")
            assert time.monotonic() - signalled >= 2.0
            with pytest.raises(grpc.RpcError) as refused:
                stub.RequestPayment(payment("after-drain"), timeout=5)
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert process.proc.wait(timeout=10) == 0
        assert time.monotonic() - signalled <= 2 + 3 + 2
    finally:
        process.stop()


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_exits_at_once_with_status_1_and_one_line(second: signal.Signals) -> None:
    process = ServerProcess(
        PAYMENTS_SHUTDOWN_DRAIN_SECONDS="30", PAYMENTS_SHUTDOWN_GRACE_SECONDS="30"
    )
    try:
        process.proc.send_signal(signal.SIGTERM)
        process.wait_for("shutdown_started")
        signalled = time.monotonic()
        process.proc.send_signal(second)
        assert process.proc.wait(timeout=10) == 1
        assert time.monotonic() - signalled < 2
        forced = process.wait_for("shutdown_forced")
        assert forced["signal"] == second.name
        events = [line["event"] for line in process.seen]
        assert events.count("shutdown_forced") == 1
        assert "shutdown_complete" not in events
    finally:
        process.stop()
