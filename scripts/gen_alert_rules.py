"""Generate the service's Prometheus rules from one spec: RED recording rules, two SLOs with
multi-window multi-burn-rate alerts, and one alert per limit and failure mode.

    python scripts/gen_alert_rules.py           (make rules) writes both files below
    python scripts/gen_alert_rules.py --check   exits 1 when a committed file is stale

Outputs, one set of rules in two wrappings (never edit them by hand):

- deploy/prometheus/rules/payments.rules.yml: the rule file Prometheus loads (compose);
- deploy/kubernetes/base/prometheusrule.yaml: the same groups as a Prometheus Operator
  PrometheusRule.

Why generated, and not hand-written or Sloth:

- Hand-written, the burn-rate rules are 2 SLOs x 6 windows of near-identical PromQL plus 4
  alerts whose thresholds are factor x (1 - objective): a changed objective or window has to be
  edited in a dozen places, and the PrometheusRule would be a second copy to keep equal.
- The error ratio must count exactly the codes the access log and the span status call server
  faults, and spell them as the `grpc_code` label does: both come from
  `observability.record.SERVER_FAULT_CODES` and `observability.metrics.GO_CODE_NAMES`,
  imported here, never retyped.
  The latency threshold must be a bucket boundary of the exported histogram: checked against
  `payments_service.observability.metrics.HANDLING_BUCKETS` when generating.
- Sloth generates the same SLO rules, but it is a Go binary that no package registry this
  project installs from carries, it cannot import those Python sets, and it does not write the
  saturation alerts: the repository would hold a spec in Sloth's format plus hand-written
  alerts and a second generator for the PrometheusRule.

Adding an alert is one `Alert(...)` entry in ALERTS (or one `Slo(...)` in SLOS) and one section
in docs/runbook.md, named after the alert (tests/repo/test_alert_rules.py checks both ways).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml  # type: ignore[import-untyped]

from payments_service.observability.metrics import GO_CODE_NAMES, HANDLING_BUCKETS
from payments_service.observability.record import SERVER_FAULT_CODES

ROOT = Path(__file__).resolve().parent.parent
RULES_FILE = ROOT / "deploy" / "prometheus" / "rules" / "payments.rules.yml"
PROMETHEUS_RULE_FILE = ROOT / "deploy" / "kubernetes" / "base" / "prometheusrule.yaml"

# ----------------------------------------------------------------------------------------------
# The spec
# ----------------------------------------------------------------------------------------------

# The service's scrape job: `payments` in compose, `<namespace>/payments` for the Prometheus
# Operator's PodMonitor. Every rule selects it, so other services' gRPC metrics never mix in.
JOB = 'job=~"(.+/)?payments"'
SERVICE = 'grpc_service="payments.v1.PaymentService"'
FAULT_CODES = "|".join(sorted(GO_CODE_NAMES[code] for code in SERVER_FAULT_CODES))
RED_WINDOW = "5m"
QUANTILES = ("0.5", "0.95", "0.99")
# Where runbook_url points: the runbook's path in this repository. A deployment that wants
# absolute links generates its own copy with --runbook-base-url.
DEFAULT_RUNBOOK_BASE_URL = "docs/runbook.md"
Severity = Literal["page", "ticket"]


@dataclass(frozen=True)
class Slo:
    """An objective over 30 days: `bad` and `total` are PromQL rates per `job` over `{window}`."""

    name: str  # the `slo` label and the alerts' middle name
    objective: float
    good: str  # what a good event is, for the alerts' text
    bad: str
    total: str

    @property
    def promise(self) -> str:
        return f"{self.objective * 100:g} % of {self.good}"


@dataclass(frozen=True)
class BurnWindows:
    """Alert when the error ratio is over `factor` x the budget over both windows (SRE
    workbook, "Alerting on SLOs", multiwindow multi-burn-rate)."""

    factor: float
    long: str
    short: str


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: Severity
    summary: str
    description: str
    slo: str | None = None  # the SLO a burn-rate alert watches (its `slo` label)


def _handled(*matchers: str) -> str:
    return f"grpc_server_handled_total{{{','.join((JOB, SERVICE, *matchers))}}}"


def _latency(series: str, *matchers: str) -> str:
    selector = ",".join((JOB, SERVICE, 'grpc_method="RequestPayment"', *matchers))
    return f"grpc_server_handling_seconds_{series}{{{selector}}}"


LATENCY_THRESHOLD = 0.3  # seconds; must be one of HANDLING_BUCKETS

SLOS = (
    Slo(
        name="availability",
        objective=0.999,
        good="RequestPayment and GetPayment calls are not failed by the server",
        bad="sum by (job) (rate("
        + _handled('grpc_method=~"RequestPayment|GetPayment"', f'grpc_code=~"{FAULT_CODES}"')
        + "[{window}]))",
        total="sum by (job) (rate("
        + _handled('grpc_method=~"RequestPayment|GetPayment"')
        + "[{window}]))",
    ),
    Slo(
        name="latency",
        objective=0.99,
        good=f"RequestPayment calls are answered within {LATENCY_THRESHOLD * 1000:g} ms",
        bad=f"(sum by (job) (rate({_latency('count')}[{{window}}])) - sum by (job) (rate("
        + _latency("bucket", f'le="{LATENCY_THRESHOLD:g}"')
        + "[{window}])))",
        total=f"sum by (job) (rate({_latency('count')}[{{window}}]))",
    ),
)
SLO_PERIOD = "30d"
PAGE = (BurnWindows(14.4, "1h", "5m"), BurnWindows(6, "6h", "30m"))
TICKET = (BurnWindows(1, "3d", "6h"),)


@dataclass(frozen=True)
class BurnAlert:
    """One burn-rate alert of every SLO: `Payments<Slo><suffix>`."""

    suffix: str
    windows: tuple[BurnWindows, ...]
    for_: str
    severity: Severity
    pace: str
    outcome: str


BURN_ALERTS = (
    BurnAlert(
        "BudgetBurn",
        PAGE,
        "2m",
        "page",
        "burns fast",
        "the 30-day budget is gone in days; clients are failing now.",
    ),
    BurnAlert(
        "BudgetSlowBurn",
        TICKET,
        "15m",
        "ticket",
        "burns faster than it lasts",
        "the budget is spent before the period ends.",
    ),
)

ALERTS = (
    Alert(
        name="PaymentsCallsShed",
        expr=f"""sum by (job, instance) (rate(payments_rpcs_shed_total{{{JOB}}}[5m]))
  / sum by (job, instance) (rate(grpc_server_handled_total{{{JOB},grpc_type="unary"}}[5m]))
> 0.01""",
        for_="5m",
        severity="page",
        summary="{{ $labels.instance }} refuses {{ $value | humanizePercentage }} of its calls "
        "(concurrency limit)",
        description="More than 1 % of the calls are answered RESOURCE_EXHAUSTED because "
        "PAYMENTS_MAX_CONCURRENT_RPCS calls were already running. These refusals do not burn "
        "the availability budget, so this alert is the one that sees them.",
    ),
    Alert(
        name="PaymentsRateLimited",
        expr=f"""sum by (job, merchant, scope) (rate(payments_rate_limited_total{{{JOB}}}[5m]))
  / on (job) group_left
  sum by (job) (rate(grpc_server_handled_total{{{JOB},grpc_type="unary"}}[5m]))
> 0.05""",
        for_="15m",
        severity="ticket",
        summary="{{ $labels.merchant }} is refused {{ $value | humanizePercentage }} of the calls "
        "by its {{ $labels.scope }} rate limit",
        description="A rate limit (PAYMENTS_RATE_LIMIT_RPS per merchant, or "
        "PAYMENTS_ORDER_ATTEMPTS_PER_MINUTE per order) refuses more than 5 % of the calls for 15 "
        "minutes. Refusals are the client's doing and do not burn the availability budget: "
        "either a client misbehaves or the limit is too low for real traffic.",
    ),
    Alert(
        name="PaymentsMemoryStoreNearlyFull",
        expr=f"""payments_store_bytes{{{JOB}}} / (payments_store_max_bytes{{{JOB}}} > 0)
> 0.8""",
        for_="15m",
        severity="ticket",
        summary="{{ $labels.instance }}'s memory store is {{ $value | humanizePercentage }} full",
        description="The in-memory store holds more than 80 % of PAYMENTS_MEMORY_STORE_MAX_MIB. "
        "When full, new payments are refused with RESOURCE_EXHAUSTED until the oldest expire.",
    ),
    Alert(
        name="PaymentsLogLinesDropped",
        expr=f"""sum by (job, instance) (rate(payments_log_records_dropped_total{{{JOB}}}[5m]))
> 0""",
        for_="10m",
        severity="ticket",
        summary="{{ $labels.instance }} drops {{ $value | humanize }} log lines per second",
        description="Log lines are dropped because the log queue (PAYMENTS_LOG_QUEUE_RECORDS) "
        "is full or stdout fails: access lines and errors are missing from the logs.",
    ),
    Alert(
        name="PaymentsSpansDropped",
        expr=f"""sum by (job, instance, reason) (rate(payments_spans_dropped_total{{{JOB}}}[5m]))
> 0""",
        for_="10m",
        severity="ticket",
        summary="{{ $labels.instance }} loses {{ $value | humanize }} spans per second "
        "({{ $labels.reason }})",
        description="Finished spans do not reach the trace collector: the export queue "
        "(OTEL_BSP_MAX_QUEUE_SIZE) is full, or the exporter gave up on batches. Traces of "
        "some calls are missing or incomplete.",
    ),
    Alert(
        name="PaymentsPostgresPoolWaiting",
        expr=f"""min_over_time(payments_store_pool_waiting{{{JOB},store="postgresql"}}[5m])
> 0""",
        for_="10m",
        severity="ticket",
        summary="{{ $labels.instance }} always has store operations waiting for a PostgreSQL "
        "connection",
        description="At every scrape for 15 minutes some operation waited for one of the "
        "PAYMENTS_STORE_POOL_SIZE connections: the pool, or the database behind it, is the "
        "bottleneck, and calls wait.",
    ),
    Alert(
        name="PaymentsNotServing",
        expr=f"""payments_health_serving{{{JOB}}}
== 0""",
        for_="5m",
        severity="page",
        summary="{{ $labels.instance }} has been out of rotation (NOT_SERVING) for 5 minutes",
        description="Readiness (grpc.health.v1 for payments.v1.PaymentService) has said "
        "NOT_SERVING for longer than a start or a shutdown takes: the replica cannot reach its "
        "store, and its calls fail with UNAVAILABLE.",
    ),
    Alert(
        name="PaymentsStoreErrors",
        # `unavailable` is readiness's alert (PaymentsNotServing); these need an operator.
        expr=f"""sum by (job, instance, kind)
  (rate(payments_store_errors_total{{{JOB},kind!="unavailable"}}[5m]))
> 0""",
        for_="5m",
        severity="page",
        summary="{{ $labels.instance }}'s store fails {{ $value | humanize }} operations per "
        "second ({{ $labels.kind }})",
        description="Store operations fail for a reason only an operator can fix: full (no "
        "space; new payments get RESOURCE_EXHAUSTED), readonly (writes refused; UNAVAILABLE) or "
        "other (a failure the error table does not know; INTERNAL, a bug). An unreachable "
        "store is PaymentsNotServing.",
    ),
    Alert(
        name="PaymentsSettlementOverdue",
        expr=f"""max by (job) (payments_pending_oldest_age_seconds{{{JOB}}})
> on (job)
max by (job) (payments_settlement_deadline_seconds{{{JOB}}})""",
        for_="10m",
        severity="page",
        summary="A payment has been PENDING for {{ $value | humanizeDuration }}, past its "
        "settlement deadline",
        description="The oldest PENDING payment is older than "
        "PAYMENTS_SETTLEMENT_DEADLINE_SECONDS: crash recovery should have settled it or marked "
        "it FAILED by now. Its client still does not know whether it was charged.",
    ),
    Alert(
        name="PaymentsApiKeysReloadFailed",
        expr=f"""increase(payments_api_keys_reload_failures_total{{{JOB}}}[1h])
> 0""",
        for_="1m",
        severity="ticket",
        summary="{{ $labels.instance }} failed to reload its API keys file",
        description="A SIGHUP reload of PAYMENTS_API_KEYS_FILE failed in the last hour and the "
        "replica kept its previous keys: a key removed from the file (a revocation) is still "
        "accepted there until a reload succeeds.",
    ),
    Alert(
        name="PaymentsTargetDown",
        expr=f"""up{{{JOB}}} == 0
or
absent(up{{{JOB}}})""",
        for_="5m",
        severity="page",
        summary="{{ if $labels.instance }}Prometheus cannot scrape {{ $labels.instance }}"
        "{{ else }}Prometheus scrapes no payments target{{ end }}",
        description="The metrics endpoint does not answer, or no payments target is "
        "discovered at all. The SLO alerts see nothing of a target that is not scraped.",
    ),
    Alert(
        name="PaymentsProcessRestarted",
        expr=f"""changes(process_start_time_seconds{{{JOB}}}[1h])
> 0""",
        for_="1m",
        severity="ticket",
        summary="{{ $labels.instance }} restarted {{ $value }} times in the last hour",
        description="The process behind the same scrape target started again (a crash, an "
        "out-of-memory kill, a failed liveness probe). A new pod of a rollout is a new target "
        "and does not count.",
    ),
    Alert(
        name="PaymentsTLSCertificateExpiring",
        expr=f"""payments_tls_certificate_not_after_timestamp_seconds{{{JOB}}} - time()
< 14 * 86400""",
        for_="10m",
        severity="ticket",
        summary="{{ $labels.instance }}'s TLS {{ $labels.certificate }} certificate expires in "
        "{{ $value | humanizeDuration }}",
        description="A certificate the gRPC port serves (server: PAYMENTS_TLS_CERT_FILE, "
        "client_ca: PAYMENTS_TLS_CLIENT_CA_FILE) expires within 14 days. After it, clients "
        "cannot connect.",
    ),
)

# ----------------------------------------------------------------------------------------------
# The rules
# ----------------------------------------------------------------------------------------------

Rule = dict[str, Any]


def runbook_anchor(alert: str) -> str:
    """The anchor GitHub gives the runbook heading `## <alert>`."""
    return alert.lower()


def red_rules() -> list[Rule]:
    by = "job, grpc_service, grpc_method"
    level = f"job_grpc_method:grpc_server_handled:rate{RED_WINDOW}"
    rules: list[Rule] = [
        {
            "record": level,
            "expr": f"sum by ({by}) (rate(grpc_server_handled_total{{{JOB}}}[{RED_WINDOW}]))",
        },
        {
            "record": f"job_grpc_method:grpc_server_fault:ratio_rate{RED_WINDOW}",
            "expr": f"sum by ({by}) (rate(grpc_server_handled_total"
            f'{{{JOB},grpc_code=~"{FAULT_CODES}"}}[{RED_WINDOW}]))\n/\n{level}',
        },
    ]
    for quantile in QUANTILES:
        rules.append(
            {
                "record": "job_grpc_method:grpc_server_handling_seconds:"
                f"histogram_quantile_rate{RED_WINDOW}",
                "expr": f"histogram_quantile({quantile}, sum by ({by}, le) "
                f"(rate(grpc_server_handling_seconds_bucket{{{JOB}}}[{RED_WINDOW}])))",
                "labels": {"quantile": quantile},
            }
        )
    return rules


def _windows() -> list[str]:
    """Every window a burn-rate alert or the budget reads, shortest first."""
    seen = {w for burn in (*PAGE, *TICKET) for w in (burn.short, burn.long)} | {SLO_PERIOD}
    return sorted(seen, key=_seconds)


def _seconds(window: str) -> int:
    value, unit = int(window[:-1]), window[-1]
    return value * {"m": 60, "h": 3600, "d": 86400}[unit]


def _budget(slo: Slo) -> str:
    return f"{1 - slo.objective:.6g}"


def _over(rate: str, window: str) -> str:
    """A spec rate (`[{window}]` placeholders) over `window`."""
    return rate.replace("{window}", window)


def ratio(slo: Slo, window: str) -> str:
    return f'slo:sli_error:ratio_rate{window}{{slo="{slo.name}"}}'


def slo_rules(slo: Slo) -> list[Rule]:
    labels = {"slo": slo.name}
    rules: list[Rule] = [
        {
            "record": f"slo:sli_error:ratio_rate{window}",
            "expr": _over(slo.bad, window) + "\n/\n" + _over(slo.total, window),
            "labels": labels,
        }
        for window in _windows()
    ]
    rules.append(
        {"record": "slo:objective:ratio", "expr": f"vector({slo.objective})", "labels": labels}
    )
    rules.append(
        {
            "record": "slo:error_budget_remaining:ratio",
            "expr": f"1 - {ratio(slo, SLO_PERIOD)} / {_budget(slo)}",
            "labels": labels,
        }
    )
    return rules


def _burning(slo: Slo, windows: tuple[BurnWindows, ...]) -> str:
    budget = _budget(slo)
    return "\nor\n".join(
        f"(\n  {ratio(slo, burn.long)} > ({burn.factor:g} * {budget})\n"
        f"  and\n  {ratio(slo, burn.short)} > ({burn.factor:g} * {budget})\n)"
        for burn in windows
    )


def burn_alerts(slo: Slo) -> list[Alert]:
    return [
        Alert(
            name=f"Payments{slo.name.capitalize()}{burn.suffix}",
            expr=_burning(slo, burn.windows),
            for_=burn.for_,
            severity=burn.severity,
            summary=f"The {slo.name} error budget {burn.pace} ("
            + " or ".join(f"{w.factor:g}x over {w.long} and {w.short}" for w in burn.windows)
            + ")",
            description=f"SLO: {slo.promise} over {SLO_PERIOD}. At this rate {burn.outcome}",
            slo=slo.name,
        )
        for burn in BURN_ALERTS
    ]


def alert_rule(alert: Alert, runbook_base_url: str, for_: str | None = None) -> Rule:
    labels: dict[str, str] = {"severity": alert.severity}
    if alert.slo is not None:
        labels["slo"] = alert.slo
    return {
        "alert": alert.name,
        "expr": alert.expr,
        "for": for_ or alert.for_,
        "labels": labels,
        "annotations": {
            "summary": alert.summary,
            "description": alert.description,
            "runbook_url": f"{runbook_base_url}#{runbook_anchor(alert.name)}",
        },
    }


def all_alerts() -> list[Alert]:
    return [alert for slo in SLOS for alert in burn_alerts(slo)] + list(ALERTS)


def rule_groups(
    *,
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL,
    for_overrides: Mapping[str, str] | None = None,
) -> list[Rule]:
    """The rule groups. `for_overrides` (alert name -> duration) is for tests only."""
    if LATENCY_THRESHOLD not in HANDLING_BUCKETS:
        raise ValueError(f"the latency threshold {LATENCY_THRESHOLD} is not a bucket boundary")
    overrides = dict(for_overrides or {})
    unknown = set(overrides) - {alert.name for alert in all_alerts()}
    if unknown:
        raise ValueError(f"no such alert: {sorted(unknown)}")

    def rules(alerts: list[Alert]) -> list[Rule]:
        return [alert_rule(a, runbook_base_url, overrides.get(a.name)) for a in alerts]

    # An SLO's alerts sit in the group of the ratios they read: Prometheus evaluates the rules
    # of a group in order and groups independently, so an alert in another group could read
    # the ratios of the previous evaluation, or none once that is older than the lookback.
    return [
        {"name": "payments-red", "rules": red_rules()},
        *(
            {"name": f"payments-slo-{slo.name}", "rules": slo_rules(slo) + rules(burn_alerts(slo))}
            for slo in SLOS
        ),
        {"name": "payments-saturation-alerts", "rules": rules(list(ALERTS))},
    ]


# ----------------------------------------------------------------------------------------------
# The files
# ----------------------------------------------------------------------------------------------

HEADER = """\
# Generated by scripts/gen_alert_rules.py from its SLO and alert spec: do not edit.
# `make rules` regenerates it; tests/repo/test_alert_rules.py fails when it is stale.
"""
PROMETHEUS_RULE_HEADER = """\
# The Prometheus Operator's Prometheus must select this PrometheusRule: with kube-prometheus-stack
# its ruleSelector usually wants the label `release: <helm release>`; add it in an overlay.
"""


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]
    """Multi-line strings (PromQL) as literal blocks, no anchors or aliases, no folded lines."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def dump(document: Any) -> str:
    text: str = yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, width=1000, default_flow_style=False
    )
    return text


def rules_file(groups: list[Rule]) -> str:
    return HEADER + dump({"groups": groups})


def prometheus_rule_file(groups: list[Rule]) -> str:
    document = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "payments", "labels": {"app.kubernetes.io/name": "payments"}},
        "spec": {"groups": groups},
    }
    return HEADER + PROMETHEUS_RULE_HEADER + dump(document)


def outputs(runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL) -> dict[Path, str]:
    groups = rule_groups(runbook_base_url=runbook_base_url)
    return {RULES_FILE: rules_file(groups), PROMETHEUS_RULE_FILE: prometheus_rule_file(groups)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when a file is stale")
    parser.add_argument("--runbook-base-url", default=DEFAULT_RUNBOOK_BASE_URL)
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs(args.runbook_base_url).items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.relative_to(ROOT))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"stale (run `make rules`): {', '.join(map(str, stale))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
