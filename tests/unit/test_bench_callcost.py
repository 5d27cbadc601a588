"""`make bench-count`: what it reads from a callgrind dump or strace's table and what it
reports. (Running it is `make bench-count`; valgrind makes it minutes long, so the tests pin
the logic only.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.callcost import (
    THIS_TREE,
    callgrind_total,
    markdown,
    parse_args,
    strace_counts,
)
from benchmarks.stores import HTTP_KINDS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("events: Ir\nsummary: 1090061462\ntotals: 1106539556\n", 1090061462),
        ("events: Ir\ntotals: 42\n", 42),
    ],
)
def test_the_total_is_the_summary_line_else_totals(
    tmp_path: Path, text: str, expected: int
) -> None:
    dump = tmp_path / "window.1"
    dump.write_text(text)
    assert callgrind_total(dump) == expected


def test_a_dump_without_a_total_is_refused(tmp_path: Path) -> None:
    dump = tmp_path / "window.1"
    dump.write_text("events: Ir\n")
    with pytest.raises(ValueError, match="no summary"):
        callgrind_total(dump)


STRACE_TABLE = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 41.20    0.012000           3      4000           epoll_wait
 30.00    0.009000           2      3000       120 futex
  0.10    0.000030          15         2           getpid
------ ----------- ----------- --------- --------- ----------------
100.00    0.021030           3      7002       120 total
"""


def test_strace_counts_are_read_per_system_call_without_the_total() -> None:
    assert strace_counts(STRACE_TABLE) == {"epoll_wait": 4000, "futex": 3000, "getpid": 2}


def test_an_output_without_a_table_is_refused() -> None:
    with pytest.raises(ValueError, match="no strace"):
        strace_counts("strace: Process 42 detached\n")


def result(name: str, config: str, per_call: float, errors: int = 0) -> dict[str, Any]:
    return {"variant": name, "config": config, "per_call": per_call, "errors": errors}


def test_the_report_gives_medians_and_ratios_to_the_floor_and_between_variants() -> None:
    opts = parse_args(["--configs", "full,floor", "--rounds", "3"])
    results = [
        *(result(THIS_TREE, "full", v) for v in (2000.0, 2100.0, 1900.0)),
        *(result(THIS_TREE, "floor", v) for v in (1000.0, 1000.0, 1000.0)),
        *(result("before", "full", v) for v in (4000.0, 4000.0, 4100.0)),
        *(result("before", "floor", v) for v in (1000.0, 1000.0, 1000.0)),
    ]
    text = markdown(results, opts)
    assert "| this | full | 2,000 | 2,000, 2,100, 1,900 | 0 |" in text
    assert "- this: Ir/call full/floor 2.000" in text
    assert "- full: this/before 0.500" in text
    assert text.startswith("## Ir per call (instructions)")


@pytest.mark.parametrize(
    "argv",
    [
        ["--configs", "nonsense"],
        ["--calls", "0"],
        ["--rounds", "0"],
        ["--configs", "full-sqlite-x2"],
    ],
)
def test_bad_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


@pytest.mark.parametrize("config", HTTP_KINDS)
def test_http_configurations_are_refused_as_callcost_sends_grpc_only(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--configs", f"full,{config}"])
    assert f"--configs: {config}: callcost sends gRPC calls only" in capsys.readouterr().err


def test_a_variant_is_named_by_its_source_tree_not_in_configs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--configs", "full,full@before"])
    assert (
        "--configs: full@before: name the tree with --variant NAME=SRC" in capsys.readouterr().err
    )
