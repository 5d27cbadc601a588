"""`payments-server keys new`, in process: the key it shows matches the line it prints."""

from __future__ import annotations

import hashlib
import io

import pytest

from payments_service.security.keys_cli import keys_main


def test_keys_new_shows_a_key_and_the_line_with_its_digest() -> None:
    out = io.StringIO()
    assert keys_main(["new", "acme"], out=out) == 0
    lines = out.getvalue().splitlines()
    key, file_line = lines[1].strip(), lines[4].strip()
    assert file_line == f"acme {hashlib.sha256(key.encode()).hexdigest()}"


def test_keys_new_refuses_an_invalid_merchant_id(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        keys_main(["new", "x" * 65], out=out)
    assert exited.value.code == 2
    assert out.getvalue() == ""
    assert "1 to 64 characters" in capsys.readouterr().err
