"""Check the Grafana dashboard against the metrics the service actually exports.

`python scripts/check_dashboard.py [deploy/grafana/dashboards/payments.json]` loads the dashboard,
checks that it is a valid dashboard JSON, extracts the metric names from every PromQL query in it
(panel targets, including panels nested in rows, and query variables) and fails when one of them
is not a metric the service exports nor a series the rules in deploy/prometheus/rules record, or
when the latency panels lost their exemplars. A renamed metric then breaks `make deploy-check`
instead of leaving an empty panel.

`dashboard_metric_names(path)` is importable for tests.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_DASHBOARD = (
    Path(__file__).resolve().parent.parent / "deploy/grafana/dashboards/payments.json"
)
RULES_DIR = Path(__file__).resolve().parent.parent / "deploy/prometheus/rules"
_RECORD = re.compile(r"^\s*-?\s*record:\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*$", re.MULTILINE)

# What the service exports (payments_service.observability.metrics); a histogram contributes its
# _bucket, _sum and _count series.
EXPORTED_METRICS: frozenset[str] = frozenset(
    {
        "grpc_server_started_total",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
        "grpc_server_handling_seconds_sum",
        "grpc_server_handling_seconds_count",
        "payments_created_total",
        "payments_replayed_total",
        "payments_idempotency_conflicts_total",
        "payments_validation_rejected_total",
        "payments_settled_total",
        "payments_rate_limited_total",
    }
)

# PromQL words that are not metric names when they stand without a following "(".
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan"}
)
_NAME_MATCHER = re.compile(r'__name__\s*=\s*"([A-Za-z_:][A-Za-z0-9_:]*)"')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_LABEL_VALUES = re.compile(r"\blabel_values\s*\(\s*([^,()]*?)\s*(?:,\s*\w+\s*)?\)")
_SIMPLE_VARIABLE_QUERY = re.compile(r"\b(?:label_names|metrics)\s*\([^()]*\)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_TOKEN = re.compile(r"\d[\w.]*|([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names one PromQL expression (possibly with Grafana variables) selects."""
    names = set(_NAME_MATCHER.findall(expr))  # {__name__="metric"}
    text = _STRING.sub(" ", expr)  # label values, regexes
    text = _GRAFANA_VARIABLE.sub(" ", text)  # $__rate_interval, ${method}
    text = _LABEL_VALUES.sub(r" \1 ", text)  # variable query: keep the metric, drop the label
    text = _SIMPLE_VARIABLE_QUERY.sub(" ", text)
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # ranges and subqueries
    text = _GROUPING.sub(" ", text)  # label lists of by (...), on (...), ...
    for match in _TOKEN.finditer(text):
        word, call = match.group(1), match.group(2)
        if word is None or call is not None:  # a number, or a function / aggregation
            continue
        if word.lower() not in _KEYWORDS:
            names.add(word)
    return names


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows keep their panels here


def _variable_queries(dashboard: dict[str, Any]) -> Iterator[str]:
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if isinstance(query, str) and query:
            yield query


def load_dashboard(path: str | Path) -> dict[str, Any]:
    """Parse the dashboard file and check its overall shape; raises ValueError when invalid."""
    with Path(path).open(encoding="utf-8") as handle:
        dashboard = json.load(handle)  # json.JSONDecodeError is a ValueError
    if not isinstance(dashboard, dict):
        raise ValueError(f"{path}: the top level is not a JSON object")
    for key in ("uid", "title", "panels"):
        if key not in dashboard:
            raise ValueError(f"{path}: no {key!r}")
    if not isinstance(dashboard["panels"], list) or not dashboard["panels"]:
        raise ValueError(f"{path}: 'panels' is not a non-empty list")
    return dashboard


def dashboard_queries(path: str | Path) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and query variables."""
    dashboard = load_dashboard(path)
    queries = [
        target["expr"]
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets", [])
        if isinstance(target.get("expr"), str) and target["expr"].strip()
    ]
    return queries + list(_variable_queries(dashboard))


def dashboard_metric_names(path: str | Path) -> set[str]:
    """The metric names the PromQL queries of the dashboard at `path` use."""
    names: set[str] = set()
    for expr in dashboard_queries(path):
        names |= promql_metric_names(expr)
    return names


def recorded_metric_names(rules_dir: Path = RULES_DIR) -> set[str]:
    """The series the recording rules in `rules_dir` (Prometheus rule files) record."""
    return {
        name
        for path in sorted(rules_dir.glob("*.yml"))
        for name in _RECORD.findall(path.read_text(encoding="utf-8"))
    }


def problems(path: str | Path) -> list[str]:
    """Everything wrong with the dashboard at `path`; empty when it is fine."""
    try:
        dashboard = load_dashboard(path)
        names = dashboard_metric_names(path)
    except (OSError, ValueError) as exc:
        return [f"invalid dashboard: {exc}"]
    known = EXPORTED_METRICS | recorded_metric_names()
    found = [f"unknown metric {name!r}" for name in sorted(names - known)]
    if not names:
        found.append("no PromQL query found")
    latency_targets = [
        target
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets", [])
        if "grpc_server_handling_seconds_bucket" in str(target.get("expr", ""))
    ]
    if not latency_targets:
        found.append("no latency panel (grpc_server_handling_seconds_bucket)")
    elif not all(target.get("exemplar") is True for target in latency_targets):
        found.append('latency queries must have exemplars enabled ("exemplar": true)')
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DEFAULT_DASHBOARD
    found = problems(path)
    if found:
        for problem in found:
            print(f"{path}: {problem}", file=sys.stderr)
        return 1
    names = sorted(dashboard_metric_names(path))
    count = len(dashboard_queries(path))
    print(f"{path}: OK, {count} queries use {len(names)} exported or recorded metrics:")
    for name in names:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
