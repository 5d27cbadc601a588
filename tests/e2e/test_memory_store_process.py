"""The real `payments-server` with a small memory cap: it refuses new payments once full, its
RSS stays within the cap plus a fixed overhead, and the expiry timer empties the store."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from tests.processes import ServerProcess

MIB = 1024 * 1024
CAP_MIB = 8
# RSS allowed above the RSS measured right after start, besides the cap: ~1.5 MiB to warm the
# call paths (first calls import and allocate lazily), ~8 % of the cap in allocator
# fragmentation (long-lived strings interleaved with freed ~45 KB request buffers), gRPC's
# per-connection buffers. Measured total: 1.9-2.4 MiB at an 8 MiB cap. Kept below the cap, so
# an accounting that undercounts by half would fail.
ALLOWANCE_MIB = 6
EMOJI = "\U0001f600"
# The largest valid metadata values: 500 characters stored at 4 bytes each. "mixed" is 499
# ASCII + 1 emoji: 503 UTF-8 bytes, but CPython still stores 4 bytes per character.
VALUES = {"four-byte": EMOJI * 500, "mixed": "a" * 499 + EMOJI}


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def largest(n: int, value: str) -> pb.RequestPaymentRequest:
    return pb.RequestPaymentRequest(
        amount_minor=100,
        currency="EUR",
        order_id=f"{n:06d}" + "o" * 122,  # an order each: the per-order limit stays out of it
        idempotency_key=f"{n:06d}" + "k" * 249,
        metadata={f"{i:02d}" + "m" * 38: value for i in range(20)},
    )


def scrape(server: ServerProcess) -> dict[str, float]:
    url = f"http://127.0.0.1:{server.started['metrics_port']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name.startswith("payments_store_")
    }


@pytest.fixture
def capped() -> Iterator[ServerProcess]:
    process = ServerProcess(
        PAYMENTS_MEMORY_STORE_MAX_MIB=str(CAP_MIB), PAYMENTS_METRICS_ADDRESS="127.0.0.1:0"
    )
    yield process
    process.stop()


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
def test_a_full_server_refuses_new_payments_and_its_rss_stays_within_cap_plus_overhead(
    capped: ServerProcess, value: str
) -> None:
    started_rss = rss(capped.proc.pid)
    fits = CAP_MIB * MIB // 45_000  # payments the cap holds if nothing else is counted
    stored: list[pb.RequestPaymentResponse] = []
    with grpc.insecure_channel(f"127.0.0.1:{capped.port}") as channel:
        stub = pb_grpc.PaymentServiceStub(channel)
        first_refusal: grpc.RpcError | None = None
        for n in range(3 * fits):
            try:
                stored.append(stub.RequestPayment(largest(n, value), timeout=10))
            except grpc.RpcError as error:
                first_refusal = error
                break
        if first_refusal is None:
            pytest.fail(f"{3 * fits} of the largest payments fit in {CAP_MIB} MiB")
        assert first_refusal.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "store is full" in (first_refusal.details() or "")
        # Keep pushing: refusals store nothing, replays and lookups still answer.
        for n in range(100):
            with pytest.raises(grpc.RpcError) as refused:
                stub.RequestPayment(largest(10_000 + n, value), timeout=10)
            assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert stub.RequestPayment(largest(n % len(stored), value)) == stored[n % len(stored)]
        found = stub.GetPayment(pb.GetPaymentRequest(payment_id=stored[-1].payment_id))
        assert found.payment_id == stored[-1].payment_id
        final_rss = rss(capped.proc.pid)

    assert 0.9 * fits <= len(stored) <= fits
    assert final_rss - started_rss <= (CAP_MIB + ALLOWANCE_MIB) * MIB, (
        f"RSS grew {(final_rss - started_rss) / MIB:.1f} MiB for a {CAP_MIB} MiB cap"
    )
    gauges = scrape(capped)
    assert gauges["payments_store_payments"] == len(stored)
    assert gauges["payments_store_bytes"] <= gauges["payments_store_max_bytes"] == CAP_MIB * MIB
    assert gauges["payments_store_rejected_full_total"] == 101


def test_the_expiry_timer_empties_the_store_without_any_new_call() -> None:
    server = ServerProcess(
        PAYMENTS_IDEMPOTENCY_TTL_SECONDS="2", PAYMENTS_METRICS_ADDRESS="127.0.0.1:0"
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.PaymentServiceStub(channel)
            for n in range(3):
                stub.RequestPayment(largest(n, "v"), timeout=10)
        assert scrape(server)["payments_store_payments"] == 3
        deadline = time.monotonic() + 10
        while scrape(server)["payments_store_payments"] > 0:  # poll with a deadline
            assert time.monotonic() < deadline, "the store was not emptied by the timer"
            time.sleep(0.05)
    finally:
        server.stop()
