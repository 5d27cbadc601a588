"""The suite's budget for the fuzzing properties: small, derandomized (the same examples on
every run, so CI is reproducible), no example database. `make fuzz` runs the long campaign."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

SUITE = settings(
    derandomize=True,
    database=None,
    deadline=None,  # a case is a network round trip; its time says nothing about the property
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def budget(examples: int) -> settings:
    return settings(SUITE, max_examples=examples)
