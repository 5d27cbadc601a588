"""Which cores the server under test and the load generator run on.

The honest bench pins them apart: the server (every replica) on its own core(s) with
`taskset -c`, and everything else the benchmark starts (the load-generator workers, the OTLP
sink, the runner itself) on the other core(s). On a 2-core machine that is one core each, so
the server's CPU is its own and the client's share of its core shows when the client, not the
server, was the bottleneck (`benchmarks.report.client_bound`).

With one usable core nothing can be pinned apart; the run says so in its output and its
"pinned apart" check fails instead of pretending.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pinning:
    """The cores of the server under test and of the load generator. `pinned` is False when
    they share cores (one usable core, or `--no-pin`): then both sets are every usable core."""

    server: tuple[int, ...]
    client: tuple[int, ...]
    pinned: bool
    reason: str = ""  # why not pinned

    def describe(self) -> str:
        """One line for the report."""
        if self.pinned:
            return (
                f"server under test on core {cpu_list(self.server)} (`taskset -c`); load "
                f"generator, OTLP sink and runner on core {cpu_list(self.client)}"
            )
        return (
            f"NOT pinned apart ({self.reason}): server and load generator share core "
            f"{cpu_list(self.server)}, so throughput and latency also measure the client; "
            "server CPU µs/call is still the server's own"
        )


def cpu_list(cpus: tuple[int, ...]) -> str:
    """`(0, 1, 2)` -> `0,1,2`: the form `taskset -c` and Cpus_allowed_list use."""
    return ",".join(str(cpu) for cpu in cpus)


def parse_cpu_list(raw: str) -> tuple[int, ...]:
    """`0,2-3` -> (0, 2, 3); ValueError on anything else."""
    cpus: set[int] = set()
    for part in raw.split(","):
        first, sep, last = part.strip().partition("-")
        if not first.isdigit() or (sep and not last.isdigit()):
            raise ValueError(f"not a CPU list: {raw!r} (expected e.g. 0 or 0,2-3)")
        low, high = int(first), int(last) if sep else int(first)
        if high < low:
            raise ValueError(f"not a CPU list: {raw!r} (range {part.strip()} runs backwards)")
        cpus.update(range(low, high + 1))
    return tuple(sorted(cpus))


def usable_cpus() -> tuple[int, ...]:
    """The cores this process may run on (its affinity, which a container may narrow)."""
    return tuple(sorted(os.sched_getaffinity(0)))


def plan_pinning(
    usable: tuple[int, ...],
    server: tuple[int, ...] | None = None,
    client: tuple[int, ...] | None = None,
    *,
    enabled: bool = True,
) -> Pinning:
    """Server on `server` (default: the first usable core), client on `client` (default: every
    other usable core). ValueError when the sets overlap or name a core that is not usable."""
    if not enabled:
        return Pinning(usable, usable, pinned=False, reason="--no-pin")
    if len(usable) < 2:
        return Pinning(usable, usable, pinned=False, reason=f"{len(usable)} usable core")
    server = server or usable[:1]
    client = client or tuple(cpu for cpu in usable if cpu not in server)
    for name, cpus in (("server", server), ("client", client)):
        foreign = sorted(set(cpus) - set(usable))
        if foreign:
            raise ValueError(
                f"--{name}-cpus {cpu_list(cpus)}: core {cpu_list(tuple(foreign))} is not usable "
                f"here (usable: {cpu_list(usable)})"
            )
    if not client or set(server) & set(client):
        raise ValueError(
            f"--server-cpus {cpu_list(server)} and --client-cpus {cpu_list(client)} must be "
            "disjoint and both non-empty"
        )
    return Pinning(server, client, pinned=True)
