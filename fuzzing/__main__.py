"""The long fuzzing campaign: `make fuzz` (or `python -m fuzzing`).

Runs the properties of `fuzzing.properties` (four over gRPC, four over JSON/HTTP) against one
real in-process server each,
with `--cases` examples split evenly over them and a seeded (reproducible) hypothesis run,
then prints a histogram of the status codes the server answered. Exits 1 when a property
failed (hypothesis prints the shrunk case) or any call was answered UNKNOWN or INTERNAL.

    python -m fuzzing --cases 20000 --seed 7
    FUZZ_CASES=40000 FUZZ_SEED=3 make fuzz
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections import Counter

from hypothesis import HealthCheck, seed, settings

from fuzzing.harness import FORBIDDEN, Harness
from fuzzing.properties import PROPERTIES

SOURCES = (
    "fields",
    "bytes",
    "http-fields",
    "http-bytes",
    "http-headers",
    "http-paths",
    "probe",
    "check",
)
CASES = frozenset(SOURCES) - {"probe", "check"}  # the drawn examples; probes and checks follow


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fuzzing", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cases",
        type=int,
        default=int(os.environ.get("FUZZ_CASES", "20000")),
        help="examples in all, split evenly over the properties (env FUZZ_CASES, default 20000)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=int(os.environ.get("FUZZ_SEED", "20261125")),
        help="hypothesis seed; the same seed replays the same campaign (env FUZZ_SEED)",
    )
    parser.add_argument(
        "--only",
        choices=sorted(PROPERTIES),
        action="append",
        help="run only these properties (repeatable; default: all eight)",
    )
    return parser.parse_args(argv)


def run_property(
    name: str, examples: int, campaign_seed: int
) -> tuple[Counter[tuple[str, str, str]], Counter[tuple[str, str]], str | None]:
    """Run one property; return its code histogram, how its RequestPayment cases ended, and
    the failure (None when it held)."""
    failure = None
    with Harness() as harness:
        prop = PROPERTIES[name](harness)
        configured = settings(
            max_examples=examples,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        )(prop)
        try:
            seed(campaign_seed)(configured)()
            harness.assert_no_error_logs()
        except Exception:  # a property failed: report it after the histogram
            failure = traceback.format_exc()
        return harness.histogram, harness.outcomes, failure


def print_histogram(histogram: Counter[tuple[str, str, str]]) -> None:
    print(f"{'source':<12} {'rpc':<15} {'code':<20} {'calls':>8}")
    for (source, rpc, code), count in sorted(
        histogram.items(), key=lambda item: (SOURCES.index(item[0][0]), item[0][1], -item[1])
    ):
        print(f"{source:<12} {rpc:<15} {code:<20} {count:>8}")
    by_code: Counter[str] = Counter()
    for (_, _, code), count in histogram.items():
        by_code[code] += count
    print("\nall calls by code: " + ", ".join(f"{c} {n}" for c, n in by_code.most_common()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.only or list(PROPERTIES)
    per_property = max(1, args.cases // len(names))
    print(
        f"fuzzing: {per_property} examples x {len(names)} properties, seed {args.seed}", flush=True
    )
    histogram: Counter[tuple[str, str, str]] = Counter()
    outcomes: Counter[tuple[str, str]] = Counter()
    failures: list[str] = []
    started = time.perf_counter()
    for name in names:
        began = time.perf_counter()
        counts, ended, failure = run_property(name, per_property, args.seed)
        histogram.update(counts)
        outcomes.update(ended)
        cases = sum(n for (source, _, _), n in counts.items() if source in CASES)
        verdict = "FAILED" if failure else "held"
        print(
            f"  {name:<15} {cases:>6} cases  {time.perf_counter() - began:6.1f} s  {verdict}",
            flush=True,
        )
        if failure:
            failures.append(f"{name}:\n{failure}")
    cases = sum(n for (source, _, _), n in histogram.items() if source in CASES)
    http_cases = sum(
        n for (source, _, _), n in histogram.items() if source in CASES and "http" in source
    )
    calls = sum(histogram.values())
    print(
        f"\n{cases} cases ({http_cases} over JSON/HTTP), {calls} calls in "
        f"{time.perf_counter() - started:.1f} s\n"
    )
    print_histogram(histogram)
    print(
        "\nRequestPayment cases ended: "
        + ", ".join(
            f"{source} {outcome} {count}"
            for (source, outcome), count in sorted(outcomes.items())
            if source != "probe"
        )
    )
    forbidden = sum(
        n for (_, _, code), n in histogram.items() if code in {c.name for c in FORBIDDEN}
    )
    print(f"\nUNKNOWN or INTERNAL answers: {forbidden}")
    for failure in failures:
        print(f"\nproperty failed: {failure}", file=sys.stderr)
    return 1 if forbidden or failures else 0


if __name__ == "__main__":
    sys.exit(main())
