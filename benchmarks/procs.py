"""Child processes of the benchmark and what /proc says about them.

Every server or sink is started on port 0 with stdout and stderr redirected to files under the
run's work directory; its port is read from the `server_started` JSON line it writes there.
`ProcessSet` stops whatever is still running when the run ends, however it ends, and each child
also asks the kernel for SIGKILL if the benchmark itself dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1


class StartError(RuntimeError):
    """A server or sink did not announce its port in time, or exited first."""


@dataclass(slots=True)
class Child:
    """A started child process and what it announced."""

    name: str
    proc: subprocess.Popen[bytes]
    started: dict[str, Any]
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        return int(self.started["port"])

    def lines(self) -> list[dict[str, Any]]:
        """Every JSON line the child wrote to stdout so far (other lines are skipped)."""
        return list(_json_lines(self.stdout_path.read_text(errors="replace")))


@dataclass(slots=True)
class ProcessSet:
    """Owns every child it starts and stops them all on `close()` (SIGTERM, then SIGKILL)."""

    workdir: Path
    children: list[Child] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        timeout: float = 30.0,
        cpus: tuple[int, ...] | None = None,
    ) -> Child:
        """Start `argv`; with `cpus`, under `taskset -c` so it only ever runs on those cores."""
        if cpus is not None:
            argv = [taskset(), "-c", ",".join(map(str, cpus)), *argv]
        stdout_path = self.workdir / f"{name}.stdout"
        stderr_path = self.workdir / f"{name}.stderr"
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - the parent runs no threads of its own
            )
        child = Child(name, proc, {}, stdout_path, stderr_path)
        self.children.append(child)
        child.started = _wait_for_start(child, timeout)
        return child

    def stop(self, child: Child, timeout: float = 15.0) -> int:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit status."""
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
            try:
                child.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        if child in self.children:
            self.children.remove(child)
        return child.proc.returncode

    def close(self) -> None:
        for child in list(self.children):
            with contextlib.suppress(Exception):
                self.stop(child, timeout=5.0)


def taskset() -> str:
    """The path of util-linux's `taskset`."""
    path = shutil.which("taskset")
    if path is None:
        raise FileNotFoundError("taskset (util-linux) not found: install it, or run with --no-pin")
    return path


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL the calling process when its parent dies (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _wait_for_start(child: Child, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in child.lines():
            if line.get("event") == "server_started":
                return line
        if child.proc.poll() is not None:
            raise StartError(
                f"{child.name} exited with status {child.proc.returncode} before it started; "
                f"stderr:\n{_tail(child.stderr_path)}"
            )
        time.sleep(0.05)
    raise StartError(
        f"{child.name} printed no server_started line within {timeout:.0f}s; "
        f"stderr:\n{_tail(child.stderr_path)}"
    )


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _json_lines(text: str) -> list[dict[str, Any]]:
    parsed: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                parsed.append(value)
    return parsed


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid`, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # fields 3.. (comm may contain spaces)
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15
    return (utime + stime) / CLOCK_TICKS


def status_field(path: Path, key: str) -> str | None:
    """The value of `key` in a /proc status file (`/proc/PID/status`, or a thread's
    `/proc/PID/task/TID/status`), stripped; None when the file has no such line."""
    for line in path.read_text().splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return value.strip()
    return None


def _required_status(pid: int, key: str) -> str:
    value = status_field(Path(f"/proc/{pid}/status"), key)
    if value is None:
        raise KeyError(f"{key} not in /proc/{pid}/status")
    return value


def status_kib(pid: int, key: str) -> int:
    """A `kB` value from /proc/PID/status, e.g. VmHWM (peak RSS) or VmRSS."""
    return int(_required_status(pid, key).split()[0])


def cpus_allowed(pid: int) -> str:
    """The cores `pid` may run on, e.g. `1` or `0-1` (Cpus_allowed_list in /proc/PID/status)."""
    return _required_status(pid, "Cpus_allowed_list")


def host_cpu_ticks(cpus: tuple[int, ...] | None = None) -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine (the `cpu` line of /proc/stat), or summed over
    the `cpuN` lines of `cpus`."""
    wanted = {"cpu"} if cpus is None else {f"cpu{cpu}" for cpu in cpus}
    busy = total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if not fields or fields[0] not in wanted:
            continue
        values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
        idle = values[3] + values[4]
        busy, total = busy + sum(values) - idle, total + sum(values)
    return busy, total
