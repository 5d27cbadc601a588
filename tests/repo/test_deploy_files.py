"""Deployment files that tests can check without Docker: the Grafana dashboard's queries use
metrics the service really exports, and the Prometheus config scrapes the metrics port."""

from __future__ import annotations

import re
from pathlib import Path

from scripts import check_dashboard
from tests.metric_names import served_metric_names, served_sample_names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "payments.json"


def test_every_dashboard_query_uses_a_metric_the_service_exports_or_a_rule_records() -> None:
    used = check_dashboard.dashboard_metric_names(DASHBOARD)
    assert used, "the dashboard has queries"
    assert used <= served_metric_names() | check_dashboard.recorded_metric_names()
    assert check_dashboard.problems(DASHBOARD) == []


def test_the_dashboard_shows_the_error_budget_and_the_burn_rate_of_every_alert_window() -> None:
    used = check_dashboard.dashboard_metric_names(DASHBOARD)
    assert "slo:error_budget_remaining:ratio" in used
    rules = (ROOT / "deploy" / "prometheus" / "rules" / "payments.rules.yml").read_text()
    alerted = set(re.findall(r"slo:sli_error:ratio_rate\w+(?=\{[^}]*\} >)", rules))
    assert alerted
    assert alerted <= used


def test_the_checkers_list_names_only_metrics_the_service_serves() -> None:
    """The checker runs without the package installed (`make deploy-check`), so it keeps its
    own list of the metrics a dashboard may use: every one of them must really be served."""
    assert served_sample_names() >= check_dashboard.EXPORTED_METRICS


def test_the_dashboard_shows_latency_errors_rate_and_outcomes() -> None:
    used = check_dashboard.dashboard_metric_names(DASHBOARD)
    assert {
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
        "payments_settled_total",
    } <= used


def test_prometheus_scrapes_the_service_metrics_port() -> None:
    config = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    assert re.search(r"payments:9464", config)
