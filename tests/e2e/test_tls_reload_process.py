"""The real `payments-server` over TLS: the certificate expiry gauge is scraped, and SIGHUP
re-reads the certificate with the keys, moving the gauge; a bad file keeps the served one."""

from __future__ import annotations

import signal
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import trustme
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import ServerProcess
from tests.tls_files import make_tls_files

CERTIFICATE_EXPIRY = "payments_tls_certificate_not_after_timestamp_seconds"

RENEWED = datetime(2032, 7, 1, tzinfo=UTC)


def expiry(metrics_port: object) -> dict[str, float]:
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        sample.labels["certificate"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == CERTIFICATE_EXPIRY
    }


def test_sighup_reloads_the_certificate_and_its_expiry_gauge(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path)
    process = ServerProcess(None, PAYMENTS_METRICS_ADDRESS="127.0.0.1:0", **tls.server_env())
    try:
        metrics_port = process.started["metrics_port"]
        [served] = expiry(metrics_port).values()

        renewed = trustme.CA().issue_cert("localhost", "127.0.0.1", not_after=RENEWED)
        renewed.cert_chain_pems[0].write_to_path(str(tls.server_cert))
        renewed.private_key_pem.write_to_path(str(tls.server_key))
        process.proc.send_signal(signal.SIGHUP)
        reloaded = process.wait_for("tls_reloaded")
        assert reloaded["not_after"] == {"server": RENEWED.isoformat()}
        assert expiry(metrics_port) == {"server": RENEWED.timestamp()}
        assert served != RENEWED.timestamp()

        tls.server_key.write_bytes(tls.other_key.read_bytes())
        process.proc.send_signal(signal.SIGHUP)
        assert process.wait_for("tls_reload_failed")["level"] == "error"
        assert expiry(metrics_port) == {"server": RENEWED.timestamp()}
        process.proc.send_signal(signal.SIGTERM)
        assert process.proc.wait(timeout=15) == 0
    finally:
        process.stop()


def test_a_plaintext_server_exports_no_certificate_expiry() -> None:
    process = ServerProcess(PAYMENTS_METRICS_ADDRESS="127.0.0.1:0")
    try:
        assert expiry(process.started["metrics_port"]) == {}
    finally:
        process.stop()
