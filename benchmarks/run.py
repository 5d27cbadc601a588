"""`make bench`: what does observability cost the payments server?

Measures the configurations of `benchmarks.measure`: `full` (traces at 100 % exported over
OTLP/gRPC to another process, metrics, JSON access logs), `off` (the same server with every
signal off), `proto` (the cheapest honest full-telemetry server, from stock parts), `floor`
and `floor-sync` (the cheapest grpc.aio and sync servers for the same RPCs), INTERLEAVED:
round 1 full, off, proto, floor, floor-sync; round 2 the same; ... so drift of a shared machine
hits every configuration alike. Each measurement starts fresh processes on free ports, the
server pinned to its own core(s) and the load generator to the others (`benchmarks.pinning`).
Prints Markdown (medians over rounds with server CPU µs/call first, ratios, targets, every round
with each process's CPU share and the client-bound flag) and writes everything to a JSON file.

`--store` runs `full` on each store (`full` = memory, `full-sqlite`, `full-postgresql`) in the
same interleaved rounds, each measurement on a fresh SQLite file or PostgreSQL database;
`--replicas 1,2` adds 2 server processes sharing one durable store (`full-sqlite-x2`, ...).
`--variant before=SRC` adds, after each payments-server configuration, the same served from
another source tree (`full@before`, ...), and the ratios `full/full@before`, ...: a change's
before and after in one interleaved run.

    python -m benchmarks.run [--workload mix] [--concurrency 32] [--duration 10] [--rounds 3]
    python -m benchmarks.run --server-cpus 0 --client-cpus 1
    python -m benchmarks.run --store memory,sqlite,postgresql --configs full,off,floor
    python -m benchmarks.run --store sqlite,postgresql --replicas 1,2 --configs full
    python -m benchmarks.run --configs full,off,floor --variant before=/tmp/before/src
    python -m benchmarks.run --soak          # 200 000 new payments, RSS growth
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

if __package__ in (None, ""):  # `python benchmarks/run.py`: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import report
from benchmarks.loadgen import SCHEDULES, LoadError
from benchmarks.measure import CONFIGS, Plan, measure
from benchmarks.pinning import Pinning, parse_cpu_list, plan_pinning, usable_cpus
from benchmarks.procs import REPO_ROOT, ProcessSet, StartError
from benchmarks.soak import SoakPlan, run_soak, soak_markdown
from benchmarks.stores import (
    STORES,
    SYNCHRONOUS,
    expand,
    parse_config,
    source_tree,
    with_variants,
)

RESULTS = REPO_ROOT / "benchmarks" / "results"


def default_workers(pinning: Pinning) -> int:
    """One load-generator process per client core (1 on a 2-core machine); unpinned, half the
    cores. Why: the "Workers" section of benchmarks/README.md."""
    return len(pinning.client) if pinning.pinned else max(1, len(pinning.client) // 2)


def csv(choices: tuple[str, ...]) -> Any:
    def parse(raw: str) -> list[str]:
        values = [v.strip() for v in raw.split(",") if v.strip()]
        unknown = [v for v in values if v not in choices]
        if unknown or not values:
            raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(choices)}")
        return values

    return parse


def cpus(raw: str) -> tuple[int, ...]:
    try:
        return parse_cpu_list(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def config_list(raw: str) -> list[str]:
    """A comma list of configurations: full, off, proto, floor, floor-sync, or a store-specific name
    such as full-sqlite-normal or full-postgresql-x2 (see benchmarks.stores)."""
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(CONFIGS)}")
    for value in values:
        try:
            parse_config(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(
                f"{exc}; expected {', '.join(CONFIGS)} or e.g. full-sqlite, full-postgresql-x2"
            ) from None
    return values


def count_list(raw: str) -> list[int]:
    """A comma list of replica counts, each >= 1, e.g. 1,2."""
    try:
        values = [int(v) for v in raw.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected a comma list of counts >= 1, e.g. 1,2")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--concurrency", type=int, default=32, help="concurrent calls in flight (default 32)")
    add("--duration", type=float, default=10.0, help="seconds per measurement (default 10)")
    add("--warmup", type=float, default=2.0, help="warm-up seconds before each (default 2)")
    add("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    add("--workload", type=csv(tuple(SCHEDULES)), default=["mix"], help="e.g. mix or new,get")
    add(
        "--workers",
        type=int,
        default=None,
        help="load-generator processes (default: one per client core)",
    )
    add("--server-cpus", type=cpus, default=None, help="cores of the server (default: the first)")
    add("--client-cpus", type=cpus, default=None, help="cores of the client (default: the rest)")
    add("--no-pin", action="store_true", help="do not pin server and client apart (not honest)")
    add(
        "--configs",
        type=config_list,
        default=list(CONFIGS),
        help=f"default {','.join(CONFIGS)}; `full` expands per --store/--replicas",
    )
    add(
        "--store",
        type=csv(STORES),
        default=["memory"],
        help="stores `full` runs on: memory,sqlite,postgresql (default memory)",
    )
    add(
        "--sqlite-synchronous",
        type=csv(SYNCHRONOUS),
        default=["full"],
        help="SQLite PAYMENTS_STORE_SQLITE_SYNCHRONOUS values: full,normal (default full)",
    )
    add(
        "--replicas",
        type=count_list,
        default=[1],
        help="server processes per durable store, e.g. 1,2 (default 1; memory is never shared)",
    )
    add(
        "--variant",
        type=source_tree,
        action="append",
        default=[],
        help="NAME=SRC (repeatable): full, off, http also served from the tree SRC, as `full@NAME`",
    )
    add("--out", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    add("--soak", action="store_true", help="soak mode instead of the comparison")
    add("--soak-payments", type=int, default=200_000, help="soak: new payments (200 000)")
    add("--soak-ttl", type=float, default=20.0, help="soak: idempotency TTL seconds (20)")
    add("--keep-workdir", action="store_true", help="keep server logs in the temp directory")
    add("--check", action="store_true", help="exit 1 when a target fails")
    opts = parser.parse_args(argv)
    try:
        opts.pinning = plan_pinning(
            usable_cpus(), opts.server_cpus, opts.client_cpus, enabled=not opts.no_pin
        )
    except ValueError as exc:
        parser.error(str(exc))
    if opts.workers is None:
        opts.workers = default_workers(opts.pinning)
    if opts.concurrency < opts.workers or opts.workers < 1 or opts.rounds < 1:
        parser.error("need 1 <= --workers <= --concurrency and --rounds >= 1")
    opts.configs = expand(opts.configs, opts.store, opts.sqlite_synchronous, opts.replicas)
    opts.sources = dict(opts.variant)
    if len(opts.sources) != len(opts.variant):
        parser.error("--variant: each NAME once")
    opts.configs = with_variants(opts.configs, list(opts.sources))
    if not opts.configs:
        parser.error("no configuration left to run (the memory store has no replicas)")
    return opts


def run_comparison(procs: ProcessSet, opts: argparse.Namespace) -> dict[str, Any]:
    plan = Plan(opts.concurrency, opts.workers, opts.warmup, opts.duration, opts.pinning)
    print(f"[bench] pinning: {plan.pinning.describe()}", file=sys.stderr, flush=True)
    measurements: list[dict[str, Any]] = []
    for round_no in range(1, opts.rounds + 1):
        for workload in opts.workload:
            for config in opts.configs:
                label = f"r{round_no}-{workload}-{config}"
                print(f"[bench] {label} ...", file=sys.stderr, flush=True)
                variant = parse_config(config).variant
                src = None if variant is None else opts.sources[variant]
                result = measure(procs, plan, config, workload, label, src=src)
                result["round"] = round_no
                print(f"[bench] {label}: {_brief(result)}", file=sys.stderr, flush=True)
                measurements.append(result)
    summaries = {
        w: summarise_workload(
            opts.configs, measurements, w, pinned=plan.pinning.pinned, rounds=opts.rounds
        )
        for w in opts.workload
    }
    return {
        "plan": {**asdict(plan), "rounds": opts.rounds, "configs": opts.configs},
        "workloads": summaries,
    }


def _brief(result: dict[str, Any]) -> str:
    bound = ", CLIENT-BOUND" if result["client_bound"] else ""
    return (
        f"server CPU {result['server_cpu_us_per_call']:.0f} µs/call, "
        f"{result['throughput']:.0f} calls/s, p99 {result['p99_ms']:.2f} ms, "
        f"client {result['client_cpu_us_per_call']:.0f} µs/call "
        f"({result['client_cpu_pct']:.0f} % of its cores{bound}), errors {result['errors']}"
    )


def summarise_workload(
    configs: list[str],
    measurements: list[dict[str, Any]],
    workload: str,
    *,
    pinned: bool,
    rounds: int,
) -> dict[str, Any]:
    by_config = {
        c: [m for m in measurements if m["workload"] == workload and m["config"] == c]
        for c in configs
    }
    medians = {c: report.medians(rs) for c, rs in by_config.items()}
    ratios = report.ratios(medians)
    every = [m for rs in by_config.values() for m in rs]
    run = report.RunChecks(
        errors=sum(
            m["errors"] + int(m.get("telemetry_checks", {}).get("server_non_ok", 0)) for m in every
        ),
        client_bound_rounds=sum(bool(m["client_bound"]) for m in every),
        pinned=pinned,
        rounds=rounds,
    )
    return {
        "medians": medians,
        "ratios": ratios,
        "targets": report.targets(ratios, run),
        "rounds": by_config,
    }


def comparison_markdown(result: dict[str, Any], opts: argparse.Namespace) -> str:
    parts = [f"Pinning: {opts.pinning.describe()}.", ""]
    for workload, summary in result["workloads"].items():
        every_round = _round_rows(summary["rounds"])
        parts += [
            f"## Workload `{workload}`: concurrency {opts.concurrency}, {opts.workers} "
            f"load-generator process{'es' if opts.workers != 1 else ''}, "
            f"{opts.duration:g} s x {opts.rounds} rounds, interleaved",
            "",
            report.client_bound_line(every_round),
            "",
            "Medians over rounds (errors and client-bound rounds: sums over rounds); the primary "
            "figure is server CPU µs/call:",
            "",
            report.table(list(summary["medians"].items()), _columns(report.COLUMNS, opts)),
            "",
            "Ratios (from the medians; server CPU per call first):",
            "",
            report.ratio_lines(summary["ratios"]),
            "",
            "Targets:",
            "",
            report.target_lines(summary["targets"]),
            "",
            "Every round:",
            "",
            report.table(every_round, _columns(report.ROUND_COLUMNS, opts)),
            "",
            _telemetry_checks_lines(
                [m for rs in summary["rounds"].values() for m in rs if "telemetry_checks" in m]
            ),
            "",
        ]
    return "\n".join(parts)


def _columns(
    columns: tuple[tuple[str, str, str], ...], opts: argparse.Namespace
) -> tuple[tuple[str, str, str], ...]:
    """The columns, with the database CPU (before `errors`) when PostgreSQL ran."""
    if not any(parse_config(c).store == "postgresql" for c in opts.configs):
        return columns
    return (*columns[:-1], report.DB_COLUMN, columns[-1])


def _round_rows(rounds: dict[str, list[dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    rows = [(f"{m['config']} r{m['round']}", m) for rs in rounds.values() for m in rs]
    return sorted(rows, key=lambda row: (row[1]["round"], list(rounds).index(row[1]["config"])))


def _telemetry_checks_lines(telemetry_rounds: list[dict[str, Any]]) -> str:
    lines = ["Telemetry cross-checks (`full*`, `proto`; per round):", ""]
    for m in sorted(telemetry_rounds, key=lambda m: int(m["round"])):
        c = m["telemetry_checks"]
        lines.append(
            f"- {m['config']} r{m['round']}: server handled {c['server_handled_total']:.0f} calls, "
            f"non-OK {c['server_non_ok']:.0f}; spans received {c['spans_received']} "
            f"({_num(c['spans_per_handled_call'])}/call); access-log lines "
            f"{c['access_log_lines']} ({_num(c['access_lines_per_handled_call'])}/call); "
            f"sink CPU {c['sink_cpu_us_per_call']:.0f} µs/call "
            f"({c['sink_cpu_pct']:.0f} % of a core)"
        )
    return "\n".join(lines) if telemetry_rounds else ""


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _terminate(signum: int, _frame: object) -> NoReturn:
    print("benchmark terminated; stopping every process it started", file=sys.stderr)
    raise SystemExit(128 + signum)  # unwinds through `finally`, which stops every child


def execute(opts: argparse.Namespace, procs: ProcessSet) -> tuple[dict[str, Any], str, bool]:
    """Run what `opts` asks; returns the JSON document, the Markdown, and whether all passed."""
    info = {**report.machine(), "pinning": asdict(opts.pinning)}
    if opts.pinning.pinned:
        # The runner itself (and so anything it forks) stays off the server's cores too.
        os.sched_setaffinity(0, opts.pinning.client)
    if opts.soak:
        plan = SoakPlan(
            opts.soak_payments, opts.soak_ttl, opts.concurrency, opts.workers, 1.0, opts.pinning
        )
        soak = run_soak(procs, plan)
        text = f"Pinning: {opts.pinning.describe()}.\n\n## Soak\n\n" + soak_markdown(soak)
        return {"machine": info, "soak": soak}, text, soak["rss"]["result"] == "PASS"
    result = run_comparison(procs, opts)
    text = comparison_markdown(result, opts)
    passed = all(t["result"] != "FAIL" for s in result["workloads"].values() for t in s["targets"])
    return {"machine": info, **result}, text, passed


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    out = opts.out or RESULTS / ("soak.json" if opts.soak else "latest.json")
    workdir = Path(tempfile.mkdtemp(prefix="payments-bench-"))
    procs = ProcessSet(workdir)
    try:
        document, text, passed = execute(opts, procs)
    except (StartError, LoadError, FileNotFoundError) as exc:
        print(f"benchmark failed: {exc}\n(logs in {workdir})", file=sys.stderr)
        opts.keep_workdir = True
        return 2
    except KeyboardInterrupt:
        print("benchmark interrupted; every process it started was stopped", file=sys.stderr)
        return 130
    finally:
        procs.close()
        if not opts.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report.machine_line(document["machine"]) + "\n")
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    print(f"Results written to {out}")
    return 1 if opts.check and not passed else 0


if __name__ == "__main__":
    raise SystemExit(main())
