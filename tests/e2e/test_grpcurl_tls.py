"""The real grpcurl over TLS and mutual TLS (`-cacert`, `-cert`/`-key`) with an API key
(`-H "authorization: Bearer $KEY"`), against the real server; certificates made at run time."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.processes import ServerProcess
from tests.tls_files import TlsFiles

pytestmark = pytest.mark.e2e

BODY = {"amount_minor": 1250, "currency": "EUR", "order_id": "o-tls", "idempotency_key": "tls-1"}
REQUEST_PAYMENT = "payments.v1.PaymentService/RequestPayment"


def grpcurl_run(
    grpcurl: str, server: ServerProcess, *args: str, body: object | None = None
) -> subprocess.CompletedProcess[str]:
    data = [] if body is None else ["-d", json.dumps(body)]
    return subprocess.run(
        [grpcurl, "-format-error", *data, *args[:-1], f"127.0.0.1:{server.port}", args[-1]],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_grpcurl_over_tls_with_an_api_key(
    grpcurl: str, tls: TlsFiles, api_key: tuple[str, Path], tls_server: ServerProcess
) -> None:
    cacert = ("-cacert", str(tls.ca))
    auth = ("-H", f"authorization: Bearer {api_key[0]}")
    listed = grpcurl_run(grpcurl, tls_server, *cacert, "list")  # reflection needs no key
    assert listed.returncode == 0, listed.stderr
    assert "payments.v1.PaymentService" in listed.stdout.split()

    created = grpcurl_run(grpcurl, tls_server, *cacert, *auth, REQUEST_PAYMENT, body=BODY)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["status"] == "PAYMENT_STATUS_SUCCEEDED"

    refused = grpcurl_run(grpcurl, tls_server, *cacert, REQUEST_PAYMENT, body=BODY)
    assert refused.returncode != 0
    assert json.loads(refused.stderr)["code"] == 16  # UNAUTHENTICATED

    plaintext = grpcurl_run(grpcurl, tls_server, "-plaintext", "list")
    assert plaintext.returncode != 0
    untrusted = grpcurl_run(grpcurl, tls_server, "list")  # system roots do not know our CA
    assert untrusted.returncode != 0
    assert "certificate" in untrusted.stderr


def test_grpcurl_over_mutual_tls_needs_a_client_certificate(
    grpcurl: str, tls: TlsFiles, api_key: tuple[str, Path], mtls_server: ServerProcess
) -> None:
    cacert = ("-cacert", str(tls.ca))
    client = ("-cert", str(tls.client_cert), "-key", str(tls.client_key))
    auth = ("-H", f"authorization: Bearer {api_key[0]}")
    created = grpcurl_run(grpcurl, mtls_server, *cacert, *client, *auth, REQUEST_PAYMENT, body=BODY)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["status"] == "PAYMENT_STATUS_SUCCEEDED"
    health = grpcurl_run(grpcurl, mtls_server, *cacert, *client, "grpc.health.v1.Health/Check")
    assert json.loads(health.stdout) == {"status": "SERVING"}

    for refused in (
        (*cacert, *auth),  # no client certificate
        (*cacert, "-cert", str(tls.impostor_cert), "-key", str(tls.impostor_key), *auth),
    ):
        # grpcurl keeps redialling a refused handshake until its connect timeout.
        result = grpcurl_run(
            grpcurl, mtls_server, "-connect-timeout", "2", *refused, REQUEST_PAYMENT, body=BODY
        )
        assert result.returncode != 0
        assert result.stdout == ""
