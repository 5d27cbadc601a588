"""Soak: many new payments at steady load against ONE `full` server with a short idempotency
TTL, sampling the server's RSS (VmRSS) every second.

The in-memory store evicts expired payments on each new claim, so after one TTL it holds
(rate x TTL) payments and memory should plateau. The curve's start is the first sample taken
at least TTL + SETTLE_S seconds into the measured phase (the store is then at its steady
size); the end is the last sample before the load stopped. Target: growth <= 10 %.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from benchmarks.loadgen import LoadSpec, WindowHooks, run_load
from benchmarks.measure import CpuWatch, scrape_handled, start_server, start_sink, summarise
from benchmarks.procs import ProcessSet, status_kib

if TYPE_CHECKING:
    from benchmarks.pinning import Pinning

SETTLE_S = 5.0
MAX_GROWTH_PCT = 10.0


@dataclass(frozen=True, slots=True)
class SoakPlan:
    payments: int
    ttl_s: float
    concurrency: int
    workers: int
    warmup_s: float
    pinning: Pinning


@dataclass(slots=True)
class RssSampler:
    pid: int
    interval_s: float = 1.0
    t0: float = 0.0
    last: float = 0.0
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds, KiB)

    def started(self) -> None:
        self.t0 = time.monotonic()
        self.sample()

    def tick(self) -> None:
        if time.monotonic() - self.last >= self.interval_s * 0.95:
            self.sample()

    def sample(self) -> None:
        self.last = time.monotonic()
        self.samples.append((self.last - self.t0, status_kib(self.pid, "VmRSS")))


def analyse(samples: list[tuple[float, int]], ttl_s: float) -> dict[str, Any]:
    """Start (first sample at >= TTL + SETTLE_S), end (last sample), growth and verdict."""
    settled = [s for s in samples if s[0] >= ttl_s + SETTLE_S]
    if len(settled) < 2:
        return {"result": "n/a", "reason": "the run ended before the store reached steady size"}
    (t_start, start), (t_end, end) = settled[0], settled[-1]
    growth = (end - start) / start * 100
    return {
        "start_s": t_start,
        "start_rss_mib": start / 1024,
        "end_s": t_end,
        "end_rss_mib": end / 1024,
        "growth_pct": growth,
        "max_growth_pct": MAX_GROWTH_PCT,
        "result": "PASS" if growth <= MAX_GROWTH_PCT else "FAIL",
    }


def run_soak(procs: ProcessSet, plan: SoakPlan) -> dict[str, Any]:
    label = "soak"
    sink = start_sink(procs, label, plan.pinning)
    server = start_server(
        procs,
        "full",
        label,
        sink,
        plan.pinning,
        PAYMENTS_IDEMPOTENCY_TTL_SECONDS=f"{plan.ttl_s:g}",
    )
    rss = RssSampler(server.pid)
    cpu = CpuWatch({"server": server.pid, "sink": sink.pid}, plan.pinning)

    def started() -> None:
        cpu.started()
        rss.started()

    def ended() -> None:
        rss.sample()
        cpu.ended()

    spec = LoadSpec(
        targets=(f"127.0.0.1:{server.port}",),
        workload="new",
        concurrency=plan.concurrency,
        workers=plan.workers,
        warmup_s=plan.warmup_s,
        duration_s=0.0,
        total_calls=plan.payments,
        tag=f"{label}-{uuid.uuid4().hex[:8]}",
        cpus=plan.pinning.client if plan.pinning.pinned else None,
    )
    hooks = WindowHooks(spawned=cpu.spawned, started=started, ended=ended, tick=rss.tick)
    load = run_load(spec, hooks)
    handled = scrape_handled(int(server.started["metrics_port"]))
    result = summarise(load, cpu, status_kib(server.pid, "VmHWM"))
    result["server_non_ok"] = sum(handled.values()) - handled.get("OK", 0.0)
    result["server_exit_status"] = procs.stop(server)
    procs.stop(sink)
    return {
        "plan": {"payments": plan.payments, "ttl_s": plan.ttl_s, "settle_s": SETTLE_S},
        "load": result,
        "rss": analyse(rss.samples, plan.ttl_s),
        "rss_curve": [{"t_s": round(t, 2), "rss_kib": kib} for t, kib in rss.samples],
    }


def soak_markdown(soak: dict[str, Any]) -> str:
    load, rss, plan = soak["load"], soak["rss"], soak["plan"]
    head = (
        "| payments | duration s | calls/s | p99 ms | errors | TTL s "
        "| RSS start MiB (t) | RSS end MiB (t) | growth % | ≤ 10 % |"
    )
    if rss["result"] == "n/a":
        cells = ["n/a"] * 3 + ["n/a"]
    else:
        cells = [
            f"{rss['start_rss_mib']:.1f} ({rss['start_s']:.0f} s)",
            f"{rss['end_rss_mib']:.1f} ({rss['end_s']:.0f} s)",
            f"{rss['growth_pct']:.1f}",
            f"**{rss['result']}**",
        ]
    row = [
        f"{load['calls']}",
        f"{load['window_s']:.0f}",
        f"{load['throughput']:.0f}",
        f"{load['p99_ms']:.2f}",
        f"{load['client_errors']} client, {load['server_non_ok']:.0f} server",
        f"{plan['ttl_s']:g}",
        *cells,
    ]
    return "\n".join([head, "|" + "---|" * 10, "| " + " | ".join(row) + " |"])
