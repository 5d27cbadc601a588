"""The real `payments-server` with security settings: startup errors exit 2 and name the
variable (and the line of the keys file); SIGHUP reloads the keys; `keys new` makes a key."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from tests.e2e.test_server_process import payment
from tests.processes import SERVER, VENV_BIN, ServerProcess
from tests.tls_files import TlsFiles, make_tls_files


def run_server(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    assert SERVER is not None
    return subprocess.run(
        [SERVER, *args],
        env={
            **os.environ,
            "PAYMENTS_GRPC_ADDRESS": "127.0.0.1:0",
            "PAYMENTS_HTTP_ADDRESS": "127.0.0.1:0",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def assert_exit_2_naming(proc: subprocess.CompletedProcess[str], variable: str) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"payments-server: invalid {variable}=")
    assert proc.stdout == ""
    return lines[0]


def test_a_malformed_keys_file_exits_2_naming_the_variable_and_the_line(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    digest = hashlib.sha256(b"k").hexdigest()
    keys.write_text(f"# merchants\nalice {digest}\n\nbob {digest[:-1]}\n")
    line = assert_exit_2_naming(
        run_server(PAYMENTS_API_KEYS_FILE=str(keys)), "PAYMENTS_API_KEYS_FILE"
    )
    assert "line 4: the key digest must be 64 hex digits" in line


def test_a_missing_keys_file_exits_2_naming_the_variable(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    line = assert_exit_2_naming(
        run_server(PAYMENTS_API_KEYS_FILE=missing), "PAYMENTS_API_KEYS_FILE"
    )
    assert "cannot read the file" in line


def test_without_a_keys_file_the_server_warns_once_that_authentication_is_off() -> None:
    process = ServerProcess()
    try:
        warnings = [line for line in process.seen if line["event"] == "authentication_disabled"]
        assert len(warnings) == 1
        assert warnings[0]["level"] == "warning"
        assert process.started["api_keys"] is None
    finally:
        process.stop()


def test_keys_new_prints_a_key_once_whose_line_the_server_accepts(tmp_path: Path) -> None:
    made = run_server("keys", "new", "acme-shop_1")
    assert made.returncode == 0, made.stderr
    lines = made.stdout.splitlines()
    assert len(lines) == 5
    key, file_line = lines[1].strip(), lines[4].strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", key)  # >= 32 bytes of entropy, URL-safe
    assert re.fullmatch(r"acme-shop_1 [0-9a-f]{64}", file_line)
    assert made.stdout.count(key) == 1
    keys = tmp_path / "keys"
    keys.write_text(file_line + "\n")

    process = ServerProcess(PAYMENTS_API_KEYS_FILE=str(keys))
    try:
        assert process.started["api_keys"] == 1
        with grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel:
            stub = pb_grpc.PaymentServiceStub(channel)
            reply = stub.RequestPayment(
                payment("keys-new"), metadata=(("authorization", f"Bearer {key}"),), timeout=5
            )
            assert reply.status == pb.PAYMENT_STATUS_SUCCEEDED
            with pytest.raises(grpc.RpcError) as refused:
                stub.RequestPayment(payment("keys-new"), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        access = process.wait_for("rpc_completed")
        assert access["merchant_id"] == "acme-shop_1"
    finally:
        process.stop()
    assert key not in json.dumps(process.seen)


def test_appending_the_whole_keys_new_output_by_mistake_is_refused_not_loaded(
    tmp_path: Path,
) -> None:
    made = run_server("keys", "new", "acme")
    keys = tmp_path / "keys"
    keys.write_text(made.stdout)
    line = assert_exit_2_naming(
        run_server(PAYMENTS_API_KEYS_FILE=str(keys)), "PAYMENTS_API_KEYS_FILE"
    )
    assert "line 1:" in line
    assert made.stdout.splitlines()[1].strip() not in line


@pytest.mark.parametrize(
    "args", [["keys"], ["keys", "new"], ["keys", "new", "bad id"], ["keys", "old", "acme"]]
)
def test_a_bad_keys_command_exits_2_with_usage_and_prints_no_key(args: list[str]) -> None:
    proc = run_server(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "usage: payments-server keys" in proc.stderr


ALICE_KEY = "alice-e2e-a2V5LW9uZS1mb3ItYWxpY2U"
BOB_KEY = "bob-e2e-a2V5LXR3by1mb3ItYm9i"


def key_line(merchant: str, key: str) -> str:
    return f"{merchant} {hashlib.sha256(key.encode()).hexdigest()}\n"


def code_for(stub: pb_grpc.PaymentServiceStub, key: str, idempotency_key: str) -> grpc.StatusCode:
    try:
        stub.RequestPayment(
            payment(idempotency_key), metadata=(("authorization", f"Bearer {key}"),), timeout=5
        )
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_sighup_reloads_the_keys_and_a_bad_file_keeps_the_old_ones(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(key_line("alice", ALICE_KEY) + key_line("bob", BOB_KEY))
    process = ServerProcess(PAYMENTS_API_KEYS_FILE=str(keys))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel:
            stub = pb_grpc.PaymentServiceStub(channel)
            assert code_for(stub, BOB_KEY, "hup-1") == grpc.StatusCode.OK

            keys.write_text(key_line("alice", ALICE_KEY))  # bob's key revoked
            process.proc.send_signal(signal.SIGHUP)
            reloaded = process.wait_for("api_keys_reloaded")
            assert (reloaded["keys"], reloaded["merchants"]) == (1, 1)
            assert code_for(stub, BOB_KEY, "hup-2") == grpc.StatusCode.UNAUTHENTICATED
            assert code_for(stub, ALICE_KEY, "hup-3") == grpc.StatusCode.OK

            # A rotation gone wrong: bob's key pasted in clear, and a broken line.
            keys.write_text(key_line("alice", ALICE_KEY) + f"bob {BOB_KEY}\n")
            process.proc.send_signal(signal.SIGHUP)
            failed = process.wait_for("api_keys_reload_failed")
            assert failed["level"] == "error"
            assert "line 2" in str(failed["error"])
            assert code_for(stub, ALICE_KEY, "hup-4") == grpc.StatusCode.OK  # old keys kept
            assert code_for(stub, BOB_KEY, "hup-5") == grpc.StatusCode.UNAUTHENTICATED
            process.wait_for("rpc_completed")
        process.proc.send_signal(signal.SIGTERM)
        assert process.proc.wait(timeout=15) == 0
    finally:
        process.stop()
    errors = [line for line in process.seen if line["level"] == "error"]
    assert [line["event"] for line in errors] == ["api_keys_reload_failed"]
    assert BOB_KEY not in json.dumps(process.seen)
    assert ALICE_KEY not in json.dumps(process.seen)


def test_sighup_without_a_keys_file_is_logged_and_the_server_keeps_serving() -> None:
    process = ServerProcess()
    try:
        process.proc.send_signal(signal.SIGHUP)
        assert process.wait_for("api_keys_reload_skipped")["level"] == "warning"
        with grpc.insecure_channel(f"127.0.0.1:{process.port}") as channel:
            reply = pb_grpc.PaymentServiceStub(channel).Health(pb.HealthRequest(), timeout=5)
        assert reply.status == "ok"
        process.proc.send_signal(signal.SIGTERM)
        assert process.proc.wait(timeout=15) == 0  # a clean shutdown, not a death by SIGHUP
    finally:
        process.stop()


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path)


@pytest.mark.parametrize(
    ("variable", "override"),
    [
        ("PAYMENTS_TLS_KEY_FILE", lambda t: {"PAYMENTS_TLS_KEY_FILE": str(t.other_key)}),
        ("PAYMENTS_TLS_CERT_FILE", lambda t: {"PAYMENTS_TLS_CERT_FILE": str(t.server_key)}),
        (
            "PAYMENTS_TLS_CLIENT_CA_FILE",
            lambda t: {"PAYMENTS_TLS_CLIENT_CA_FILE": str(t.other_key)},
        ),
        ("PAYMENTS_TLS_KEY_FILE", lambda t: {"PAYMENTS_TLS_KEY_FILE": ""}),
    ],
    ids=["mismatched key", "key as certificate", "key as client CA", "certificate alone"],
)
def test_bad_or_mismatched_tls_files_exit_2_naming_the_variable(
    tls: TlsFiles, variable: str, override: Callable[[TlsFiles], dict[str, str]]
) -> None:
    assert_exit_2_naming(run_server(**{**tls.server_env(), **override(tls)}), variable)


def healthcheck(port: int, **env: str) -> subprocess.CompletedProcess[str]:
    command = shutil.which("payments-healthcheck", path=VENV_BIN)
    assert command is not None
    return subprocess.run(
        [command],
        env={**os.environ, "PAYMENTS_HEALTHCHECK_TARGET": f"127.0.0.1:{port}", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_healthcheck_probes_a_mutual_tls_server_with_its_own_ca_and_certificate(
    tls: TlsFiles,
) -> None:
    server_env = tls.server_env(mutual=True)
    process = ServerProcess(None, **server_env)
    try:
        assert process.started["tls"] == "mtls"
        probe = {
            **server_env,  # the container runs the probe with the server's environment
            "PAYMENTS_HEALTHCHECK_CA_FILE": str(tls.ca),
            "PAYMENTS_HEALTHCHECK_CERT_FILE": str(tls.client_cert),
            "PAYMENTS_HEALTHCHECK_KEY_FILE": str(tls.client_key),
        }
        healthy = healthcheck(process.port, **probe)
        assert (healthy.returncode, healthy.stdout.strip()) == (
            0,
            f"127.0.0.1:{process.port}: SERVING",
        )
        # The certificate names localhost and 127.0.0.1; another name must be verified as such.
        renamed = healthcheck(
            process.port, **probe, PAYMENTS_HEALTHCHECK_SERVER_NAME="other.example"
        )
        assert renamed.returncode == 1
        without_certificate = healthcheck(
            process.port,
            **{**probe, "PAYMENTS_HEALTHCHECK_CERT_FILE": "", "PAYMENTS_HEALTHCHECK_KEY_FILE": ""},
        )
        assert without_certificate.returncode == 1
        assert "NOT SERVING" in without_certificate.stdout
        without_ca = healthcheck(process.port, **server_env)
        assert without_ca.returncode == 2
        assert without_ca.stderr.startswith(
            "payments-healthcheck: invalid PAYMENTS_HEALTHCHECK_CA_FILE="
        )
        half = healthcheck(process.port, **{**probe, "PAYMENTS_HEALTHCHECK_KEY_FILE": ""})
        assert half.returncode == 2
        assert "PAYMENTS_HEALTHCHECK_KEY_FILE" in half.stderr
    finally:
        process.stop()


def test_the_healthcheck_probes_a_tls_server_by_name(tls: TlsFiles) -> None:
    process = ServerProcess(None, **tls.server_env())
    try:
        assert process.started["tls"] == "tls"
        probe = healthcheck(
            process.port,
            PAYMENTS_HEALTHCHECK_CA_FILE=str(tls.ca),
            PAYMENTS_HEALTHCHECK_SERVER_NAME="localhost",
        )
        assert probe.returncode == 0, probe.stdout + probe.stderr
    finally:
        process.stop()
