"""`make bench-count`: instructions or system calls per call, the server's price counted.

`make bench` reads CPU seconds from /proc. On a machine shared with other jobs those seconds
move with the neighbours (caches, frequency, a hypervisor's steal time) by ±20 % between rounds,
which is more than most single changes are worth. This tool counts instead, over a fixed number
of calls from the bench's own load generator, for the whole server process (every thread: the
event loop, grpc-core's threads, the span exporter, the log writer):

- `--count instructions` (default): the server runs under valgrind's callgrind (about 50x
  slower, so startup takes a minute); `callgrind_control --zero` opens the window and
  `--dump` closes it: **Ir/call** = the instructions executed in the window / calls. Other jobs
  cannot move the count; what the server does on its own clock can (the log writer wakes every
  10 ms, export batches fall in or out of the window): repeated runs of one tree agreed within
  about 2 %, so a smaller difference needs rounds or a narrower count.
- `--count syscalls`: the server runs as `make bench` runs it, with `strace -c -f` attached
  for the window: **syscalls/call**. callgrind counts no kernel work, and a change that saves
  a batch on the wire saves system calls more than instructions. The count depends a little
  on timing (how many completions one epoll wake-up collects): within about 5 %.

The configurations and their environment are `make bench`'s (`benchmarks.measure`), with the
processor timeout raised to 30 s, so that an event loop slowed by valgrind never turns a payment
PENDING (which would change the path counted). The load generator (never slowed) primes the
server with one call per method, warms up for `--warmup` seconds, then makes exactly `--calls`
calls. `--variant NAME=SRC` counts another source tree of the package (its `src/` directory, e.g.
a `git worktree` of the commit before a change) beside this one, interleaved per configuration,
so a change is priced A/B.

Counts are not seconds (a cache miss costs more than an add, system calls differ in price):
this is the tool for deciding whether a change removes work; `make bench` says what a call costs.

    python -m benchmarks.callcost --configs full,off,floor --workload new --calls 1000
    python -m benchmarks.callcost --configs full --variant before=/tmp/before/src
    python -m benchmarks.callcost --count syscalls --configs full,off --calls 2000
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

if __package__ in (None, ""):  # `python benchmarks/callcost.py`: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc

from benchmarks.loadgen import SCHEDULES, LoadSpec, WindowHooks, run_load
from benchmarks.measure import TELEMETRY_KINDS, server_command, start_sink
from benchmarks.pinning import Pinning
from benchmarks.procs import REPO_ROOT, ProcessSet, status_field
from benchmarks.stores import HTTP_KINDS, KINDS, parse_config, provision, source_tree
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc

RESULTS = REPO_ROOT / "benchmarks" / "results"
PRIME_TIMEOUT_S = 300.0
ATTACH_TIMEOUT_S = 30.0
THIS_TREE = "this"
GRPC_KINDS = tuple(kind for kind in KINDS if kind not in HTTP_KINDS)  # what callcost can drive
_TOTAL = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def callgrind_total(dump: Path) -> int:
    """The instruction count of one callgrind dump (its `summary:` line, else `totals:`)."""
    match = _TOTAL.search(dump.read_text(errors="replace"))
    if match is None:
        raise ValueError(f"{dump} has no summary or totals line")
    return int(match[1])


def strace_counts(summary: str) -> dict[str, int]:
    """Calls per system call from `strace -c` output (its table; the `total` row left out)."""
    counts: dict[str, int] = {}
    for line in summary.splitlines():
        fields = line.split()
        # % time, seconds, usecs/call, calls, [errors,] syscall
        if len(fields) in (5, 6) and fields[0][0].isdigit() and fields[-1] != "total":
            counts[fields[-1]] = int(fields[3])
    if not counts:
        raise ValueError("no strace -c table in the output")
    return counts


class Counter(Protocol):
    """What is counted over the window: how the server starts, how the window opens and
    closes, and the total."""

    unit: str
    startup_timeout: float

    def command(self, argv: list[str]) -> list[str]: ...

    def open(self, pid: int) -> None: ...

    def close(self, pid: int) -> tuple[int, dict[str, int]]: ...


class Instructions:
    """callgrind: the instructions of every thread of the server."""

    unit = "Ir"
    startup_timeout = 600.0  # grpc and the OTel SDK import slowly under valgrind

    def __init__(self, workdir: Path, label: str) -> None:
        valgrind, control = shutil.which("valgrind"), shutil.which("callgrind_control")
        if valgrind is None or control is None:
            raise FileNotFoundError("valgrind not found: apt-get install -y valgrind")
        self._valgrind, self._control = valgrind, control
        self._out = workdir / f"{label}.callgrind"

    def command(self, argv: list[str]) -> list[str]:
        return [self._valgrind, "--tool=callgrind", f"--callgrind-out-file={self._out}", *argv]

    def open(self, pid: int) -> None:
        subprocess.run([self._control, "--zero", str(pid)], check=True, capture_output=True)

    def close(self, pid: int) -> tuple[int, dict[str, int]]:
        subprocess.run([self._control, "--dump=window", str(pid)], check=True, capture_output=True)
        dumps = sorted(self._out.parent.glob(f"{self._out.name}.*"))
        return callgrind_total(dumps[-1]), {}


class Syscalls:
    """strace -c -f: the system calls of every thread of the server."""

    unit = "syscalls"
    startup_timeout = 30.0

    def __init__(self, workdir: Path, label: str) -> None:
        strace = shutil.which("strace")
        if strace is None:
            raise FileNotFoundError("strace not found: apt-get install -y strace")
        self._strace = strace
        self._out = workdir / f"{label}.strace"
        self._tracer: subprocess.Popen[bytes] | None = None

    def command(self, argv: list[str]) -> list[str]:
        return argv

    def open(self, pid: int) -> None:
        self._tracer = subprocess.Popen(
            [self._strace, "-c", "-f", "-o", str(self._out), "-p", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_until_traced(pid, self._tracer.pid)

    def close(self, pid: int) -> tuple[int, dict[str, int]]:
        assert self._tracer is not None, "open() comes first"
        self._tracer.send_signal(signal.SIGINT)  # strace detaches and writes its table
        self._tracer.wait(timeout=60)
        counts = strace_counts(self._out.read_text())
        return sum(counts.values()), counts


def _wait_until_traced(pid: int, tracer: int) -> None:
    """Until every thread of `pid` is traced by `tracer` (its /proc status says so)."""
    deadline = time.monotonic() + ATTACH_TIMEOUT_S
    while True:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        tracers = {status_field(task / "status", "TracerPid") for task in tasks}
        if tracers == {str(tracer)}:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"strace did not attach to every thread of {pid}")
        time.sleep(0.05)


COUNTERS: dict[str, type[Instructions] | type[Syscalls]] = {
    "instructions": Instructions,
    "syscalls": Syscalls,
}


def count_one(
    procs: ProcessSet,
    config: str,
    workload: str,
    *,
    count: str,
    calls: int,
    concurrency: int,
    warmup_s: float,
    src: Path | None,
    label: str,
) -> dict[str, Any]:
    """Start `config` (on a fresh store), make `calls` calls, and return what `count` counted
    per call."""
    counter: Counter = COUNTERS[count](procs.workdir, label)
    spec = parse_config(config)
    unpinned = Pinning(server=(), client=(), pinned=False)
    sink = start_sink(procs, label, unpinned) if spec.kind in TELEMETRY_KINDS else None
    with provision(spec, procs.workdir, label) as store:
        argv, env = server_command(
            spec.kind, sink, PAYMENTS_PROCESSOR_TIMEOUT_SECONDS="30", **store.env
        )
        if src is not None:
            env["PYTHONPATH"] = str(src)
        server = procs.start(label, counter.command(argv), env, timeout=counter.startup_timeout)
        _prime(server.port)
        closed: list[tuple[int, dict[str, int]]] = []
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
                started=lambda: counter.open(server.pid),
                ended=lambda: closed.append(counter.close(server.pid)),
            ),
        )
        procs.stop(server, timeout=120)
    if sink is not None:
        procs.stop(sink)
    total, by_kind = closed[0]
    return {
        "config": config,
        "workload": workload,
        "count": count,
        "calls": load.calls,
        "errors": load.errors,
        "total": total,
        "per_call": total / max(load.calls, 1),
        "by_kind_per_call": {k: v / max(load.calls, 1) for k, v in by_kind.items()},
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks.callcost", description=__doc__.splitlines()[0]
    )
    add = parser.add_argument
    add(
        "--configs",
        default="full,off,floor",
        help=f"comma list of {', '.join(GRPC_KINDS)} or a store config such as full-sqlite",
    )
    add("--count", default="instructions", choices=tuple(COUNTERS), help="what is counted")
    add("--workload", default="new", choices=tuple(SCHEDULES), help="one workload (default new)")
    add("--calls", type=int, default=1000, help="calls counted per measurement (default 1000)")
    add("--concurrency", type=int, default=8, help="calls in flight (default 8)")
    add("--warmup", type=float, default=3.0, help="uncounted warm-up seconds (default 3)")
    add("--rounds", type=int, default=1, help="interleaved rounds (default 1)")
    add("--variant", type=source_tree, action="append", default=[], help="NAME=SRC, repeatable")
    add("--out", type=Path, default=RESULTS / "callcost.json", help="JSON results")
    opts = parser.parse_args(argv)
    opts.configs = [c.strip() for c in opts.configs.split(",") if c.strip()]
    try:
        specs = [parse_config(c) for c in opts.configs]
    except ValueError as exc:
        parser.error(f"--configs: {exc}")
    if replicated := [spec.name for spec in specs if spec.replicas != 1]:
        parser.error(f"--configs: {', '.join(replicated)}: callcost counts one server process")
    if marked := [spec.name for spec in specs if spec.variant is not None]:
        parser.error(f"--configs: {', '.join(marked)}: name the tree with --variant NAME=SRC")
    if over_http := [spec.name for spec in specs if spec.kind in HTTP_KINDS]:
        parser.error(
            f"--configs: {', '.join(over_http)}: callcost sends gRPC calls only; the JSON/HTTP "
            f"configurations are measured by `make bench` (benchmarks.run)"
        )
    if not opts.configs:
        parser.error("--configs: at least one configuration")
    if opts.calls < 1 or opts.concurrency < 1 or opts.rounds < 1:
        parser.error("--calls, --concurrency and --rounds must be >= 1")
    return opts


def markdown(results: list[dict[str, Any]], opts: argparse.Namespace) -> str:
    unit = COUNTERS[opts.count].unit
    lines = [
        f"## {unit.capitalize()} per call ({opts.count}): workload `{opts.workload}`, "
        f"{opts.calls} calls, concurrency {opts.concurrency}, {opts.rounds} round(s)",
        "",
        f"| variant | configuration | {unit}/call (median) | each round | errors |",
        "|---|---|---|---|---|",
    ]
    precision = 0 if unit == "Ir" else 2
    medians: dict[tuple[str, str], float] = {}
    for name in dict.fromkeys(r["variant"] for r in results):
        for config in opts.configs:
            runs = [r for r in results if r["variant"] == name and r["config"] == config]
            per_call = [r["per_call"] for r in runs]
            medians[(name, config)] = median = statistics.median(per_call)
            each = ", ".join(f"{value:,.{precision}f}" for value in per_call)
            errors = sum(r["errors"] for r in runs)
            lines.append(f"| {name} | {config} | {median:,.{precision}f} | {each} | {errors} |")
    lines.append("")
    for (name, config), value in medians.items():
        floor = medians.get((name, "floor"))
        if floor and config != "floor":
            lines.append(f"- {name}: {unit}/call {config}/floor {value / floor:.3f}")
        base = medians.get((THIS_TREE, config))
        if name != THIS_TREE and base:
            lines.append(f"- {config}: {THIS_TREE}/{name} {base / value:.3f}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    unit = COUNTERS[opts.count].unit
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
                            count=opts.count,
                            calls=opts.calls,
                            concurrency=opts.concurrency,
                            warmup_s=opts.warmup,
                            src=src,
                            label=label,
                        )
                        result.update(variant=name, src=str(src or "this tree"), round=round_no)
                        print(
                            f"[callcost] {label}: {result['per_call']:,.2f} {unit}/call, "
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
