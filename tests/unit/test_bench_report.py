"""`make bench`'s honesty rules: the server and the load generator pinned apart, each process's
CPU share, the client-bound flag, server CPU per call as the primary figure and the ratios
computed on it first. (Running the benchmark itself is `make bench`; these pin the logic that
decides what its report says.)"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from benchmarks import report
from benchmarks.loadgen import LoadResult
from benchmarks.measure import CpuWatch, summarise
from benchmarks.pinning import Pinning, parse_cpu_list, plan_pinning
from benchmarks.run import comparison_markdown, default_workers, parse_args, summarise_workload

TWO_CORES = Pinning(server=(0,), client=(1,), pinned=True)
HONEST = report.RunChecks(errors=0, client_bound_rounds=0, pinned=True, rounds=3)


def measurement(
    config: str,
    round_no: int = 1,
    *,
    cpu_us: float = 500.0,
    throughput: float = 2000.0,
    client_pct: float = 50.0,
    errors: int = 0,
) -> dict[str, Any]:
    """One round of one configuration, as `benchmarks.measure` makes it."""
    return {
        **dict.fromkeys(report.MEDIAN_KEYS, 1.0),
        "config": config,
        "workload": "mix",
        "round": round_no,
        "server_cpu_us_per_call": cpu_us,
        "throughput": throughput,
        "p99_ms": 10.0,
        "client_cpu_pct": client_pct,
        "client_bound": report.client_bound(client_pct, client_pct),
        "errors": errors,
    }


# --------------------------------------------------------------------------- pinning


@pytest.mark.parametrize(
    ("usable", "server", "client"),
    [
        ((0, 1), (0,), (1,)),
        ((0, 1, 2, 3), (0,), (1, 2, 3)),
        ((2, 5), (2,), (5,)),  # a container may hand out any cores
    ],
)
def test_by_default_the_server_gets_the_first_usable_core_and_the_client_the_others(
    usable: tuple[int, ...], server: tuple[int, ...], client: tuple[int, ...]
) -> None:
    assert plan_pinning(usable) == Pinning(server, client, pinned=True)


def test_the_cores_are_configurable() -> None:
    assert plan_pinning((0, 1, 2, 3), (2, 3), (0,)) == Pinning((2, 3), (0,), pinned=True)
    assert plan_pinning((0, 1, 2), (1,)) == Pinning((1,), (0, 2), pinned=True)


@pytest.mark.parametrize(
    ("server", "client", "message"),
    [
        ((0,), (0, 1), "disjoint"),
        ((0, 1), None, "disjoint"),  # nothing left for the client
        ((4,), None, "core 4 is not usable"),
        ((0,), (7,), "core 7 is not usable"),
    ],
)
def test_overlapping_or_unusable_cores_are_refused(
    server: tuple[int, ...], client: tuple[int, ...] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        plan_pinning((0, 1), server, client)


def test_one_usable_core_is_said_to_be_shared_not_pinned() -> None:
    pinning = plan_pinning((3,))
    assert pinning == Pinning((3,), (3,), pinned=False, reason="1 usable core")
    assert pinning.describe().startswith("NOT pinned apart (1 usable core)")


def test_no_pin_shares_every_usable_core() -> None:
    assert plan_pinning((0, 1), enabled=False) == Pinning(
        (0, 1), (0, 1), pinned=False, reason="--no-pin"
    )


@pytest.mark.parametrize(
    ("raw", "cpus"), [("1", (1,)), ("0,2", (0, 2)), ("0-2,5", (0, 1, 2, 5)), (" 3 ,1", (1, 3))]
)
def test_a_cpu_list_reads_like_tasksets(raw: str, cpus: tuple[int, ...]) -> None:
    assert parse_cpu_list(raw) == cpus


@pytest.mark.parametrize("raw", ["", "a", "1-", "3-1", "-1", "1,,2"])
def test_a_bad_cpu_list_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="CPU list"):
        parse_cpu_list(raw)


@pytest.mark.parametrize(
    ("pinning", "workers"),
    [
        (TWO_CORES, 1),
        (Pinning((0,), (1, 2, 3), pinned=True), 3),
        (Pinning((0, 1, 2, 3), (0, 1, 2, 3), pinned=False), 2),
        (Pinning((0,), (0,), pinned=False), 1),
    ],
)
def test_one_load_generator_process_per_client_core(pinning: Pinning, workers: int) -> None:
    assert default_workers(pinning) == workers


# --------------------------------------------------------------------------- CPU shares


def watched(pinning: Pinning, used: dict[str, float]) -> CpuWatch:
    cpu = CpuWatch({}, pinning)
    cpu.used = used
    cpu.busy = {"host": 0.9, "server": 1.0, "client": 0.8}
    return cpu


def load(calls: int, window_s: float = 10.0) -> LoadResult:
    return LoadResult(window_s, calls, list(range(1, calls + 1)), {"OK": calls}, 0)


def test_each_process_group_is_priced_per_call_and_as_a_share_of_its_own_cores() -> None:
    used = {"server": 9.0, "client-0": 4.0, "client-1": 5.0, "sink": 0.5}
    result = summarise(load(20_000), watched(Pinning((0,), (1, 2), True), used), 1024)
    assert result["server_cpu_us_per_call"] == pytest.approx(450.0)
    assert result["server_cpu_pct"] == pytest.approx(90.0)  # 9 s of 1 core in 10 s
    assert result["client_cpu_us_per_call"] == pytest.approx(450.0)  # both workers
    assert result["client_cpu_pct"] == pytest.approx(45.0)  # 9 s of 2 cores in 10 s
    assert result["client_bound"] is False
    assert (result["server_cores_busy_pct"], result["client_cores_busy_pct"]) == (100.0, 80.0)


def test_replicas_add_up_on_the_server_side() -> None:
    used = {"server": 3.0, "server-1": 3.0, "client-0": 2.0}
    result = summarise(load(10_000), watched(TWO_CORES, used), 1024)
    assert result["server_cpu_us_per_call"] == pytest.approx(600.0)


@pytest.mark.parametrize(
    ("client_s", "bound"), [(8.9, False), (9.0, False), (9.1, True), (10.0, True)]
)
def test_a_round_whose_load_generator_used_over_90_percent_of_its_core_is_client_bound(
    client_s: float, bound: bool
) -> None:
    result = summarise(load(10_000), watched(TWO_CORES, {"client-0": client_s}), 1024)
    assert result["client_bound"] is bound


@pytest.mark.parametrize(
    ("workers", "bound"),
    [
        ({"client-0": 9.5}, True),  # one event loop near its core: saturated
        ({"client-0": 8.0, "client-1": 8.0}, False),
        ({"client-0": 9.5, "client-1": 9.5, "client-2": 9.5}, True),
    ],
)
def test_a_saturated_worker_is_flagged_even_when_other_client_cores_idle(
    workers: dict[str, float], bound: bool
) -> None:
    pinning = Pinning((0,), (1, 2, 3), pinned=True)
    result = summarise(load(10_000), watched(pinning, workers), 1024)
    assert result["client_bound"] is bound


# --------------------------------------------------------------------------- the report


def test_server_cpu_per_call_is_the_first_figure_of_every_table() -> None:
    for columns in (report.COLUMNS, report.ROUND_COLUMNS):
        assert columns[0][1] == report.PRIMARY == "server_cpu_us_per_call"
    header = report.table([("full", measurement("full"))], report.COLUMNS).splitlines()[0]
    assert header.startswith("| configuration | server CPU µs/call | calls/s |")


def test_ratios_are_computed_on_server_cpu_per_call_first() -> None:
    medians = {
        "full": measurement("full", cpu_us=900.0, throughput=1000.0),
        "off": measurement("off", cpu_us=600.0, throughput=1500.0),
        "proto": measurement("proto", cpu_us=750.0, throughput=1250.0),
        "floor": measurement("floor", cpu_us=300.0, throughput=3000.0),
    }
    ratios = report.ratios(medians)
    present = [name for name, value in ratios.items() if value is not None]
    assert present[:5] == [
        "CPU/call full/floor",
        "CPU/call off/floor",
        "CPU/call full/off",
        "CPU/call full/proto",
        "CPU/call proto/floor",
    ]
    assert all(name.startswith("CPU/call") for name in present[:5])
    assert ratios["CPU/call full/floor"] == pytest.approx(3.0)
    assert ratios["CPU/call full/proto"] == pytest.approx(1.2)
    assert ratios["throughput full/proto"] == pytest.approx(0.8)
    assert ratios["p99 full/floor"] == pytest.approx(1.0)
    assert ratios["CPU/call floor-sync/floor"] is None  # did not run
    lines = report.ratio_lines(ratios).splitlines()
    assert lines[0] == "- CPU/call full/floor: 3.000"


def test_medians_count_the_client_bound_rounds() -> None:
    rounds = [measurement("floor", client_pct=pct) for pct in (95.0, 50.0, 91.0)]
    assert report.medians(rounds)["client_bound_rounds"] == 2


@pytest.mark.parametrize(
    ("run", "failed"),
    [
        (HONEST, set()),
        (replace(HONEST, errors=1), {"errors"}),
        (replace(HONEST, client_bound_rounds=2), {"client-bound rounds"}),
        (replace(HONEST, pinned=False), {"server pinned apart from the client"}),
        (replace(HONEST, rounds=2), {"interleaved rounds"}),
    ],
)
def test_a_run_that_did_not_measure_the_server_fails_its_own_targets(
    run: report.RunChecks, failed: set[str]
) -> None:
    checks = report.targets({}, run)
    assert {c["name"] for c in checks if c["result"] == "FAIL"} == failed


def test_the_issue_19_targets_judge_cpu_per_call_and_proto() -> None:
    ratios = report.ratios(
        {
            "full": measurement("full", cpu_us=610.0, throughput=900.0),
            "proto": measurement("proto", cpu_us=500.0, throughput=1000.0),
            "floor": measurement("floor", cpu_us=300.0, throughput=2000.0),
        }
    )
    checks = report.targets(ratios, HONEST)
    verdicts = {c["name"]: c["result"] for c in checks}
    assert verdicts["CPU/call full/floor"] == "FAIL"  # 2.03 > 2.0
    assert verdicts["throughput full/proto"] == "PASS"  # 0.9
    assert verdicts["CPU/call off/floor"] == "n/a"  # off did not run
    text = report.target_lines(checks)
    assert "- CPU/call full/floor <= 2: 2.033 **FAIL**" in text
    assert "- client-bound rounds == 0: 0 **PASS**" in text


def test_the_summary_names_every_client_bound_round() -> None:
    rows = [
        ("full r1", measurement("full", client_pct=40.0)),
        ("floor r1", measurement("floor", client_pct=96.4)),
    ]
    line = report.client_bound_line(rows)
    assert line.startswith("**1 of 2 rounds were client-bound**")
    assert "floor r1 (96 %)" in line
    assert "full r1" not in line
    assert "none client-bound" in report.client_bound_line(rows[:1])


def test_the_round_table_flags_a_client_bound_round() -> None:
    rows = [("floor r1", measurement("floor", client_pct=97.0)), ("full r1", measurement("full"))]
    table = report.table(rows, report.ROUND_COLUMNS).splitlines()
    assert "| **YES** |" in table[2]
    assert "| no |" in table[3]


def test_the_markdown_states_the_pinning_and_the_flag_in_its_summary() -> None:
    opts = parse_args(["--configs", "full,floor", "--rounds", "2"])
    opts.pinning = TWO_CORES
    rounds = [
        measurement("full", 1),
        measurement("floor", 1, client_pct=95.0),
        measurement("full", 2),
        measurement("floor", 2),
    ]
    summary = summarise_workload(["full", "floor"], rounds, "mix", pinned=True, rounds=2)
    text = comparison_markdown({"workloads": {"mix": summary}}, opts)
    assert text.startswith("Pinning: server under test on core 0 (`taskset -c`)")
    assert "**1 of 4 rounds were client-bound**" in text
    assert "- client-bound rounds == 0: 1 **FAIL**" in text
    assert "- interleaved rounds >= 3: 2 **FAIL**" in text
    assert summary["medians"]["floor"]["client_bound_rounds"] == 1
