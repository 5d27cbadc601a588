"""One measurement: a fresh server (and, for `full`, a fresh OTLP sink) on free ports, one
closed-loop load run against it, and what the clients, /proc and the server itself report.

Configurations:
- `full`: `payments-server` with every signal on: 100 % of calls traced and exported over
  OTLP/gRPC to `benchmarks.otlp_sink` (another process), Prometheus metrics on 127.0.0.1:0, and
  JSON access logs on stdout, redirected to a file;
- `off`: the same server with OTEL_SDK_DISABLED=true, PAYMENTS_METRICS_ADDRESS=off and
  PAYMENTS_ACCESS_LOG=off (the service's own domain log lines, e.g. `payment_created`, stay);
- `floor`: `benchmarks.floor_server`, the cheapest grpc.aio server for the same RPCs.
- `floor-sync`: `benchmarks.floor_sync_server`, the same floor on grpcio's sync thread-pool
  server, to price the server model itself.
"""

from __future__ import annotations

import os
import sys
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.loadgen import LoadResult, LoadSpec, WindowHooks, run_load
from benchmarks.procs import Child, ProcessSet, cpu_seconds, host_cpu_ticks, status_kib
from benchmarks.report import percentile

CONFIGS = ("full", "off", "floor", "floor-sync")
BIN = Path(sys.executable).parent
SHUTDOWN_GRACE_S = "2"


@dataclass(frozen=True, slots=True)
class Plan:
    """What every measurement of a run shares."""

    concurrency: int
    workers: int
    warmup_s: float
    duration_s: float


@dataclass(slots=True)
class CpuWatch:
    """CPU seconds of some processes, and the machine's busy share, over the measured window."""

    pids: dict[str, int]
    start: dict[str, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)
    host_start: tuple[int, int] = (0, 0)
    host_busy: float = 0.0

    def started(self) -> None:
        self.start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.host_start = host_cpu_ticks()

    def ended(self) -> None:
        self.used = {name: cpu_seconds(pid) - self.start[name] for name, pid in self.pids.items()}
        busy, total = host_cpu_ticks()
        elapsed = total - self.host_start[1]
        self.host_busy = (busy - self.host_start[0]) / elapsed if elapsed else 0.0


def base_env() -> dict[str, str]:
    """The environment without the developer's own OTEL_* and PAYMENTS_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PAYMENTS_"))}
    env["PAYMENTS_GRPC_ADDRESS"] = "127.0.0.1:0"
    env["PAYMENTS_SHUTDOWN_GRACE_SECONDS"] = SHUTDOWN_GRACE_S
    return env


def full_env(sink_port: int, **extra: str) -> dict[str, str]:
    return {
        **base_env(),
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
        "PAYMENTS_METRICS_ADDRESS": "127.0.0.1:0",
        "PAYMENTS_ACCESS_LOG": "on",
        **extra,
    }


def off_env() -> dict[str, str]:
    return {
        **base_env(),
        "OTEL_SDK_DISABLED": "true",
        "PAYMENTS_METRICS_ADDRESS": "off",
        "PAYMENTS_ACCESS_LOG": "off",
    }


def payments_server() -> list[str]:
    server = BIN / "payments-server"
    if not server.exists():
        raise FileNotFoundError(f"{server} not found: run `make install` first")
    return [str(server)]


def python_module(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def start_sink(procs: ProcessSet, label: str) -> Child:
    return procs.start(f"{label}-sink", python_module("benchmarks.otlp_sink"), base_env())


def start_server(
    procs: ProcessSet, config: str, label: str, sink: Child | None, **extra: str
) -> Child:
    if config == "full":
        assert sink is not None
        return procs.start(label, payments_server(), full_env(sink.port, **extra))
    if config == "off":
        return procs.start(label, payments_server(), {**off_env(), **extra})
    if config == "floor":
        return procs.start(label, python_module("benchmarks.floor_server"), base_env())
    if config == "floor-sync":
        return procs.start(label, python_module("benchmarks.floor_sync_server"), base_env())
    raise ValueError(f"unknown configuration {config!r}; expected one of {', '.join(CONFIGS)}")


def scrape_handled(metrics_port: int) -> dict[str, float]:
    """`grpc_server_handled_total` summed by grpc_code, from the server's /metrics."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    by_code: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "grpc_server_handled":
            continue
        for sample in family.samples:
            if sample.name == "grpc_server_handled_total":
                code = sample.labels["grpc_code"]
                by_code[code] = by_code.get(code, 0.0) + sample.value
    return dict(by_code)


def count_access_lines(child: Child) -> int:
    return sum(1 for line in child.lines() if line.get("event") == "rpc_completed")


def sink_spans(sink: Child) -> int | None:
    for line in sink.lines():
        if line.get("event") == "sink_stopped":
            return int(line["spans"])
    return None


def summarise(load: LoadResult, cpu: CpuWatch, peak_rss_kib: int) -> dict[str, Any]:
    calls = max(load.calls, 1)
    lat = load.latencies_ns
    return {
        "calls": load.calls,
        "window_s": load.window_s,
        "throughput": load.calls / load.window_s,
        "p50_ms": percentile(lat, 0.50) / 1e6,
        "p95_ms": percentile(lat, 0.95) / 1e6,
        "p99_ms": percentile(lat, 0.99) / 1e6,
        "max_ms": (lat[-1] / 1e6) if lat else None,
        "mean_ms": (sum(lat) / len(lat) / 1e6) if lat else None,
        "server_cpu_us_per_call": cpu.used["server"] / calls * 1e6,
        "server_cpu_pct": cpu.used["server"] / load.window_s * 100,
        "client_cpu_us_per_call": load.client_cpu_s / calls * 1e6,
        "host_busy_pct": cpu.host_busy * 100,
        "peak_rss_mib": peak_rss_kib / 1024,
        "client_errors": load.errors,
        "codes": load.codes,
    }


def full_checks(
    server: Child, sink: Child, handled: dict[str, float], cpu: CpuWatch, calls: int
) -> dict[str, Any]:
    """Cross-checks that `full` really did its work: metrics, spans exported, log lines."""
    total = sum(handled.values())
    spans = sink_spans(sink)
    lines = count_access_lines(server)
    return {
        "server_handled_total": total,
        "server_handled_by_code": handled,
        "server_non_ok": total - handled.get("OK", 0.0),
        "spans_received": spans,
        "spans_per_handled_call": (spans / total) if spans is not None and total else None,
        "access_log_lines": lines,
        "access_lines_per_handled_call": (lines / total) if total else None,
        "sink_cpu_us_per_call": cpu.used["sink"] / max(calls, 1) * 1e6,
    }


def measure(
    procs: ProcessSet, plan: Plan, config: str, workload: str, label: str
) -> dict[str, Any]:
    """Fresh processes, one load run, then everything stopped; returns the measurement."""
    sink = start_sink(procs, label) if config == "full" else None
    server = start_server(procs, config, label, sink)
    pids = {"server": server.pid} | ({"sink": sink.pid} if sink else {})
    cpu = CpuWatch(pids)
    spec = LoadSpec(
        target=f"127.0.0.1:{server.port}",
        workload=workload,
        concurrency=plan.concurrency,
        workers=plan.workers,
        warmup_s=plan.warmup_s,
        duration_s=plan.duration_s,
        tag=f"{label}-{uuid.uuid4().hex[:8]}",
    )
    load = run_load(spec, WindowHooks(started=cpu.started, ended=cpu.ended))
    handled = scrape_handled(int(server.started["metrics_port"])) if config == "full" else {}
    result = summarise(load, cpu, status_kib(server.pid, "VmHWM"))
    result["server_exit_status"] = procs.stop(server)
    if sink is not None:
        result["sink_exit_status"] = procs.stop(sink)
        result["full_checks"] = full_checks(server, sink, handled, cpu, load.calls)
    result["errors"] = load.errors
    return {"config": config, "workload": workload, **result}
