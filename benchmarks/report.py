"""Summaries, ratios, targets and the Markdown the benchmark prints.

Every number comes from a measurement dict made by `benchmarks.run`; the per-configuration
value is the median over rounds, and ratios are computed from those medians.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from payments_service.reference import markdown_table

# The primary figure: server CPU per call. The client cannot distort it (throughput and latency
# it can: a saturated client, a busy machine), so it comes first and ratios are computed on it
# first; throughput and p99 stay as secondary figures.
PRIMARY = "server_cpu_us_per_call"
# A round whose load generator used more than this share of its cores (or one worker more than
# this share of one core) measured the client.
CLIENT_BOUND_PCT = 90.0
FLAG = "flag"  # the format of a yes/no column

# (label, key, format) of the columns of the summary table (medians over rounds)
COLUMNS = (
    ("server CPU µs/call", PRIMARY, "{:.0f}"),
    ("calls/s", "throughput", "{:.0f}"),
    ("p50 ms", "p50_ms", "{:.2f}"),
    ("p95 ms", "p95_ms", "{:.2f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("client CPU µs/call", "client_cpu_us_per_call", "{:.0f}"),
    ("server peak RSS MiB", "peak_rss_mib", "{:.1f}"),
    ("client-bound rounds", "client_bound_rounds", "{:.0f}"),
    ("errors", "errors", "{:.0f}"),
)
ROUND_COLUMNS = (
    ("server CPU µs/call", PRIMARY, "{:.0f}"),
    ("calls/s", "throughput", "{:.0f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("server CPU % of its cores", "server_cpu_pct", "{:.0f}"),
    ("client CPU µs/call", "client_cpu_us_per_call", "{:.0f}"),
    ("client CPU % of its cores", "client_cpu_pct", "{:.0f}"),
    ("client-bound", "client_bound", FLAG),
    ("server cores busy %", "server_cores_busy_pct", "{:.0f}"),
    ("client cores busy %", "client_cores_busy_pct", "{:.0f}"),
    ("errors", "errors", "{:.0f}"),
)
# Shown (before `errors`) when a PostgreSQL configuration ran: the CPU of the database backends
# serving the measurement, per call (not PostgreSQL's WAL writer or checkpointer).
DB_COLUMN = ("db CPU µs/call", "db_cpu_us_per_call", "{:.0f}")
MEDIAN_KEYS = (
    PRIMARY,
    "throughput",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "client_cpu_us_per_call",
    "peak_rss_mib",
    "server_cpu_pct",
    "client_cpu_pct",
    "host_busy_pct",
    "server_cores_busy_pct",
    "client_cores_busy_pct",
)
OPTIONAL_MEDIAN_KEYS = ("db_cpu_us_per_call",)  # absent or None in some configurations
# Every pair is compared on each metric, server CPU per call first: (label, key).
RATIO_METRICS = (("CPU/call", PRIMARY), ("throughput", "throughput"), ("p99", "p99_ms"))
# (numerator config, denominator config)
RATIO_PAIRS = (
    ("full", "floor"),
    ("off", "floor"),
    ("full", "off"),
    ("full", "proto"),
    ("proto", "floor"),
    ("floor-sync", "floor"),
    # The JSON/HTTP transport (`http`: full signals over HTTP) against gRPC, and their floors
    ("http", "full"),
    ("http-floor", "floor"),
    ("http", "http-floor"),
    # The durable stores against the in-memory one (`full` = full on memory), and the floor
    ("full-sqlite", "full"),
    ("full-sqlite-normal", "full"),
    ("full-postgresql", "full"),
    ("full-sqlite", "floor"),
    ("full-sqlite-normal", "floor"),
    ("full-postgresql", "floor"),
    ("full-sqlite-normal", "full-sqlite"),
    # The stores without the observability layer (`off-<store>`, named in --configs)
    ("off-sqlite", "off"),
    ("off-sqlite-normal", "off"),
    ("off-postgresql", "off"),
)
VARIANT_MARK = "@"  # `full@before`: `full` served from the source tree of `--variant before=SRC`
# Replicas: every `<config>-xN` that ran is also compared with `<config>` (one process).
# Variants: every `<config>` that ran is compared with `<config>@NAME` (this tree / that tree).


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    op: str  # ">=", "<=" or "=="
    threshold: float
    why: str
    stretch: float | None = None  # a better value worth naming; not checked

    def check(self, value: float | None) -> str:
        if value is None:
            return "n/a"
        ok = {
            ">=": value >= self.threshold,
            "<=": value <= self.threshold,
            "==": value == self.threshold,
        }[self.op]
        return "PASS" if ok else "FAIL"


# Issue 19's targets, on the honest bench (server pinned, client not saturated, medians of >= 3
# interleaved rounds). The last four (`RunChecks`) say whether the run measured the server at all.
TARGETS = (
    Target(
        "CPU/call full/floor",
        "<=",
        2.0,
        "the whole service, observability included, costs at most twice what Python gRPC needs "
        "per call",
    ),
    Target(
        "CPU/call off/floor",
        "<=",
        1.3,
        "the service's own work (validation, idempotency, settlement, request ids) costs at "
        "most 30 % over the floor",
    ),
    Target("throughput full/floor", ">=", 0.35, "secondary: the same, as sustained calls/s", 0.45),
    Target("throughput off/floor", ">=", 0.60, "secondary: the same, without observability", 0.75),
    Target(
        "throughput full/proto",
        ">=",
        0.9,
        "the service is within 10 % of the cheapest honest server with the same signals",
    ),
    Target(
        "throughput http/full",
        ">=",
        0.6,
        "JSON/HTTP with every signal on keeps most of gRPC's throughput",
    ),
    Target("p99 full/floor", "<=", 2.5, "tail latency stays within 2.5x the floor"),
    Target(
        "throughput full-sqlite/full",
        ">=",
        0.7,
        "a durable store keeps most of the in-memory throughput",
    ),
    Target(
        "throughput full-postgresql/full",
        ">=",
        0.6,
        "the same, with PostgreSQL on the same machine",
    ),
    Target("errors", "==", 0, "a benchmark that fails calls measures nothing"),
    Target("client-bound rounds", "==", 0, "a client-bound round measured the client"),
    Target(
        "server pinned apart from the client",
        "==",
        1,
        "otherwise throughput and latency measure both",
    ),
    Target(
        "interleaved rounds",
        ">=",
        3,
        "a median of fewer rounds cannot set an outlier aside; a shorter run is a smoke test, "
        "not a result",
    ),
)

_OPS = {"<=": "≤", ">=": "≥", "==": "="}


def targets_reference() -> str:
    """benchmarks/README.md's targets table, rendered by `make docs`."""
    rows = []
    for t in TARGETS:
        stretch = "" if t.stretch is None else f" (stretch {t.stretch:g})"
        rows.append((f"{t.name} {_OPS[t.op]} {t.threshold:g}{stretch}", t.why))
    return markdown_table(("target", "why"), rows)


@dataclass(frozen=True, slots=True)
class RunChecks:
    """What a run says about itself: a run with errors, client-bound rounds, server and client on
    the same cores, or fewer than 3 rounds to take medians of, fails its own targets."""

    errors: int
    client_bound_rounds: int
    pinned: bool
    rounds: int

    def values(self) -> dict[str, float]:
        return {
            "errors": float(self.errors),
            "client-bound rounds": float(self.client_bound_rounds),
            "server pinned apart from the client": float(self.pinned),
            "interleaved rounds": float(self.rounds),
        }


COUNTS = tuple(RunChecks(0, 0, pinned=True, rounds=0).values())  # shown as integers


def percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of an ascending list; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[rank - 1])


def client_bound(client_cpu_pct: float, busiest_worker_pct: float) -> bool:
    """True when the load generator used more than CLIENT_BOUND_PCT of its cores, or one of its
    processes (an event loop: one core at most) more than that of one core: the round measured
    the client, not the server."""
    return max(client_cpu_pct, busiest_worker_pct) > CLIENT_BOUND_PCT


def medians(rounds: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per-metric median over the rounds of one configuration; errors and client-bound rounds
    are summed. An optional metric is the median of the rounds that have it, None when none
    has."""
    summary: dict[str, float | None] = {
        key: statistics.median(r[key] for r in rounds) for key in MEDIAN_KEYS
    }
    for key in OPTIONAL_MEDIAN_KEYS:
        values = [r[key] for r in rounds if r.get(key) is not None]
        summary[key] = statistics.median(values) if values else None
    summary["errors"] = sum(r["errors"] for r in rounds)
    summary["client_bound_rounds"] = sum(bool(r["client_bound"]) for r in rounds)
    return summary


def ratios(by_config: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """Every RATIO_PAIRS pair on each RATIO_METRICS metric, server CPU per call first (None
    where a configuration did not run), then the same for every replicated configuration
    against the same on one process, and for this tree against every variant."""
    pairs = list(RATIO_PAIRS)
    for config in by_config:
        single, sep, count = config.rpartition("-x")
        if sep and count.isdigit() and single in by_config:
            pairs.append((config, single))
        base, mark, _ = config.partition(VARIANT_MARK)
        if mark and base in by_config:
            pairs.append((base, config))
    result: dict[str, float | None] = {}
    for label, key in RATIO_METRICS:
        for top, bottom in pairs:
            name = f"{label} {top}/{bottom}"
            if top in by_config and bottom in by_config and by_config[bottom][key]:
                result[name] = by_config[top][key] / by_config[bottom][key]
            else:
                result[name] = None
    return result


def targets(ratio_values: dict[str, float | None], run: RunChecks) -> list[dict[str, Any]]:
    values = {**ratio_values, **run.values()}
    return [
        {
            "name": t.name,
            "op": t.op,
            "threshold": t.threshold,
            "value": values.get(t.name),
            "result": t.check(values.get(t.name)),
        }
        for t in TARGETS
    ]


def client_bound_line(rounds: list[tuple[str, dict[str, Any]]]) -> str:
    """The summary's verdict on the load generator, naming every client-bound round."""
    bound = [(name, r) for name, r in rounds if r["client_bound"]]
    if not bound:
        return (
            f"Load generator: below {CLIENT_BOUND_PCT:g} % of its cores in {len(rounds)} of "
            f"{len(rounds)} rounds (none client-bound)."
        )
    named = ", ".join(f"{name} ({r['client_cpu_pct']:.0f} %)" for name, r in bound)
    return (
        f"**{len(bound)} of {len(rounds)} rounds were client-bound** (load generator above "
        f"{CLIENT_BOUND_PCT:g} % of its cores): {named}. Those rounds measured the client: their "
        "calls/s and p99 understate the server; their server CPU µs/call is still the server's."
    )


def _cell(fmt: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if fmt == FLAG:
        return "**YES**" if value else "no"
    return fmt.format(value)


def table(rows: list[tuple[str, dict[str, Any]]], columns: tuple[tuple[str, str, str], ...]) -> str:
    head = ["configuration", *(label for label, _, _ in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in rows:
        cells = [name, *(_cell(fmt, row.get(key)) for _, key, fmt in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio_lines(ratio_values: dict[str, float | None]) -> str:
    """One line per ratio; a ratio whose configurations did not run is left out."""
    return "\n".join(
        f"- {name}: {_cell('{:.3f}', value)}"
        for name, value in ratio_values.items()
        if value is not None
    )


def target_lines(checks: list[dict[str, Any]]) -> str:
    """One line per target; a target whose configurations did not run is left out."""
    lines = []
    for check in checks:
        if check["value"] is None:
            continue
        threshold = _cell("{:g}", check["threshold"])
        value = _cell("{:.0f}" if check["name"] in COUNTS else "{:.3f}", check["value"])
        lines.append(f"- {check['name']} {check['op']} {threshold}: {value} **{check['result']}**")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "platform": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def machine_line(info: dict[str, Any]) -> str:
    load = ", ".join(f"{v:.2f}" for v in info["loadavg_at_start"])
    return (
        f"Machine: {info['cpu_model']}, {info['cores']} cores "
        f"({info['cores_usable']} usable), Python {info['python']}, grpcio {info['grpcio']}, "
        f"{info['platform']}; load average at start {load}; date {info['date']}"
    )
