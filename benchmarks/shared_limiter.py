"""What a rate limiter shared by every replica would cost: one PostgreSQL round trip per call.

`make bench-shared-limiter` runs the statement such a limiter needs (a token bucket per merchant
as one upsert, refilled from the row's last update) from `--workers` concurrent tasks over
`--connections` connections, like the server's store does, on one hot merchant row (every
replica's calls would lock it in turn). It reports the statement's cost per call: the client
CPU it adds to the server process (the server is CPU-bound, so this is the throughput it would
lose), the PostgreSQL CPU, and the latency. docs/calling-reliably.md compares it with full on
PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
import uuid
from dataclasses import dataclass

import asyncpg

from benchmarks.procs import cpu_seconds
from benchmarks.stores import (
    BENCH_DATABASE_URL,
    DEFAULT_DATABASE_URL,
    bench_location,
    with_database,
)

UPSERT = """
INSERT INTO rate_buckets AS b (merchant, tokens, updated) VALUES ($1, $2 - 1, clock_timestamp())
ON CONFLICT (merchant) DO UPDATE SET
    tokens = LEAST($2, b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.updated) * $3) - 1,
    updated = clock_timestamp()
RETURNING tokens
"""


@dataclass(frozen=True, slots=True)
class Result:
    calls: int
    seconds: float
    client_cpu_us: float  # per call, this process
    db_cpu_us: float  # per call, the PostgreSQL backends
    p50_ms: float
    p99_ms: float


async def _measure(url: str, workers: int, connections: int, duration: float) -> Result:
    location = bench_location({BENCH_DATABASE_URL: url})
    database = f"payments_bench_limiter_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(location.dsn, password=location.password, timeout=10)
    await admin.execute(f'CREATE DATABASE "{database}"')
    try:
        db = bench_location({BENCH_DATABASE_URL: with_database(url, database)})
        pool = [
            await asyncpg.connect(db.dsn, password=db.password, timeout=10)
            for _ in range(connections)
        ]
        await pool[0].execute(
            "CREATE TABLE rate_buckets (merchant text PRIMARY KEY, tokens double precision "
            "NOT NULL, updated timestamptz NOT NULL)"
        )
        pids = [conn.get_server_pid() for conn in pool]
        idle: asyncio.Queue[asyncpg.Connection] = asyncio.Queue()
        for conn in pool:
            idle.put_nowait(conn)
        latencies: list[float] = []
        deadline = time.monotonic() + duration

        async def worker() -> None:
            while time.monotonic() < deadline:
                conn = await idle.get()
                started = time.perf_counter()
                try:
                    await conn.fetchval(UPSERT, "merchant-1", 1_000_000.0, 500.0)
                finally:
                    idle.put_nowait(conn)
                latencies.append(time.perf_counter() - started)

        db_before = sum(cpu_seconds(pid) for pid in pids)
        cpu_before, wall_before = time.process_time(), time.monotonic()
        await asyncio.gather(*(worker() for _ in range(workers)))
        cpu, wall = time.process_time() - cpu_before, time.monotonic() - wall_before
        db_cpu = sum(cpu_seconds(pid) for pid in pids) - db_before
        for conn in pool:
            await conn.close()
    finally:
        with contextlib.suppress(Exception):
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    calls = len(latencies)
    cuts = statistics.quantiles(latencies, n=100)
    return Result(
        calls, wall, cpu / calls * 1e6, db_cpu / calls * 1e6, cuts[49] * 1e3, cuts[98] * 1e3
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    raw = os.environ.get(BENCH_DATABASE_URL) or DEFAULT_DATABASE_URL
    results = [
        asyncio.run(_measure(raw, args.workers, args.connections, args.duration))
        for _ in range(args.rounds)
    ]
    print("round  calls/s  client CPU us/call  db CPU us/call  p50 ms  p99 ms")
    for n, r in enumerate(results, start=1):
        print(
            f"{n:5}  {r.calls / r.seconds:7.0f}  {r.client_cpu_us:18.1f}  {r.db_cpu_us:14.1f}"
            f"  {r.p50_ms:6.2f}  {r.p99_ms:6.2f}"
        )
    print(
        "median client CPU us/call "
        f"{statistics.median(r.client_cpu_us for r in results):.1f}, db CPU us/call "
        f"{statistics.median(r.db_cpu_us for r in results):.1f}"
    )


if __name__ == "__main__":
    main()
