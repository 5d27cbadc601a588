"""One measurement: a fresh server (and, for `full` and `proto`, a fresh OTLP sink) on free
ports, one closed-loop load run against it, and what the clients, /proc and the server itself
report.

Configurations:
- `full`: `payments-server` with every signal on: 100 % of calls traced and exported over
  OTLP/gRPC to `benchmarks.otlp_sink` (another process), Prometheus metrics on 127.0.0.1:0, and
  JSON access logs on stdout, redirected to a file;
- `off`: the same server with OTEL_SDK_DISABLED=true, PAYMENTS_METRICS_ADDRESS=off and
  PAYMENTS_ACCESS_LOG=off (the service's own domain log lines, e.g. `payment_created`, stay);
- `proto`: `benchmarks.proto_server`, the floor plus stock telemetry (a SERVER span per call
  exported over OTLP/gRPC to its own `benchmarks.otlp_sink`, a structlog line, 2 metrics);
- `floor`: `benchmarks.floor_server`, the cheapest grpc.aio server for the same RPCs.
- `floor-sync`: `benchmarks.floor_sync_server`, the same floor on grpcio's sync thread-pool
  server, to price the server model itself.
- `http`: `full`'s server and settings, its load sent as JSON over HTTP to the JSON/HTTP
  listener (every signal on: the same span export, metrics and access lines);
- `http-floor`: `benchmarks.http_floor_server`, the floor's RPCs behind aiohttp with the same
  JSON transcoding and nothing else.

`full` also runs on SQLite and PostgreSQL, and with several server processes on one store
(`full-sqlite`, `full-postgresql-x2`, ...: `benchmarks.stores`). With replicas, the load
generator spreads its calls over all of them, the server CPU is their sum, the peak RSS the
largest, and one OTLP sink receives every replica's spans.

Every server runs under `taskset -c` on the server cores of the run's `Pinning`; the sink and
the load-generator workers run on the client cores. CPU is read from /proc per process: the
servers', the workers' and the sink's, and each core set's busy share.
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
from benchmarks.pinning import Pinning, cpu_list, parse_cpu_list
from benchmarks.procs import (
    Child,
    ProcessSet,
    StartError,
    cpu_seconds,
    cpus_allowed,
    host_cpu_ticks,
    status_kib,
)
from benchmarks.report import client_bound, percentile
from benchmarks.stores import HTTP_KINDS, KINDS, Store, parse_config, provision
from payments_service.observability.logs import ACCESS_EVENT
from payments_service.observability.metrics import (
    CODE_LABEL,
    HANDLED,
    HTTP_DURATION,
    HTTP_STATUS_LABEL,
)

CONFIGS = KINDS
TELEMETRY_KINDS = ("full", "proto", "http")  # export spans to a sink; cross-checked after each run
# What a telemetry configuration's server counts its calls in: (metric family, label, OK).
HTTP_HANDLED = (HTTP_DURATION, HTTP_STATUS_LABEL, "200")
BIN = Path(sys.executable).parent
SHUTDOWN_GRACE_S = "2"
# One load generator is one merchant sending far above the per-merchant default rate: raise the
# rate out of its reach so every call still takes a token from the bucket (its cost is measured)
# and none is refused (a refused call would measure the limiter, not the call path).
MERCHANT_RATE_UNREACHABLE = "1000000"


@dataclass(frozen=True, slots=True)
class Plan:
    """What every measurement of a run shares."""

    concurrency: int
    workers: int
    warmup_s: float
    duration_s: float
    pinning: Pinning


@dataclass(slots=True)
class CpuWatch:
    """CPU seconds of the processes of a measurement (`server*`, `client-*` for the load
    generator's workers, `sink`) over the measured window, where each may run, and how busy the
    machine and the server and client cores were. With a PostgreSQL store, also the CPU of the
    database backends serving the measurement."""

    pids: dict[str, int]
    pinning: Pinning
    store: Store | None = None
    start: dict[str, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)
    affinity: dict[str, str] = field(default_factory=dict)
    ticks_start: dict[str, tuple[int, int]] = field(default_factory=dict)
    busy: dict[str, float] = field(default_factory=dict)  # host, server cores, client cores
    db_start: dict[int, float] = field(default_factory=dict)
    db_used: float | None = None

    def spawned(self, pids: list[int]) -> None:
        self.pids |= {f"client-{i}": pid for i, pid in enumerate(pids)}

    def _core_sets(self) -> dict[str, tuple[int, ...] | None]:
        return {"host": None, "server": self.pinning.server, "client": self.pinning.client}

    def started(self) -> None:
        if self.store is not None and self.store.database is not None:
            self.db_start = self.store.backend_cpu()
        self.affinity = {name: cpus_allowed(pid) for name, pid in self.pids.items()}
        self.start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.ticks_start = {name: host_cpu_ticks(cpus) for name, cpus in self._core_sets().items()}

    def ended(self) -> None:
        self.used = {name: cpu_seconds(pid) - self.start[name] for name, pid in self.pids.items()}
        for name, cpus in self._core_sets().items():
            busy, total = host_cpu_ticks(cpus)
            busy0, total0 = self.ticks_start[name]
            self.busy[name] = (busy - busy0) / (total - total0) if total > total0 else 0.0
        if self.store is not None and self.store.database is not None:
            # A backend that connected during the window counts whole; one that ended is lost
            # (asyncpg keeps idle connections for 5 minutes, so none does in a measurement).
            end = self.store.backend_cpu()
            self.db_used = sum(cpu - self.db_start.get(pid, 0.0) for pid, cpu in end.items())

    @property
    def servers(self) -> float:
        """CPU seconds of every server process (the replicas' sum)."""
        return sum(used for name, used in self.used.items() if name.startswith("server"))

    @property
    def clients(self) -> float:
        """CPU seconds of every load-generator worker."""
        return sum(self.workers)

    @property
    def workers(self) -> list[float]:
        """CPU seconds of each load-generator worker."""
        return [used for name, used in self.used.items() if name.startswith("client-")]


def base_env() -> dict[str, str]:
    """The environment without the developer's own OTEL_* and PAYMENTS_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PAYMENTS_"))}
    env["PAYMENTS_GRPC_ADDRESS"] = "127.0.0.1:0"
    env["PAYMENTS_HTTP_ADDRESS"] = "127.0.0.1:0"
    env["PAYMENTS_SHUTDOWN_GRACE_SECONDS"] = SHUTDOWN_GRACE_S
    env["PAYMENTS_RATE_LIMIT_RPS"] = MERCHANT_RATE_UNREACHABLE
    return env


def export_env(sink: Child) -> dict[str, str]:
    """Every call traced, spans exported over OTLP/gRPC to `sink`."""
    return {
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.port}",
    }


def full_env(sink: Child, **extra: str) -> dict[str, str]:
    return {
        **base_env(),
        **export_env(sink),
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


def start_sink(procs: ProcessSet, label: str, pinning: Pinning) -> Child:
    """The OTLP sink, on the client cores: it stands for the Collector, not the server."""
    argv, cpus = python_module("benchmarks.otlp_sink"), pinning.client if pinning.pinned else None
    return procs.start(f"{label}-sink", argv, base_env(), cpus=cpus)


def server_command(
    config: str, sink: Child | None, **extra: str
) -> tuple[list[str], dict[str, str]]:
    """argv and environment of one server of kind `config`; `extra` goes into the payments
    server's environment (the store)."""
    if config in TELEMETRY_KINDS and sink is None:
        raise ValueError(f"{config!r} exports spans: it needs a sink")
    if config in ("full", "http") and sink is not None:
        return payments_server(), full_env(sink, **extra)
    if config == "off":
        return payments_server(), {**off_env(), **extra}
    if config == "proto" and sink is not None:
        return python_module("benchmarks.proto_server"), {**base_env(), **export_env(sink)}
    if config in ("floor", "floor-sync", "http-floor"):
        module = {"floor": "floor_server", "floor-sync": "floor_sync_server"}.get(
            config, "http_floor_server"
        )
        return python_module(f"benchmarks.{module}"), base_env()
    raise ValueError(f"unknown configuration {config!r}; expected one of {', '.join(CONFIGS)}")


def start_server(
    procs: ProcessSet,
    config: str,
    label: str,
    sink: Child | None,
    pinning: Pinning,
    *,
    src: Path | None = None,
    **extra: str,
) -> Child:
    """Start one server of kind `config` on the server cores (`taskset -c`), and check that the
    kernel really holds it there; with `src`, the payments server of that source tree."""
    argv, env = server_command(config, sink, **extra)
    if src is not None:  # a variant: the payments-server of another source tree
        env["PYTHONPATH"] = str(src)
    if not pinning.pinned:
        return procs.start(label, argv, env)
    server = procs.start(label, argv, env, cpus=pinning.server)
    allowed = cpus_allowed(server.pid)
    if parse_cpu_list(allowed) != pinning.server:
        raise StartError(f"{label} may run on cores {allowed}, not {cpu_list(pinning.server)}")
    return server


def scrape_handled(metrics_port: int, *, http: bool = False) -> dict[str, float]:
    """Calls by outcome from the server's /metrics: `grpc_server_handled_total` by grpc_code,
    or with `http` the HTTP request histogram's count by status (200 counted as `OK`)."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    name, label, ok = HTTP_HANDLED if http else (HANDLED, CODE_LABEL, "OK")
    sample_name = f"{name}_count" if http else f"{name}_total"
    by_code: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == sample_name:
                code = "OK" if sample.labels[label] == ok else sample.labels[label]
                by_code[code] = by_code.get(code, 0.0) + sample.value
    return dict(by_code)


def count_access_lines(child: Child) -> int:
    return sum(1 for line in child.lines() if line.get("event") == ACCESS_EVENT)


def sink_spans(sink: Child) -> int | None:
    for line in sink.lines():
        if line.get("event") == "sink_stopped":
            return int(line["spans"])
    return None


def summarise(load: LoadResult, cpu: CpuWatch, peak_rss_kib: int) -> dict[str, Any]:
    """One measurement's figures. CPU shares are of the cores a process may run on (the
    server's or the client's set; every usable core when not pinned)."""
    calls = max(load.calls, 1)
    lat = load.latencies_ns
    server_cores, client_cores = len(cpu.pinning.server), len(cpu.pinning.client)
    client_cpu_pct = cpu.clients / load.window_s / client_cores * 100
    busiest_worker_pct = max(cpu.workers, default=0.0) / load.window_s * 100
    return {
        "calls": load.calls,
        "window_s": load.window_s,
        "server_cpu_us_per_call": cpu.servers / calls * 1e6,
        "throughput": load.calls / load.window_s,
        "p50_ms": percentile(lat, 0.50) / 1e6,
        "p95_ms": percentile(lat, 0.95) / 1e6,
        "p99_ms": percentile(lat, 0.99) / 1e6,
        "max_ms": (lat[-1] / 1e6) if lat else None,
        "mean_ms": (sum(lat) / len(lat) / 1e6) if lat else None,
        "server_cpu_pct": cpu.servers / load.window_s / server_cores * 100,
        "db_cpu_us_per_call": None if cpu.db_used is None else cpu.db_used / calls * 1e6,
        "client_cpu_us_per_call": cpu.clients / calls * 1e6,
        "client_cpu_pct": client_cpu_pct,
        "busiest_worker_cpu_pct": busiest_worker_pct,  # of one core
        "client_bound": client_bound(client_cpu_pct, busiest_worker_pct),
        "host_busy_pct": cpu.busy["host"] * 100,
        "server_cores_busy_pct": cpu.busy["server"] * 100,
        "client_cores_busy_pct": cpu.busy["client"] * 100,
        "pinned": cpu.pinning.pinned,
        "processes": {
            name: {
                "cores": cpu.affinity.get(name),
                "cpu_s": used,
                "cpu_pct_of_one_core": used / load.window_s * 100,
            }
            for name, used in cpu.used.items()
        },
        "peak_rss_mib": peak_rss_kib / 1024,
        "client_errors": load.errors,
        "codes": load.codes,
    }


def telemetry_checks(
    servers: list[Child],
    sink: Child,
    handled: dict[str, float],
    cpu: CpuWatch,
    load: LoadResult,
) -> dict[str, Any]:
    """Cross-checks that a telemetry configuration (`full*`, `proto`) really did its work:
    calls counted by its metrics, spans exported, access-log lines."""
    total = sum(handled.values())
    spans = sink_spans(sink)
    lines = sum(count_access_lines(server) for server in servers)
    return {
        "server_handled_total": total,
        "server_handled_by_code": handled,
        "server_non_ok": total - handled.get("OK", 0.0),
        "spans_received": spans,
        "spans_per_handled_call": (spans / total) if spans is not None and total else None,
        "access_log_lines": lines,
        "access_lines_per_handled_call": (lines / total) if total else None,
        "sink_cpu_us_per_call": cpu.used["sink"] / max(load.calls, 1) * 1e6,
        "sink_cpu_pct": cpu.used["sink"] / load.window_s * 100,  # of one core
    }


def measure(
    procs: ProcessSet,
    plan: Plan,
    config: str,
    workload: str,
    label: str,
    *,
    src: Path | None = None,
) -> dict[str, Any]:
    """Fresh processes (and a fresh store), one load run, then everything stopped and the
    store dropped; returns the measurement. `src`: the source tree of a variant (`full@NAME`)."""
    spec = parse_config(config)
    if (spec.variant is None) != (src is None):
        raise ValueError(f"{config!r}: a variant configuration, and only it, has a source tree")
    telemetry = spec.kind in TELEMETRY_KINDS
    sink = start_sink(procs, label, plan.pinning) if telemetry else None
    with provision(spec, procs.workdir, label) as store:
        names = [label] if spec.replicas == 1 else [f"{label}-{i}" for i in range(spec.replicas)]
        servers = [
            start_server(procs, spec.kind, name, sink, plan.pinning, src=src, **store.env)
            for name in names
        ]
        pids = {("server" if i == 0 else f"server-{i}"): s.pid for i, s in enumerate(servers)}
        cpu = CpuWatch(pids | ({"sink": sink.pid} if sink else {}), plan.pinning, store)
        port_of = (lambda s: int(s.started["http_port"])) if spec.kind == "http" else None
        load_spec = LoadSpec(
            targets=tuple(
                f"127.0.0.1:{server.port if port_of is None else port_of(server)}"
                for server in servers
            ),
            protocol="http" if spec.kind in HTTP_KINDS else "grpc",
            workload=workload,
            concurrency=plan.concurrency,
            workers=plan.workers,
            warmup_s=plan.warmup_s,
            duration_s=plan.duration_s,
            tag=f"{label}-{uuid.uuid4().hex[:8]}",
            cpus=plan.pinning.client if plan.pinning.pinned else None,
        )
        hooks = WindowHooks(spawned=cpu.spawned, started=cpu.started, ended=cpu.ended)
        load = run_load(load_spec, hooks)
        handled: dict[str, float] = {}
        if telemetry:
            for server in servers:
                port = int(server.started["metrics_port"])
                for code, n in scrape_handled(port, http=spec.kind == "http").items():
                    handled[code] = handled.get(code, 0.0) + n
        peak_kib = max(status_kib(server.pid, "VmHWM") for server in servers)
        result = summarise(load, cpu, peak_kib)
        statuses = [procs.stop(server) for server in servers]
    result["server_exit_status"] = max(statuses, key=abs)
    if sink is not None:
        result["sink_exit_status"] = procs.stop(sink)
        result["telemetry_checks"] = telemetry_checks(servers, sink, handled, cpu, load)
    result["errors"] = load.errors
    return {
        "config": config,
        "workload": workload,
        "store": spec.store,
        "sqlite_synchronous": spec.synchronous if spec.store == "sqlite" else None,
        "replicas": spec.replicas,
        "variant": spec.variant,
        "src": str(src) if src is not None else None,
        **result,
    }
