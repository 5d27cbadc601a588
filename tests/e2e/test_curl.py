"""The README's curl commands with the real curl against the real `payments-server`, then curl
over TLS and mutual TLS with an API key (the TLS servers are tests/e2e/conftest.py's, as for
grpcurl): the same certificates serve the JSON/HTTP listener and the gRPC port."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import require_binary
from tests.processes import ServerProcess
from tests.repo.test_docs import README, Page
from tests.tls_files import TlsFiles

README_HOST = "localhost:8080"
BODY = {"amountMinor": 1250, "currency": "EUR", "orderId": "o-tls", "idempotencyKey": "tls-1"}


@pytest.fixture
def curl() -> str:
    return require_binary("curl", "apt-get install curl")


def readme_curl_block() -> str:
    """The README's "Call it with curl" block, as a shell script."""
    (block,) = [b.text for b in Page.parse("README.md", README).blocks if README_HOST in b.text]
    return block


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def test_the_readme_has_three_curl_commands() -> None:
    assert [line.split()[0] for line in readme_curl_block().splitlines()] == [
        "ID=$(curl",
        "curl",
        "curl",
    ]


def test_the_readmes_curl_block_runs_as_written_against_a_real_process(curl: str) -> None:
    """The block, run by bash as a newcomer pastes it (only the host changed): the payment,
    its GetPayment by the captured id, and the health check with the request id echoed; run
    again, the replay answers the same payment field for field."""
    server = ServerProcess()
    try:
        script = readme_curl_block().replace(README_HOST, f"127.0.0.1:{server.http_port}")
        first = run(["bash", "-euo", "pipefail", "-c", script])
        assert first.returncode == 0, first.stderr
        answer = json.loads(first.stderr)
        assert answer["status"] == "PAYMENT_STATUS_SUCCEEDED"
        assert answer["idempotencyKey"] == "demo-2"
        got, end = json.JSONDecoder().raw_decode(first.stdout)
        assert (got["paymentId"], got["amountMinor"], got["status"]) == (
            answer["paymentId"],
            "1250",
            "PAYMENT_STATUS_SUCCEEDED",
        )
        checked = first.stdout[end:]
        assert checked.startswith("HTTP/1.1 200 OK")
        assert re.search(r"^x-request-id: demo-2\r?$", checked, re.MULTILINE)
        assert checked.rstrip().endswith('{"status":"ok"}')
        again = run(["bash", "-euo", "pipefail", "-c", script])
        assert json.loads(again.stderr) == answer  # the replay, field for field
    finally:
        server.stop()


def curl_json(curl: str, url: str, *args: str) -> tuple[int, str]:
    """curl's exit status and `<http status> <body>`."""
    result = run([curl, "-s", "-w", "\n%{http_code}", *args, url])
    body, _, status = result.stdout.rpartition("\n")
    return result.returncode, f"{status} {body}"


def test_curl_over_tls_with_an_api_key_and_the_same_certificate_on_both_ports(
    curl: str, grpcurl: str, tls: TlsFiles, api_key: tuple[str, Path], tls_server: ServerProcess
) -> None:
    url = f"https://localhost:{tls_server.http_port}/v1/payments"
    auth = ("-H", f"Authorization: Bearer {api_key[0]}")
    body = ("-d", json.dumps(BODY))
    exit_status, answer = curl_json(curl, url, "--cacert", str(tls.ca), *auth, *body)
    assert exit_status == 0
    status, _, text = answer.partition(" ")
    assert status == "200"
    assert json.loads(text)["status"] == "PAYMENT_STATUS_SUCCEEDED"

    exit_status, answer = curl_json(curl, url, "--cacert", str(tls.ca), *body)
    assert exit_status == 0
    assert answer.startswith("401 ")
    assert json.loads(answer.partition(" ")[2])["code"] == 16  # UNAUTHENTICATED

    untrusted = run([curl, "-s", url, *auth, *body])  # the system roots do not know our CA
    assert untrusted.returncode == 60  # CURLE_PEER_FAILED_VERIFICATION
    plaintext = run([curl, "-s", url.replace("https:", "http:"), *auth, *body])
    # The TLS port answers plaintext with nothing: an empty reply or a reset, never a payment.
    assert plaintext.returncode in (52, 56), plaintext  # CURLE_GOT_NOTHING, CURLE_RECV_ERROR
    assert plaintext.stdout == ""

    listed = run([grpcurl, "-cacert", str(tls.ca), f"localhost:{tls_server.port}", "list"])
    assert listed.returncode == 0, listed.stderr  # the same CA verifies the gRPC port


def test_curl_over_mutual_tls_needs_a_client_certificate(
    curl: str, tls: TlsFiles, api_key: tuple[str, Path], mtls_server: ServerProcess
) -> None:
    url = f"https://localhost:{mtls_server.http_port}/v1/health"
    client = ("--cert", str(tls.client_cert), "--key", str(tls.client_key))
    exit_status, answer = curl_json(curl, url, "--cacert", str(tls.ca), *client)
    assert (exit_status, answer) == (0, '200 {"status":"ok"}')
    for refused in (
        (),
        ("--cert", str(tls.impostor_cert), "--key", str(tls.impostor_key)),
    ):
        result = run([curl, "-s", "--cacert", str(tls.ca), *refused, url])
        assert result.returncode != 0
        assert result.stdout == ""
