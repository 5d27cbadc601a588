"""The generated rules in a real Prometheus scraping the real server: every group evaluates
without an error, the recording rules make series from real calls, and overloading the server
past its concurrency limit makes PaymentsCallsShed pending, then firing (its `for:` shortened
in a rule file generated here, from the same spec)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from scripts import gen_alert_rules as gen
from tests.e2e.test_prometheus import Prometheus
from tests.e2e.test_server_process import payment
from tests.processes import ServerProcess

SHED_ALERT = "PaymentsCallsShed"
TEST_FOR = "2s"
CLIENTS = 4  # concurrent slow calls against a limit of 1


@pytest.fixture
def overloadable() -> Iterator[ServerProcess]:
    """One call at a time; a `slow` call holds its slot until the processor deadline (1 s),
    then answers PENDING."""
    process = ServerProcess(
        PAYMENTS_METRICS_ADDRESS="127.0.0.1:0",
        PAYMENTS_MAX_CONCURRENT_RPCS="1",
        PAYMENTS_PROCESSOR_TIMEOUT_SECONDS="1",
        PAYMENTS_SIMULATED_SLOW_SECONDS="5",
    )
    yield process
    process.stop()


@pytest.fixture
def prometheus(tmp_path: Path, overloadable: ServerProcess) -> Iterator[Prometheus]:
    rules = tmp_path / "payments.rules.yml"
    groups = gen.rule_groups(for_overrides={SHED_ALERT: TEST_FOR})
    rules.write_text(gen.rules_file(groups))
    target = f"127.0.0.1:{overloadable.started['metrics_port']}"
    instance = Prometheus(tmp_path, target, rule_files=(rules,))
    yield instance
    instance.stop()


def poll(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """`check()`'s first truthy result, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout} s", pytrace=False)


def rules_by_name(prometheus: Prometheus) -> dict[str, list[dict[str, Any]]]:
    return {group["name"]: group["rules"] for group in prometheus.api("/api/v1/rules")["groups"]}


def all_evaluated_without_error(prometheus: Prometheus) -> dict[str, list[dict[str, Any]]] | None:
    groups = rules_by_name(prometheus)
    rules = [rule for group in groups.values() for rule in group]
    for rule in rules:
        assert rule["health"] != "err", rule
        assert not rule.get("lastError"), rule
    return groups if all(rule["health"] == "ok" for rule in rules) else None


def refusal(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """The code and the ErrorInfo reason of a refused call ("" without one): a shed call is
    (RESOURCE_EXHAUSTED, OVERLOADED), which a rate limit's RESOURCE_EXHAUSTED is not."""
    reason = ""
    for item in error.trailing_metadata() or ():
        if item.key != "grpc-status-details-bin" or not isinstance(item.value, bytes):
            continue
        for packed in status_pb2.Status.FromString(item.value).details:
            info = error_details_pb2.ErrorInfo()
            if packed.Unpack(info):
                reason = info.reason
    return error.code(), reason


def test_the_rules_evaluate_record_real_traffic_and_an_overload_fires_the_shed_alert(
    overloadable: ServerProcess, prometheus: Prometheus
) -> None:
    poll(lambda: prometheus.query('up{job="payments"} == 1'), "a first scrape")
    target = f"127.0.0.1:{overloadable.port}"
    channel = grpc.insecure_channel(target)
    stub = pb_grpc.PaymentServiceStub(channel)
    created = stub.RequestPayment(payment("e2e-rules-1"), timeout=5)
    stub.GetPayment(pb.GetPaymentRequest(payment_id=created.payment_id), timeout=5)
    with pytest.raises(grpc.RpcError):
        stub.RequestPayment(pb.RequestPaymentRequest(amount_minor=0), timeout=5)

    groups = poll(lambda: all_evaluated_without_error(prometheus), "every rule evaluated")
    assert set(groups) == {group["name"] for group in gen.rule_groups()}

    def recorded(promql: str) -> list[dict[str, object]]:
        found: list[dict[str, object]] = poll(
            lambda: prometheus.query(promql), f"a series for {promql}"
        )
        return found

    recorded(
        'job_grpc_method:grpc_server_handled:rate5m{job="payments",grpc_method="RequestPayment"}'
        " > 0"
    )
    recorded('job_grpc_method:grpc_server_fault:ratio_rate5m{grpc_method="GetPayment"}')
    recorded(
        'job_grpc_method:grpc_server_handling_seconds:histogram_quantile_rate5m{quantile="0.99"}'
    )
    for slo in ("availability", "latency"):
        [ratio] = recorded(f'slo:sli_error:ratio_rate5m{{slo="{slo}"}}')
        assert float(ratio["value"][1]) == 0  # type: ignore[index]
        recorded(f'slo:error_budget_remaining:ratio{{slo="{slo}"}}')
    assert alert_state(prometheus, SHED_ALERT) == "inactive"

    stop = threading.Event()
    keys = itertools.count()
    other_codes: list[tuple[grpc.StatusCode, str]] = []

    def overload() -> None:
        # A connection of its own: the server allows each connection as many streams as its
        # limit (SETTINGS_MAX_CONCURRENT_STREAMS), so one shared connection would only queue.
        with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as own:
            client = pb_grpc.PaymentServiceStub(own)
            while not stop.is_set():
                key = f"e2e-slow-{next(keys)}"
                try:
                    client.RequestPayment(payment(key, metadata={"simulate": "slow"}), timeout=5)
                except grpc.RpcError as error:
                    if refusal(error) != (grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED"):
                        other_codes.append(refusal(error))

    clients = [threading.Thread(target=overload, daemon=True) for _ in range(CLIENTS)]
    for client in clients:
        client.start()
    try:
        # Pending as soon as the shed ratio is over its threshold, firing `for:` later.
        poll(lambda: alert_state(prometheus, SHED_ALERT) == "pending", f"{SHED_ALERT} pending")
        poll(lambda: alert_state(prometheus, SHED_ALERT) == "firing", f"{SHED_ALERT} firing")
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=10)
        channel.close()
    assert other_codes == [], "an overloaded server only sheds"
    [shed] = prometheus.query('payments_rpcs_shed_total{job="payments"}')
    assert float(shed["value"][1]) > 0  # type: ignore[index]
    assert all_evaluated_without_error(prometheus) is not None


def alert_state(prometheus: Prometheus, name: str) -> str:
    [rule] = [
        rule
        for rules in rules_by_name(prometheus).values()
        for rule in rules
        if rule.get("name") == name and rule["type"] == "alerting"
    ]
    state: str = rule["state"]
    return state
