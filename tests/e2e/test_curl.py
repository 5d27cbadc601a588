"""The README's curl commands with the real curl against the real `payments-server`, then curl
over TLS and mutual TLS with an API key (the TLS servers are tests/e2e/conftest.py's, as for
grpcurl): the same certificates serve the JSON/HTTP listener and the gRPC port."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import require_binary
from tests.processes import ServerProcess
from tests.repo.test_docs import README, readme_commands
from tests.tls_files import TlsFiles

README_HOST = "localhost:8080"
BODY = {"amountMinor": 1250, "currency": "EUR", "orderId": "o-tls", "idempotencyKey": "tls-1"}


@pytest.fixture
def curl() -> str:
    return require_binary("curl", "apt-get install curl")


def readme_curls() -> list[list[str]]:
    """The README's curl commands, as argument lists."""
    return [
        shlex.split(command)
        for command in readme_commands(README)
        if command.startswith("curl ") and README_HOST in command
    ]


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def test_the_readme_has_three_curl_commands() -> None:
    assert len(readme_curls()) == 3


def test_the_readmes_curl_commands_against_a_real_process(curl: str) -> None:
    server = ServerProcess()
    try:
        target = f"127.0.0.1:{server.http_port}"
        create, get, health = (
            [curl if word == "curl" else word.replace(README_HOST, target) for word in argv]
            for argv in readme_curls()
        )
        created = run(create)
        assert created.returncode == 0, created.stderr
        answer = json.loads(created.stdout)
        assert answer["status"] == "PAYMENT_STATUS_SUCCEEDED"
        assert answer["idempotencyKey"] == "demo-2"
        assert json.loads(run(create).stdout) == answer  # the replay, field for field

        fetched = run([w.replace("PAYMENT_ID_FROM_THE_ANSWER", answer["paymentId"]) for w in get])
        got = json.loads(fetched.stdout)
        assert (got["paymentId"], got["amountMinor"], got["status"]) == (
            answer["paymentId"],
            "1250",
            "PAYMENT_STATUS_SUCCEEDED",
        )

        checked = run(health)
        assert checked.stdout.startswith("HTTP/1.1 200 OK")
        assert re.search(r"^x-request-id: demo-2\r?$", checked.stdout, re.MULTILINE)
        assert checked.stdout.rstrip().endswith('{"status":"ok"}')
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
    assert answer.startswith("401 ")
    assert json.loads(answer.partition(" ")[2])["code"] == 16  # UNAUTHENTICATED

    untrusted = run([curl, "-s", url, *auth, *body])  # the system roots do not know our CA
    assert untrusted.returncode == 60  # CURLE_PEER_FAILED_VERIFICATION
    plaintext = run([curl, "-s", url.replace("https:", "http:"), *auth, *body])
    assert plaintext.returncode != 0 or "SUCCEEDED" not in plaintext.stdout

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
