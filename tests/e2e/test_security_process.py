"""The real `payments-server` with security settings: startup errors exit 2 and name the
variable (and the line of the keys file); SIGHUP reloads the keys; `keys new` makes a key."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from tests.processes import SERVER, ServerProcess


def run_server(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    assert SERVER is not None
    return subprocess.run(
        [SERVER, *args],
        env={**os.environ, "PAYMENTS_GRPC_ADDRESS": "127.0.0.1:0", **env},
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
