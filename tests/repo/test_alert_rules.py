"""The Prometheus rules (deploy/prometheus/rules, deploy/kubernetes/base/prometheusrule.yaml):
generated from the spec in scripts/gen_alert_rules.py and up to date, valid for promtool and
passing its unit tests (tests/repo/promtool), every metric they read exported by the service,
every alert tested both ways and explained in docs/runbook.md, and the PrometheusRule valid
against the Prometheus Operator's CRD."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]

from payments_service.observability.metrics import GO_CODE_NAMES, HANDLING_BUCKETS
from payments_service.observability.record import SERVER_FAULT_CODES
from scripts import check_dashboard
from scripts import gen_alert_rules as gen
from tests.metric_names import served_metric_names

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL_TESTS = sorted((Path(__file__).parent / "promtool").glob("*.test.yml"))
RUNBOOK = ROOT / "docs" / "runbook.md"
PROMTOOL = shutil.which("promtool")
NEEDS_PROMTOOL = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed: apt-get install -y --no-install-recommends prometheus "
    "(.ci/run installs it)",
)
# Series Prometheus makes itself, not the service.
PROMETHEUS_SERIES = {"up"}


RULE_GROUPS: list[dict[str, Any]] = yaml.safe_load(gen.RULES_FILE.read_text())["groups"]
RULES = [rule for group in RULE_GROUPS for rule in group["rules"]]
ALERTS = {rule["alert"]: rule for rule in RULES if "alert" in rule}


def test_the_committed_rule_files_are_what_the_generator_makes() -> None:
    for path, text in gen.outputs().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: run `make rules`"


def test_the_prometheus_rule_carries_exactly_the_groups_of_the_rule_file() -> None:
    resource = yaml.safe_load(gen.PROMETHEUS_RULE_FILE.read_text())
    assert resource["spec"]["groups"] == RULE_GROUPS


def test_the_check_mode_fails_on_a_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "payments.rules.yml"
    stale.write_text("groups: []\n")
    monkeypatch.setattr(gen, "RULES_FILE", stale)
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    monkeypatch.setattr(gen, "PROMETHEUS_RULE_FILE", tmp_path / "prometheusrule.yaml")
    assert gen.main(["--check"]) == 1
    assert "payments.rules.yml" in capsys.readouterr().err
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0


@NEEDS_PROMTOOL
def test_promtool_accepts_the_rules() -> None:
    assert PROMTOOL is not None
    run = subprocess.run(
        [PROMTOOL, "check", "rules", str(gen.RULES_FILE)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@NEEDS_PROMTOOL
@pytest.mark.parametrize("test_file", PROMTOOL_TESTS, ids=lambda path: path.name)
def test_the_promtool_unit_tests_pass(test_file: Path) -> None:
    assert PROMTOOL is not None
    run = subprocess.run(
        [PROMTOOL, "test", "rules", test_file.name],
        check=False,
        cwd=test_file.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_compose_prometheus_loads_the_generated_rules() -> None:
    """prometheus.yml names its rule files relative to itself; compose mounts the rules
    directory beside the config, where that glob finds the generated file."""
    config_file = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    config = yaml.safe_load(config_file.read_text())
    prometheus = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["prometheus"]
    mounts = dict(volume.split(":")[:2] for volume in prometheus["volumes"])
    config_in_container = Path(mounts[f"./{config_file.relative_to(ROOT)}"])
    [pattern] = config["rule_files"]
    rules_in_container = config_in_container.parent / Path(pattern).parent
    assert mounts["./deploy/prometheus/rules"] == str(rules_in_container)
    assert sorted(config_file.parent.glob(pattern)) == [gen.RULES_FILE]


def promtool_cases() -> Iterator[tuple[str, bool]]:
    """(alert name, expected to fire) for every alert_rule_test case."""
    for path in PROMTOOL_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                yield case["alertname"], bool(case.get("exp_alerts"))


def test_every_alert_is_tested_firing_and_silent() -> None:
    cases = set(promtool_cases())
    assert {name for name, _ in cases} == set(ALERTS), "a test names an alert that is gone"
    for name in ALERTS:
        assert (name, True) in cases, f"no promtool case where {name} fires"
        assert (name, False) in cases, f"no promtool case where {name} stays silent"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_every_alert_has_a_for_a_severity_and_its_text(name: str) -> None:
    rule = ALERTS[name]
    assert re.fullmatch(r"\d+[smhd]", rule["for"])
    assert rule["labels"]["severity"] in {"page", "ticket"}
    assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
    assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{name.lower()}"


def runbook_sections() -> dict[str, str]:
    """`## Name` heading -> its text, for the sections named after an alert."""
    parts = re.split(r"^## +(.+?) *$", RUNBOOK.read_text(), flags=re.MULTILINE)
    sections = dict(zip(parts[1::2], parts[2::2], strict=True))
    return {title: text for title, text in sections.items() if re.fullmatch(r"Payments\w+", title)}


def test_every_alert_has_a_runbook_section_and_every_section_an_alert() -> None:
    assert set(runbook_sections()) == set(ALERTS)


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_every_runbook_section_says_what_to_look_at_and_what_to_do(name: str) -> None:
    text = runbook_sections()[name]
    for part in ("**Means**", "**Look at**", "**Mitigate**", "**Escalate**"):
        assert part in text, f"{name}: no {part}"
    look_at = text.split("**Look at**", 1)[1].split("**Mitigate**", 1)[0]
    for clue in ("metric", "log", "trace"):
        assert clue in look_at.lower(), f"{name}: the first things to look at name no {clue}"


def test_the_architecture_page_states_the_objectives_of_the_spec() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text().split("## SLOs and alerts", 1)[1]
    for slo in gen.SLOS:
        assert f"| {slo.name} |" in text
        assert f"| {slo.objective * 100:g} % |" in text
    assert f"within {gen.LATENCY_THRESHOLD * 1000:g} ms" in text
    for burn in (*gen.PAGE, *gen.TICKET):
        assert f"{burn.factor:g}x" in text


def test_every_metric_a_rule_reads_is_exported_or_recorded() -> None:
    names = check_dashboard.promql_metric_names
    recorded = {rule["record"] for rule in RULES if "record" in rule}
    used = {name for rule in RULES for name in names(rule["expr"])}
    assert used - recorded - PROMETHEUS_SERIES - served_metric_names() == set()
    assert {"payments_spans_dropped_total", "process_start_time_seconds"} <= used


def test_the_error_ratio_counts_exactly_the_access_logs_server_fault_codes() -> None:
    expected = {GO_CODE_NAMES[code] for code in SERVER_FAULT_CODES}
    selectors = re.findall(r'grpc_code=~"([^"]*)"', gen.RULES_FILE.read_text())
    assert selectors
    for selector in selectors:
        assert set(selector.split("|")) == expected


def test_the_latency_threshold_must_be_a_bucket_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gen.LATENCY_THRESHOLD in HANDLING_BUCKETS
    assert f'le="{gen.LATENCY_THRESHOLD:g}"' in gen.RULES_FILE.read_text()
    monkeypatch.setattr(gen, "LATENCY_THRESHOLD", 0.31)
    with pytest.raises(ValueError, match="bucket boundary"):
        gen.rule_groups()


def test_a_for_override_is_for_an_existing_alert_only() -> None:
    groups = gen.rule_groups(for_overrides={"PaymentsCallsShed": "1s"})
    rules = {rule.get("alert"): rule for group in groups for rule in group["rules"]}
    assert rules["PaymentsCallsShed"]["for"] == "1s"
    with pytest.raises(ValueError, match="no such alert"):
        gen.rule_groups(for_overrides={"PaymentsNoSuchThing": "1s"})


# The part of the Prometheus Operator's CRD schema (monitoring.coreos.com_prometheusrules.yaml,
# openAPIV3Schema of v1 PrometheusRule) that these files use: its required fields, types and the
# duration pattern, with unknown fields refused as the API server's structural pruning would
# drop them. Written here: kubernetes-validate carries no CRDs and nothing is downloaded.
DURATION = (
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
RULE_SCHEMA = {
    "type": "object",
    "required": ["expr"],
    "additionalProperties": False,
    "properties": {
        "record": {"type": "string"},
        "alert": {"type": "string"},
        "expr": {"type": ["string", "integer"]},
        "for": {"type": "string", "pattern": DURATION},
        "keep_firing_for": {"type": "string", "minLength": 1, "pattern": DURATION},
        "labels": STRINGS,
        "annotations": STRINGS,
    },
    "oneOf": [{"required": ["record"]}, {"required": ["alert"]}],
}
PROMETHEUS_RULE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": DURATION},
                            "query_offset": {"type": "string", "pattern": DURATION},
                            "limit": {"type": "integer"},
                            "partial_response_strategy": {"type": "string"},
                            "labels": STRINGS,
                            "rules": {"type": "array", "items": RULE_SCHEMA},
                        },
                    },
                }
            },
        },
    },
}


def prometheus_rule() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(gen.PROMETHEUS_RULE_FILE.read_text())
    return document


def test_the_prometheus_rule_is_valid_against_the_crd_schema() -> None:
    jsonschema.validate(prometheus_rule(), PROMETHEUS_RULE_SCHEMA)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["spec"]["groups"][0].pop("name"), "'name' is a required property"),
        (
            lambda d: d["spec"]["groups"][3]["rules"][0].update({"for": "5 minutes"}),
            "does not match",
        ),
        (
            lambda d: d["spec"]["groups"][3]["rules"][0].update({"fro": "5m"}),
            "'fro' was unexpected",
        ),
        (lambda d: d["spec"]["groups"][0]["rules"][0].pop("expr"), "'expr' is a required property"),
    ],
    ids=["group-without-name", "bad-duration", "misspelt-field", "rule-without-expr"],
)
def test_the_crd_check_refuses_what_the_api_server_would(mutate: Any, message: str) -> None:
    document = prometheus_rule()
    mutate(document)
    with pytest.raises(jsonschema.ValidationError, match=message):
        jsonschema.validate(document, PROMETHEUS_RULE_SCHEMA)
