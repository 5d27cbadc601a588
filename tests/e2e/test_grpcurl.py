"""The real grpcurl binary against the real server, through server reflection only."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.processes import ServerProcess

pytestmark = pytest.mark.e2e


def run(
    grpcurl: str,
    server: ServerProcess,
    *verb: str,
    data: dict[str, Any] | None = None,
    flags: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """`grpcurl -plaintext [FLAGS] [-d DATA] 127.0.0.1:PORT VERB...`, errors printed as JSON."""
    options = ["-plaintext", "-format-error", *flags]
    if data is not None:
        options += ["-d", json.dumps(data)]
    return subprocess.run(
        [grpcurl, *options, f"127.0.0.1:{server.port}", *verb],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def call(grpcurl: str, server: ServerProcess, method: str, body: dict[str, Any]) -> Any:
    result = run(grpcurl, server, method, data=body)
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_reflection_lists_and_describes_the_api(grpcurl: str, server: ServerProcess) -> None:
    listed = run(grpcurl, server, "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "payments.v1.PaymentService",
    ]
    described = run(grpcurl, server, "describe", "payments.v1.RequestPaymentRequest")
    assert described.returncode == 0, described.stderr
    for field in (
        "int64 amount_minor = 1;",
        "string idempotency_key = 4;",
        "map<string, string> metadata = 5;",
    ):
        assert field in described.stdout


def test_every_rpc_through_grpcurl(grpcurl: str, server: ServerProcess) -> None:
    body = {"amount_minor": 1250, "currency": "EUR", "order_id": "o-1", "idempotency_key": "cli-1"}
    created = call(grpcurl, server, "payments.v1.PaymentService/RequestPayment", body)
    assert created["status"] == "PAYMENT_STATUS_SUCCEEDED"
    assert created["idempotency_key"] == "cli-1"
    replayed = call(grpcurl, server, "payments.v1.PaymentService/RequestPayment", body)
    assert replayed == created

    fetched = call(
        grpcurl,
        server,
        "payments.v1.PaymentService/GetPayment",
        {"payment_id": created["payment_id"]},
    )
    assert fetched == {
        "payment_id": created["payment_id"],
        "status": "PAYMENT_STATUS_SUCCEEDED",
        "amount_minor": "1250",
        "currency": "EUR",
        "order_id": "o-1",
        "idempotency_key": "cli-1",
        "created_at": created["created_at"],
        "message": "payment succeeded",
    }
    assert call(grpcurl, server, "payments.v1.PaymentService/Health", {}) == {"status": "ok"}
    assert call(
        grpcurl, server, "grpc.health.v1.Health/Check", {"service": "payments.v1.PaymentService"}
    ) == {"status": "SERVING"}


def test_an_invalid_call_prints_its_code_and_bad_request(
    grpcurl: str, server: ServerProcess
) -> None:
    body = {"amount_minor": 0, "currency": "usd", "order_id": "o", "idempotency_key": "k"}
    result = run(grpcurl, server, "payments.v1.PaymentService/RequestPayment", data=body)
    assert result.returncode != 0
    assert result.stdout == ""
    error = json.loads(result.stderr)  # -format-error prints the status as JSON on stderr
    assert error["code"] == 3  # INVALID_ARGUMENT
    (detail,) = error["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert [v["field"] for v in detail["field_violations"]] == ["amount_minor", "currency"]


def sections(verbose: str) -> dict[str, list[str]]:
    """grpcurl -v's output by section ("Response headers received", ...): its lines."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in verbose.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            current = found.setdefault(line[:-1], [])
        elif line:
            current.append(line)
    return found


@pytest.mark.parametrize(
    ("method", "body", "ok"),
    [
        ("payments.v1.PaymentService/Health", {}, True),
        ("payments.v1.PaymentService/GetPayment", {"payment_id": ""}, False),
    ],
)
def test_the_request_id_is_a_response_trailer(
    grpcurl: str, server: ServerProcess, method: str, body: dict[str, Any], ok: bool
) -> None:
    flags = ("-v", "-H", "x-request-id: cli-req-1")
    result = run(grpcurl, server, method, data=body, flags=flags)
    assert (result.returncode == 0) is ok, result.stderr
    printed = sections(result.stdout)
    assert "x-request-id: cli-req-1" in printed["Response trailers received"]
    assert not any(h.startswith("x-request-id") for h in printed["Response headers received"])
