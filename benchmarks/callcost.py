"""`make bench-count`: instructions per call, the server's price counted instead of timed.

`make bench` reads CPU seconds from /proc. On a machine shared with other jobs those seconds
move with the neighbours (caches, frequency, a hypervisor's steal time) by ±20 % between rounds,
which is more than most single changes are worth. This tool counts instead: it runs each server
under valgrind's callgrind and reads the instructions (Ir) the whole server process executes,
every thread included (the event loop, grpc-core's threads, the span exporter, the log writer),
while it serves a fixed number of calls from the bench's own load generator. The count does not
depend on what else runs on the machine: two runs of the same code agree within about 1 %.

- each server starts under `valgrind --tool=callgrind` (about 50x slower, so startup takes a
  minute); the same configurations and environment as `make bench` (`benchmarks.measure`), with
  the processor timeout raised to 30 s so that the slowed event loop never turns a payment
  PENDING (which would change the path measured);
- the load generator (not under valgrind) warms up for `--warmup` seconds, then
  `callgrind_control --zero` starts the window, exactly `--calls` calls are made, and
  `callgrind_control --dump` ends it: Ir per call = the dump's total / calls;
- `--variant NAME=SRC` measures another source tree of the package (its `src/` directory, e.g.
  a `git worktree` of the commit before a change) beside this one, interleaved per config, so a
  change is priced A/B on identical load.

Instructions are not seconds (a cache miss costs more than an add), so this is the tool for
deciding whether a change removes work, and `make bench` stays the tool for what a call costs.

    python -m benchmarks.callcost --configs full,off,floor --workload new --calls 1000
    python -m benchmarks.callcost --configs full --variant before=/tmp/before/src
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python benchmarks/callcost.py`: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc

from benchmarks.loadgen import SCHEDULES, LoadSpec, WindowHooks, run_load
from benchmarks.measure import TELEMETRY_KINDS, server_command, start_sink
from benchmarks.pinning import Pinning
from benchmarks.procs import REPO_ROOT, ProcessSet
from benchmarks.stores import KINDS, parse_config, provision
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc

RESULTS = REPO_ROOT / "benchmarks" / "results"
# Under valgrind a server starts in about a minute (grpc and the OTel SDK import slowly).
STARTUP_TIMEOUT_S = 600.0
PRIME_TIMEOUT_S = 300.0
THIS_TREE = "this"
_TOTAL = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def callgrind_total(dump: Path) -> int:
    """The instruction count of one callgrind dump (its `summary:` line, else `totals:`)."""
    match = _TOTAL.search(dump.read_text(errors="replace"))
    if match is None:
        raise ValueError(f"{dump} has no summary or totals line")
    return int(match[1])


def _control(tool: str, *args: str) -> None:
    subprocess.run([tool, *args], check=True, capture_output=True, timeout=120)


def count_one(
    procs: ProcessSet,
    config: str,
    workload: str,
    *,
    calls: int,
    concurrency: int,
    warmup_s: float,
    src: Path | None,
    label: str,
) -> dict[str, Any]:
    """Start `config` under callgrind (on a fresh store), make `calls` calls, and return the
    instructions the server executed per call."""
    valgrind, control = shutil.which("valgrind"), shutil.which("callgrind_control")
    if valgrind is None or control is None:
        raise FileNotFoundError("valgrind not found: apt-get install -y valgrind")
    spec = parse_config(config)
    unpinned = Pinning(server=(), client=(), pinned=False)
    sink = start_sink(procs, label, unpinned) if spec.kind in TELEMETRY_KINDS else None
    with provision(spec, procs.workdir, label) as store:
        argv, env = server_command(
            spec.kind, sink, PAYMENTS_PROCESSOR_TIMEOUT_SECONDS="30", **store.env
        )
        if src is not None:
            env["PYTHONPATH"] = str(src)
        out = procs.workdir / f"{label}.callgrind"
        server = procs.start(
            label,
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", *argv],
            env,
            timeout=STARTUP_TIMEOUT_S,
        )
        pid = str(server.pid)
        _prime(server.port)
        load = run_load(
            LoadSpec(
                targets=(f"127.0.0.1:{server.port}",),
                workload=workload,
                concurrency=concurrency,
                workers=1,
                warmup_s=warmup_s,
                duration_s=0.0,
                total_calls=calls,
                tag=f"{label}-{uuid.uuid4().hex[:8]}",
            ),
            WindowHooks(
                started=lambda: _control(control, "--zero", pid),
                ended=lambda: _control(control, "--dump=window", pid),
            ),
        )
        total = callgrind_total(sorted(procs.workdir.glob(f"{label}.callgrind.*"))[-1])
        procs.stop(server, timeout=120)
    if sink is not None:
        procs.stop(sink)
    return {
        "config": config,
        "workload": workload,
        "calls": load.calls,
        "errors": load.errors,
        "instructions": total,
        "instructions_per_call": total / max(load.calls, 1),
    }


def _prime(port: int) -> None:
    """One call of each method with a long deadline before the load generator's own (10 s):
    under valgrind a server's first calls (handlers wrapped, modules imported on first use)
    can take longer than that on a busy machine."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.PaymentServiceStub(channel)
        stub.Health(pb.HealthRequest(), timeout=PRIME_TIMEOUT_S)
        request = pb.RequestPaymentRequest(
            amount_minor=100, currency="EUR", order_id="prime", idempotency_key=uuid.uuid4().hex
        )
        created = stub.RequestPayment(request, timeout=PRIME_TIMEOUT_S)
        stub.GetPayment(
            pb.GetPaymentRequest(payment_id=created.payment_id), timeout=PRIME_TIMEOUT_S
        )


def variant(raw: str) -> tuple[str, Path]:
    name, sep, path = raw.partition("=")
    src = Path(path).resolve()
    if not sep or not name or not (src / "payments_service").is_dir():
        raise argparse.ArgumentTypeError("expected NAME=SRC, SRC holding payments_service/")
    return name, src


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks.callcost", description=__doc__.splitlines()[0]
    )
    add = parser.add_argument
    add(
        "--configs",
        default="full,off,floor",
        help=f"comma list of {', '.join(KINDS)} or a store config such as full-sqlite",
    )
    add("--workload", default="new", choices=tuple(SCHEDULES), help="one workload (default new)")
    add("--calls", type=int, default=1000, help="calls counted per measurement (default 1000)")
    add("--concurrency", type=int, default=8, help="calls in flight (default 8)")
    add("--warmup", type=float, default=3.0, help="uncounted warm-up seconds (default 3)")
    add("--rounds", type=int, default=1, help="interleaved rounds (default 1; counts repeat)")
    add("--variant", type=variant, action="append", default=[], help="NAME=SRC, repeatable")
    add("--out", type=Path, default=RESULTS / "callcost.json", help="JSON results")
    opts = parser.parse_args(argv)
    opts.configs = [c.strip() for c in opts.configs.split(",") if c.strip()]
    try:
        replicated = [c for c in opts.configs if parse_config(c).replicas != 1]
    except ValueError as exc:
        parser.error(f"--configs: {exc}")
    if replicated:
        parser.error(f"--configs: {', '.join(replicated)}: callcost counts one server process")
    if not opts.configs:
        parser.error("--configs: at least one configuration")
    if opts.calls < 1 or opts.concurrency < 1 or opts.rounds < 1:
        parser.error("--calls, --concurrency and --rounds must be >= 1")
    return opts


def markdown(results: list[dict[str, Any]], opts: argparse.Namespace) -> str:
    lines = [
        f"## Instructions per call (callgrind): workload `{opts.workload}`, {opts.calls} calls, "
        f"concurrency {opts.concurrency}, {opts.rounds} round(s)",
        "",
        "| variant | configuration | Ir/call (median) | each round | errors |",
        "|---|---|---|---|---|",
    ]
    medians: dict[tuple[str, str], float] = {}
    for name in dict.fromkeys(r["variant"] for r in results):
        for config in opts.configs:
            runs = [r for r in results if r["variant"] == name and r["config"] == config]
            per_call = [r["instructions_per_call"] for r in runs]
            medians[(name, config)] = statistics.median(per_call)
            each = ", ".join(f"{value:,.0f}" for value in per_call)
            errors = sum(r["errors"] for r in runs)
            lines.append(
                f"| {name} | {config} | {medians[(name, config)]:,.0f} | {each} | {errors} |"
            )
    lines.append("")
    for (name, config), value in medians.items():
        floor = medians.get((name, "floor"))
        if floor and config != "floor":
            lines.append(f"- {name}: Ir/call {config}/floor {value / floor:.3f}")
        base = medians.get((THIS_TREE, config))
        if name != THIS_TREE and base:
            lines.append(f"- {config}: {THIS_TREE}/{name} {base / value:.3f}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    variants: list[tuple[str, Path | None]] = [(THIS_TREE, None), *opts.variant]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="callcost-") as tmp:
        procs = ProcessSet(Path(tmp))
        try:
            for round_no in range(1, opts.rounds + 1):
                for config in opts.configs:
                    for name, src in variants:
                        label = f"r{round_no}-{config}-{name}"
                        print(f"[callcost] {label} ...", file=sys.stderr, flush=True)
                        started = time.monotonic()
                        result = count_one(
                            procs,
                            config,
                            opts.workload,
                            calls=opts.calls,
                            concurrency=opts.concurrency,
                            warmup_s=opts.warmup,
                            src=src,
                            label=label,
                        )
                        result.update(variant=name, src=str(src or "this tree"), round=round_no)
                        print(
                            f"[callcost] {label}: {result['instructions_per_call']:,.0f} Ir/call, "
                            f"errors {result['errors']} ({time.monotonic() - started:.0f} s)",
                            file=sys.stderr,
                            flush=True,
                        )
                        results.append(result)
        finally:
            procs.close()
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"options": vars(opts), "results": results}
    opts.out.write_text(json.dumps(report, indent=2, default=str))
    sys.stdout.write(markdown(results, opts))
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
