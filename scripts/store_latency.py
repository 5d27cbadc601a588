"""Measure store latency once (not a test, nothing asserted): claim and record, sequential,
then claims at concurrency 32, for memory, SQLite and PostgreSQL.

    .venv/bin/python scripts/store_latency.py [postgresql://postgres@127.0.0.1:5432/test]

PostgreSQL runs in a schema of its own, dropped afterwards. docs/storage.md quotes a run.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from payments_service.adapters.stores.memory import InMemoryPaymentRepository
from payments_service.adapters.stores.postgres import PostgresPaymentRepository
from payments_service.adapters.stores.sqlite import SqlitePaymentRepository
from payments_service.adapters.system import SystemClock
from payments_service.config import Settings
from payments_service.domain.model import Outcome, Payment, PaymentRequest, PaymentStatus

if TYPE_CHECKING:
    from payments_service.domain.ports import PaymentRepository

N = 2000
CONCURRENCY = 32
CLOCK = SystemClock()
SETTINGS = Settings()  # the service's defaults, but a pool of CONCURRENCY
LEASE = timedelta(seconds=SETTINGS.settlement_lease_seconds)
PENDING = Outcome(PaymentStatus.PENDING, "processing")
DONE = Outcome(PaymentStatus.SUCCEEDED, "ok")


def candidate(key: str) -> Payment:
    request = PaymentRequest(1250, "EUR", "order", key, {"note": "x"}, merchant_id="default")
    now = CLOCK.now()
    return Payment(f"pay_{uuid.uuid4().hex}", request, request.fingerprint(), now, now, PENDING)


async def measure(name: str, repository: PaymentRepository) -> None:
    claims: list[float] = []
    records: list[float] = []
    for i in range(N):
        payment = candidate(f"{name}-seq-{i}")
        started = time.perf_counter()
        await repository.claim(payment)
        claims.append(time.perf_counter() - started)
        started = time.perf_counter()
        await repository.record(
            payment.payment_id, at=CLOCK.now(), outcome=DONE, first_response=DONE
        )
        records.append(time.perf_counter() - started)
    started = time.perf_counter()
    await asyncio.gather(*(repository.claim(candidate(f"{name}-par-{i}")) for i in range(N)))
    parallel = N / (time.perf_counter() - started)

    def ms(values: list[float], q: int) -> str:
        return f"{statistics.quantiles(values, n=100)[q - 1] * 1000:.3f}"

    print(
        f"{name:<11} claim p50 {ms(claims, 50)} ms p99 {ms(claims, 99)} ms | "
        f"record p50 {ms(records, 50)} ms | "
        f"claims/s, {N} at once (pool {CONCURRENCY}): {parallel:,.0f}"
    )


async def main() -> None:
    ttl = timedelta(hours=1)
    await measure("memory", InMemoryPaymentRepository(ttl=ttl, clock=CLOCK))
    with tempfile.TemporaryDirectory() as folder:
        sqlite = await SqlitePaymentRepository.open(
            str(Path(folder) / "p.db"),
            ttl=ttl,
            clock=CLOCK,
            lease=LEASE,
            synchronous=SETTINGS.store_sqlite_synchronous,
        )
        await measure("sqlite", sqlite)
        await sqlite.close()
    if len(sys.argv) > 1:
        schema = f"latency_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(sys.argv[1])
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            postgres = await PostgresPaymentRepository.open(
                f"{sys.argv[1]}?search_path={schema}",
                password=None,
                ttl=ttl,
                clock=CLOCK,
                lease=LEASE,
                pool_size=CONCURRENCY,
                operation_timeout=SETTINGS.store_timeout_seconds,
            )
            await measure("postgresql", postgres)
            await postgres.close()
        finally:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
