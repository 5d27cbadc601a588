"""Calibrate the in-memory store's accounting against what CPython really allocates.

For each payload shape, stores N payments through the real path (protobuf decode ->
PaymentService.request_payment -> settlement recorded) in a fresh store, and compares, per
payment: the bytes tracemalloc saw allocated and kept, the VmRSS growth, and the store's
accounted bytes (`payment_size`). The accounting must not undercount any shape.

    .venv/bin/python scripts/measure_memory_store.py [N]
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import tracemalloc
from datetime import timedelta
from pathlib import Path

from payments_service.adapters.simulated_processor import SimulatedProcessor
from payments_service.adapters.stores.memory import (
    ENTRY_OVERHEAD_BYTES,
    METADATA_ITEM_OVERHEAD_BYTES,
    InMemoryPaymentRepository,
)
from payments_service.adapters.system import RandomPaymentIds, SystemClock
from payments_service.application.service import PaymentService
from payments_service.config import Settings
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.observability.logs import configure_logging

EMOJI = "\U0001f600"  # four UTF-8 bytes, four bytes per character in CPython


def shape(name: str, i: int) -> pb.RequestPaymentRequest:
    """Request `i` of a payload shape, decoded from bytes as the server receives it."""
    if name == "minimal":
        order_id, key, metadata = "o", f"k{i}", {}
    elif name == "typical":
        order_id, key = f"order-{i:08d}", f"3f2a6c1e-9b7d-4e21-8a5f-{i:012d}"
        metadata = {"customer": "cus_1234567890", "channel": "web"}
    else:
        value = EMOJI * 500 if name == "largest" else "a" * 499 + EMOJI
        order_id, key = "o" * 128, f"{i:08d}" + "k" * 247
        metadata = {f"{j:02d}" + "m" * 38: value for j in range(20)}
    wire = pb.RequestPaymentRequest(
        amount_minor=100, currency="EUR", order_id=order_id, idempotency_key=key, metadata=metadata
    )
    return pb.RequestPaymentRequest.FromString(wire.SerializeToString())


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def measure(name: str, count: int, *, trace: bool) -> tuple[float, float, int]:
    """Per payment: bytes kept (tracemalloc if `trace`, else VmRSS growth), and the accounted
    bytes; plus the store's fixed overhead left once the strings are taken out."""
    repository = InMemoryPaymentRepository(ttl=timedelta(hours=1), clock=SystemClock())
    service = PaymentService(
        repository=repository,
        processor=SimulatedProcessor(slow_delay=0),
        clock=SystemClock(),
        ids=RandomPaymentIds(),
    )
    await submit(service, shape(name, -1))  # warm every code path once
    base = repository.stats().bytes_used
    gc.collect()
    if trace:
        tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0] if trace else rss_bytes()
    for i in range(count):
        await submit(service, shape(name, i))
    await service.drain(10)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] if trace else rss_bytes()
    tracemalloc.stop()
    accounted = (repository.stats().bytes_used - base) / count
    return (after - before) / count, accounted, len(repository)


async def submit(service: PaymentService, request: pb.RequestPaymentRequest) -> None:
    await service.request_payment(
        merchant_id="default",
        amount_minor=request.amount_minor,
        currency=request.currency,
        order_id=request.order_id,
        idempotency_key=request.idempotency_key,
        metadata=request.metadata,
    )


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
    if len(sys.argv) > 2:  # one measurement, in a fresh process: python ... N SHAPE MODE
        configure_logging(Settings(log_level="warning"))
        kept, accounted, _ = asyncio.run(measure(sys.argv[2], count, trace=sys.argv[3] == "trace"))
        print(f"{kept:.0f} {accounted:.0f}")
        return
    print(
        f"python {sys.version.split()[0]}, N={count}, ENTRY_OVERHEAD_BYTES={ENTRY_OVERHEAD_BYTES},"
        f" METADATA_ITEM_OVERHEAD_BYTES={METADATA_ITEM_OVERHEAD_BYTES}; bytes per payment:\n"
        f"{'shape':<10}{'tracemalloc':>12}{'VmRSS':>10}{'accounted':>10}"
        f"{'acc/trace':>10}{'acc/rss':>9}"
    )
    for name in ("minimal", "typical", "mixed", "largest"):
        runs = {}
        for mode in ("trace", "rss"):
            out = subprocess.run(  # noqa: S603 - this script, fixed arguments
                [sys.executable, __file__, str(count), name, mode],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            runs[mode] = (float(out[0]), float(out[1]))
        (kept, accounted), (rss, _) = runs["trace"], runs["rss"]
        print(
            f"{name:<10}{kept:>12.0f}{rss:>10.0f}{accounted:>10.0f}"
            f"{accounted / kept:>10.2f}{accounted / rss:>9.2f}"
        )


if __name__ == "__main__":
    main()
