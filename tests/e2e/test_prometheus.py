"""The real Prometheus scrapes the real server and sees exactly the calls that were made."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from tests.e2e.conftest import require_binary
from tests.processes import ServerProcess

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Prometheus:
    def __init__(self, workdir: Path, target: str, rule_files: tuple[Path, ...] = ()) -> None:
        binary = require_binary(
            "prometheus", "apt-get install -y --no-install-recommends prometheus (make e2e does)"
        )
        config = workdir / "prometheus.yml"
        rules = "".join(f"  - {path}\n" for path in rule_files)
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            + (f"rule_files:\n{rules}" if rules else "")
            + "scrape_configs:\n"
            f"  - job_name: payments\n    static_configs:\n      - targets: ['{target}']\n"
        )
        self.port = free_port()
        self.log = (workdir / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready(workdir)

    def _wait_ready(self, workdir: Path) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (workdir / "prometheus.log").read_text()
                pytest.fail(f"prometheus exited early:\n{log[-2000:]}", pytrace=False)
            try:
                ready = self.url("/-/ready")
                with urllib.request.urlopen(ready, timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail("prometheus did not become ready within 30 s", pytrace=False)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def query(self, promql: str) -> list[dict[str, object]]:
        result: list[dict[str, object]] = self.api(
            "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        )["result"]
        return result

    def api(self, path: str) -> dict[str, Any]:
        """The `data` of a successful answer of the HTTP API at `path`."""
        with urllib.request.urlopen(self.url(path), timeout=5) as response:  # noqa: S310
            body = json.load(response)
        assert body["status"] == "success", body
        data: dict[str, Any] = body["data"]
        return data

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def prometheus(tmp_path: Path, server: ServerProcess) -> Iterator[Prometheus]:
    instance = Prometheus(tmp_path, f"127.0.0.1:{server.started['metrics_port']}")
    yield instance
    instance.stop()


def test_prometheus_sees_exactly_the_calls_made(
    server: ServerProcess, prometheus: Prometheus
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.PaymentServiceStub(channel)
        for i in range(3):
            stub.RequestPayment(
                pb.RequestPaymentRequest(
                    amount_minor=100, currency="EUR", order_id="o", idempotency_key=f"prom-{i}"
                )
            )
        for _ in range(2):
            with pytest.raises(grpc.RpcError):
                stub.RequestPayment(pb.RequestPaymentRequest(amount_minor=0))

    expected = {"OK": 3.0, "InvalidArgument": 2.0}
    promql = (
        'grpc_server_handled_total{job="payments",grpc_service="payments.v1.PaymentService",'
        'grpc_method="RequestPayment",grpc_code=~"OK|InvalidArgument"}'
    )
    deadline = time.monotonic() + 30
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        seen = {
            str(r["metric"]["grpc_code"]): float(r["value"][1])  # type: ignore[index]
            for r in prometheus.query(promql)
        }
        if seen == expected:
            break
        time.sleep(0.5)
    assert seen == expected
    (created,) = prometheus.query('payments_created_total{job="payments"}')
    assert float(created["value"][1]) == 3.0  # type: ignore[index]
