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

# (label, key, format) of the columns of the summary table
COLUMNS = (
    ("calls/s", "throughput", "{:.0f}"),
    ("p50 ms", "p50_ms", "{:.2f}"),
    ("p95 ms", "p95_ms", "{:.2f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("server CPU µs/call", "server_cpu_us_per_call", "{:.0f}"),
    ("server peak RSS MiB", "peak_rss_mib", "{:.1f}"),
    ("errors", "errors", "{:.0f}"),
)
ROUND_COLUMNS = (
    ("calls/s", "throughput", "{:.0f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("server CPU µs/call", "server_cpu_us_per_call", "{:.0f}"),
    ("server CPU %", "server_cpu_pct", "{:.0f}"),
    ("client CPU µs/call", "client_cpu_us_per_call", "{:.0f}"),
    ("host busy %", "host_busy_pct", "{:.0f}"),
    ("errors", "errors", "{:.0f}"),
)
# Shown (before `errors`) when a PostgreSQL configuration ran: the CPU of the database backends
# serving the measurement, per call (not PostgreSQL's WAL writer or checkpointer).
DB_COLUMN = ("db CPU µs/call", "db_cpu_us_per_call", "{:.0f}")
MEDIAN_KEYS = (
    *(key for _, key, _ in COLUMNS if key != "errors"),
    "server_cpu_pct",
    "client_cpu_us_per_call",
    "host_busy_pct",
)
OPTIONAL_MEDIAN_KEYS = ("db_cpu_us_per_call",)  # absent or None in some configurations
# (name, numerator config, denominator config, metric)
RATIOS = (
    ("throughput full/off", "full", "off", "throughput"),
    ("throughput full/floor", "full", "floor", "throughput"),
    ("throughput off/floor", "off", "floor", "throughput"),
    ("p99 full/floor", "full", "floor", "p99_ms"),
    ("CPU/call full/floor", "full", "floor", "server_cpu_us_per_call"),
    ("throughput floor-sync/floor", "floor-sync", "floor", "throughput"),
    ("CPU/call floor-sync/floor", "floor-sync", "floor", "server_cpu_us_per_call"),
    # The durable stores against the in-memory one (`full` = full on memory), and the floor
    ("throughput full-sqlite/full", "full-sqlite", "full", "throughput"),
    ("throughput full-sqlite-normal/full", "full-sqlite-normal", "full", "throughput"),
    ("throughput full-postgresql/full", "full-postgresql", "full", "throughput"),
    ("throughput full-sqlite/floor", "full-sqlite", "floor", "throughput"),
    ("throughput full-sqlite-normal/floor", "full-sqlite-normal", "floor", "throughput"),
    ("throughput full-postgresql/floor", "full-postgresql", "floor", "throughput"),
    (
        "throughput full-sqlite-normal/full-sqlite",
        "full-sqlite-normal",
        "full-sqlite",
        "throughput",
    ),
    ("p99 full-sqlite/full", "full-sqlite", "full", "p99_ms"),
    ("p99 full-postgresql/full", "full-postgresql", "full", "p99_ms"),
    ("CPU/call full-sqlite/full", "full-sqlite", "full", "server_cpu_us_per_call"),
    ("CPU/call full-postgresql/full", "full-postgresql", "full", "server_cpu_us_per_call"),
    # The stores without the observability layer (`off-<store>`, named in --configs)
    ("throughput off-sqlite/off", "off-sqlite", "off", "throughput"),
    ("throughput off-sqlite-normal/off", "off-sqlite-normal", "off", "throughput"),
    ("throughput off-postgresql/off", "off-postgresql", "off", "throughput"),
    ("CPU/call off-sqlite/off", "off-sqlite", "off", "server_cpu_us_per_call"),
    ("CPU/call off-postgresql/off", "off-postgresql", "off", "server_cpu_us_per_call"),
)
# Replicas: every `<config>-xN` that ran is also compared with `<config>` (one process), by
# throughput and by server CPU per call (summed over the replicas).
REPLICA_METRICS = (("throughput", "throughput"), ("CPU/call", "server_cpu_us_per_call"))


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    op: str  # ">=", "<=" or "=="
    threshold: float

    def check(self, value: float | None) -> str:
        if value is None:
            return "n/a"
        ok = {
            ">=": value >= self.threshold,
            "<=": value <= self.threshold,
            "==": value == self.threshold,
        }[self.op]
        return "PASS" if ok else "FAIL"


# Issue 9's targets: observability off the critical path (stretch goal for full/floor: 0.75).
TARGETS = (
    Target("throughput full/floor", ">=", 0.60),
    Target("throughput full/off", ">=", 0.80),
    Target("throughput off/floor", ">=", 0.75),
    Target("p99 full/floor", "<=", 2.0),
    Target("CPU/call full/floor", "<=", 1.7),
    # Issue 11: durable stores, with PostgreSQL on the same 2-core machine
    Target("throughput full-sqlite/full", ">=", 0.7),
    Target("throughput full-postgresql/full", ">=", 0.6),
    Target("errors", "==", 0),
)


def percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of an ascending list; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return float(sorted_values[rank - 1])


def medians(rounds: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per-metric median over the rounds of one configuration; errors are summed. An optional
    metric is the median of the rounds that have it, None when none has."""
    summary: dict[str, float | None] = {
        key: statistics.median(r[key] for r in rounds) for key in MEDIAN_KEYS
    }
    for key in OPTIONAL_MEDIAN_KEYS:
        values = [r[key] for r in rounds if r.get(key) is not None]
        summary[key] = statistics.median(values) if values else None
    summary["errors"] = sum(r["errors"] for r in rounds)
    return summary


def ratios(by_config: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """RATIOS (None where a configuration did not run), then one throughput and one CPU/call
    ratio for every replicated configuration against the same on one process."""
    pairs = [(name, top, bottom, key) for name, top, bottom, key in RATIOS]
    for config in by_config:
        single, sep, count = config.rpartition("-x")
        if sep and count.isdigit() and single in by_config:
            pairs += [
                (f"{label} {config}/{single}", config, single, key)
                for label, key in REPLICA_METRICS
            ]
    result: dict[str, float | None] = {}
    for name, top, bottom, key in pairs:
        if top in by_config and bottom in by_config and by_config[bottom][key]:
            result[name] = by_config[top][key] / by_config[bottom][key]
        else:
            result[name] = None
    return result


def targets(ratio_values: dict[str, float | None], errors: int) -> list[dict[str, Any]]:
    values = {**ratio_values, "errors": float(errors)}
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


def _cell(fmt: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
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
        value = _cell("{:.3f}" if check["name"] != "errors" else "{:.0f}", check["value"])
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
