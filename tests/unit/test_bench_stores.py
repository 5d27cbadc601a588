"""`make bench --store/--replicas`: configuration names, their expansion, the store ratios and
targets, and how the load generator spreads calls over replicas. (Running the benchmark itself
is `make bench`; these pin the logic that decides what it measures and how it judges it.)"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, cast

import pytest

from benchmarks import report
from benchmarks.loadgen import Traffic
from benchmarks.run import parse_args
from benchmarks.stores import (
    Config,
    bench_location,
    expand,
    parse_config,
    source_tree,
    with_database,
    with_variants,
)

HONEST = report.RunChecks(errors=0, client_bound_rounds=0, pinned=True, rounds=3)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("full", Config("full", "full")),
        ("off", Config("off", "off")),
        ("floor-sync", Config("floor-sync", "floor-sync")),
        ("full-sqlite", Config("full-sqlite", "full", "sqlite")),
        ("full-sqlite-normal", Config("full-sqlite-normal", "full", "sqlite", "normal")),
        ("full-postgresql-x2", Config("full-postgresql-x2", "full", "postgresql", replicas=2)),
        ("off-sqlite-normal", Config("off-sqlite-normal", "off", "sqlite", "normal")),
        ("off-postgresql", Config("off-postgresql", "off", "postgresql")),
        (
            "full-sqlite-normal-x3",
            Config("full-sqlite-normal-x3", "full", "sqlite", "normal", replicas=3),
        ),
        ("full@before", Config("full@before", "full", variant="before")),
        ("off-sqlite@b2", Config("off-sqlite@b2", "off", "sqlite", variant="b2")),
        ("http@before", Config("http@before", "http", variant="before")),
        (
            "full-postgresql-x2@before",
            Config("full-postgresql-x2@before", "full", "postgresql", replicas=2, variant="before"),
        ),
    ],
)
def test_a_configuration_name_says_kind_store_sqlite_setting_and_replicas(
    name: str, expected: Config
) -> None:
    assert parse_config(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "full-x2",
        "off-x2",
        "full-memory",
        "full-mysql",
        "full-sqlite-x1",
        "full-postgresql-normal",
        "floor-sqlite",
        "fast",
        "floor@before",  # not served by payments-server: no variant of it
        "proto@before",
        "full@",
        "full@a-b",
        "fast@before",
    ],
)
def test_an_unknown_or_unshareable_configuration_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"configuration|one process only"):
        parse_config(name)


def test_variants_follow_each_payments_server_configuration_in_the_round() -> None:
    assert with_variants(["full", "full-sqlite", "off", "proto", "floor", "http"], ["a", "b"]) == [
        "full",
        "full@a",
        "full@b",
        "full-sqlite",
        "full-sqlite@a",
        "full-sqlite@b",
        "off",
        "off@a",
        "off@b",
        "proto",
        "floor",
        "http",
        "http@a",
        "http@b",
    ]


def test_a_variant_names_a_source_tree_holding_the_package(tmp_path: Path) -> None:
    (tmp_path / "payments_service").mkdir()
    assert source_tree(f"before={tmp_path}") == ("before", tmp_path.resolve())
    opts = parse_args(["--configs", "full,floor", "--variant", f"before={tmp_path}"])
    assert opts.configs == ["full", "full@before", "floor"]
    assert opts.sources == {"before": tmp_path.resolve()}


@pytest.mark.parametrize(
    "raw",
    ["before={missing}", "={tree}", "a-b={tree}", "before"],
)
def test_a_variant_without_a_package_tree_or_a_plain_name_is_refused(
    raw: str, tmp_path: Path
) -> None:
    (tmp_path / "payments_service").mkdir()
    with pytest.raises(Exception, match="NAME=SRC"):
        source_tree(raw.format(missing=tmp_path / "missing", tree=tmp_path))


def test_a_variant_named_twice_stops_the_run(tmp_path: Path) -> None:
    (tmp_path / "payments_service").mkdir()
    with pytest.raises(SystemExit) as stopped:
        parse_args(["--variant", f"a={tmp_path}", "--variant", f"a={tmp_path}"])
    assert stopped.value.code == 2


def test_full_expands_per_store_setting_and_replica_count_and_memory_is_never_replicated() -> None:
    names = expand(
        ["full", "off", "floor"], ["memory", "sqlite", "postgresql"], ["full", "normal"], [1, 2]
    )
    assert names == [
        "full",
        "full-sqlite",
        "full-sqlite-x2",
        "full-sqlite-normal",
        "full-sqlite-normal-x2",
        "full-postgresql",
        "full-postgresql-x2",
        "off",
        "floor",
    ]


def test_the_default_run_is_unchanged_by_the_store_options() -> None:
    opts = parse_args([])
    assert opts.configs == ["full", "off", "proto", "floor", "floor-sync", "http", "http-floor"]


def test_store_options_expand_full_in_the_interleaved_order() -> None:
    opts = parse_args(["--store", "memory,postgresql", "--configs", "full,floor"])
    assert opts.configs == ["full", "full-postgresql", "floor"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--store", "redis"],
        ["--replicas", "0"],
        ["--replicas", "two"],
        ["--sqlite-synchronous", "off"],
        ["--configs", "full-memory-x2"],
        ["--configs", "full", "--store", "memory", "--replicas", "2"],  # nothing left to run
    ],
)
def test_bad_store_options_stop_the_run_before_it_measures(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_args(argv)
    assert stopped.value.code == 2


def test_the_bench_database_points_each_measurement_at_its_own_database() -> None:
    url = "postgresql://bench:s3cret@db:5433/test?sslmode=disable"
    assert with_database(url, "payments_bench_1") == (
        "postgresql://bench:s3cret@db:5433/payments_bench_1?sslmode=disable"
    )


@pytest.mark.parametrize("url", ["mysql://u:s3cret@h/db", "postgresql://u:s3cret@h:99999/db"])
def test_a_bad_bench_database_url_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ValueError, match="PAYMENTS_BENCH_DATABASE_URL") as refused:
        bench_location({"PAYMENTS_BENCH_DATABASE_URL": url})
    assert "s3cret" not in str(refused.value)


def by_config(**throughputs: float) -> dict[str, dict[str, Any]]:
    return {
        name.replace("_", "-"): {
            "throughput": tps,
            "p99_ms": 10.0,
            "server_cpu_us_per_call": 1e6 / tps,
        }
        for name, tps in throughputs.items()
    }


def test_store_and_replica_ratios_come_from_the_medians() -> None:
    ratios = report.ratios(
        by_config(full=1000.0, full_sqlite=700.0, full_sqlite_x2=1050.0, full_postgresql=500.0)
    )
    assert ratios["throughput full-sqlite/full"] == pytest.approx(0.7)
    assert ratios["throughput full-postgresql/full"] == pytest.approx(0.5)
    assert ratios["throughput full-sqlite-x2/full-sqlite"] == pytest.approx(1.5)
    assert ratios["throughput full-sqlite-normal/full"] is None  # did not run
    assert "throughput full-postgresql-x2/full-postgresql" not in ratios


def test_this_tree_is_compared_with_each_variant_from_the_medians() -> None:
    ratios = report.ratios(
        {
            name: {key: value for _, key in report.RATIO_METRICS}
            for name, value in (("full", 400.0), ("full@before", 500.0), ("off", 300.0))
        }
    )
    assert ratios["CPU/call full/full@before"] == pytest.approx(0.8)
    assert "CPU/call off/off@before" not in ratios  # no variant of it ran


@pytest.mark.parametrize(
    ("sqlite", "postgresql", "verdicts"),
    [
        (700.0, 600.0, ("PASS", "PASS")),
        (699.0, 599.0, ("FAIL", "FAIL")),
    ],
)
def test_durable_store_targets_are_07_and_06_of_full_on_memory(
    sqlite: float, postgresql: float, verdicts: tuple[str, str]
) -> None:
    ratios = report.ratios(by_config(full=1000.0, full_sqlite=sqlite, full_postgresql=postgresql))
    checks = {t["name"]: t["result"] for t in report.targets(ratios, HONEST)}
    got = (checks["throughput full-sqlite/full"], checks["throughput full-postgresql/full"])
    assert got == verdicts


def test_ratios_and_targets_of_configurations_that_did_not_run_are_left_out_of_the_markdown() -> (
    None
):
    ratios = report.ratios(by_config(full=1000.0, floor=2000.0))
    checks = report.targets(ratios, HONEST)
    lines = report.ratio_lines(ratios) + "\n" + report.target_lines(checks)
    assert "throughput full/floor: 0.500" in lines
    assert "sqlite" not in lines
    assert "postgresql" not in lines
    assert "errors == 0: 0 **PASS**" in lines


def test_the_database_cpu_median_skips_rounds_without_it_and_is_none_without_any() -> None:
    base = dict.fromkeys(report.MEDIAN_KEYS, 1.0) | {"errors": 0, "client_bound": False}
    rounds: list[dict[str, float | None]] = [
        {**base, "db_cpu_us_per_call": v} for v in (300.0, None, 100.0)
    ]
    assert report.medians(rounds)["db_cpu_us_per_call"] == 200.0
    assert report.medians([base, base])["db_cpu_us_per_call"] is None


def test_successive_calls_alternate_between_the_replicas() -> None:
    replicas = [object(), object()]
    traffic = Traffic(cast("list[Any]", replicas), "tag")
    picked = Counter(id(traffic.stub()) for _ in range(10))
    assert sorted(picked.values()) == [5, 5]
    assert set(picked) == {id(r) for r in replicas}
