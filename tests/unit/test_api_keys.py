"""The keys file: its grammar, its errors (which name the line, never quote it), and the ring's
lookup and reload."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from payments_service.config import ConfigError
from payments_service.security.api_keys import (
    KeyRing,
    key_file_line,
    load_key_file,
    new_api_key,
    parse_key_file,
)
from tests.conftest import CapturedLogs

ALICE_KEY = "alice-secret-key-0001"
BOB_KEY = "bob-secret-key-0002"


def line(merchant: str, key: str) -> str:
    return f"{merchant} {hashlib.sha256(key.encode()).hexdigest()}"


def test_comments_blank_lines_tabs_and_uppercase_hex_are_accepted() -> None:
    upper = line("bob_2", BOB_KEY).upper().replace("BOB_2", "bob_2")
    content = "\n".join(
        [
            "# merchants of the test shop",
            "",
            "   ",
            line("alice", ALICE_KEY) + "   # added 2026-11-25",
            "\t" + upper.replace(" ", "\t"),
            "",
        ]
    )
    entries = parse_key_file(content.encode())
    assert [e.merchant_id for e in entries] == ["alice", "bob_2"]
    assert entries[0].digest == hashlib.sha256(ALICE_KEY.encode()).digest()


def test_a_merchant_may_have_several_keys_while_rotating() -> None:
    content = f"{line('alice', ALICE_KEY)}\n{line('alice', BOB_KEY)}\n"
    assert [e.merchant_id for e in parse_key_file(content.encode())] == ["alice", "alice"]


DIGEST = "a" * 64


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("alice", "expected '<merchant_id> <sha256 hex of the key>'"),
        (f"alice {DIGEST} extra", "expected '<merchant_id> <sha256 hex of the key>'"),
        (f"{'m' * 65} {DIGEST}", "merchant id must be 1 to 64 characters"),
        (f"ali.ce {DIGEST}", "merchant id must be 1 to 64 characters"),
        (f"alicé {DIGEST}", "merchant id must be 1 to 64 characters"),
        ("alice " + "a" * 63, "the key digest must be 64 hex digits"),
        ("alice " + "a" * 65, "the key digest must be 64 hex digits"),
        ("alice " + "g" * 64, "the key digest must be 64 hex digits"),
        (
            f"bob {hashlib.sha256(ALICE_KEY.encode()).hexdigest()}",
            "the same key is already listed on line 2",
        ),
    ],
)
def test_a_bad_line_is_named_by_its_number(bad_line: str, reason: str) -> None:
    content = f"# header\n{line('alice', ALICE_KEY)}\n{bad_line}\n"
    with pytest.raises(ValueError, match=rf"^line 3: {re.escape(reason)}"):
        parse_key_file(content.encode())


def test_a_line_that_is_not_utf8_is_named_by_its_number() -> None:
    with pytest.raises(ValueError, match=r"^line 2: not UTF-8 text$"):
        parse_key_file(b"# ok\n\xff\xfe\n")


def test_an_error_never_quotes_the_line_which_may_be_a_pasted_key(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{line('alice', ALICE_KEY)}\n{ALICE_KEY}\nalice {ALICE_KEY}\n")
    with pytest.raises(ConfigError) as raised:
        load_key_file(str(path))
    assert "line 2" in str(raised.value)
    assert ALICE_KEY not in str(raised.value)


@pytest.mark.parametrize("directory", [False, True])
def test_a_file_that_cannot_be_read_names_the_variable(tmp_path: Path, directory: bool) -> None:
    path = tmp_path / "keys"
    if directory:
        path.mkdir()
    with pytest.raises(ConfigError, match=r"^invalid PAYMENTS_API_KEYS_FILE='.*': cannot read"):
        load_key_file(str(path))


def test_the_ring_finds_the_merchant_of_a_key_and_nobody_for_others(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{line('alice', ALICE_KEY)}\n{line('bob', BOB_KEY)}\n")
    ring = KeyRing.load(str(path))
    assert len(ring) == 2
    assert merchant_of(ring, ALICE_KEY) == "alice"
    assert merchant_of(ring, BOB_KEY) == "bob"
    assert ring.principal_for("alice") is None
    assert ring.principal_for("") is None
    assert ring.principal_for(hashlib.sha256(ALICE_KEY.encode()).hexdigest()) is None


def test_an_empty_file_is_a_ring_that_accepts_nobody(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("# every key revoked\n")
    ring = KeyRing.load(str(path))
    assert len(ring) == 0
    assert ring.principal_for(ALICE_KEY) is None


def test_reload_swaps_the_keys_and_a_bad_file_keeps_the_old_ones_with_one_error_line(
    tmp_path: Path, captured_logs: CapturedLogs
) -> None:
    path = tmp_path / "keys"
    path.write_text(line("alice", ALICE_KEY))
    path.chmod(0o600)
    ring = KeyRing.load(str(path))

    path.write_text(line("bob", BOB_KEY))
    assert ring.reload() is True
    assert ring.principal_for(ALICE_KEY) is None  # revoked
    assert merchant_of(ring, BOB_KEY) == "bob"

    path.write_text(f"{line('alice', ALICE_KEY)}\nalice {ALICE_KEY}\n")  # a key pasted by mistake
    assert ring.reload() is False
    assert merchant_of(ring, BOB_KEY) == "bob"  # the old keys stay
    assert ring.principal_for(ALICE_KEY) is None

    path.unlink()
    assert ring.reload() is False
    assert merchant_of(ring, BOB_KEY) == "bob"
    assert ring.reload_failures == 2  # payments_api_keys_reload_failures_total

    lines = captured_logs.lines()
    assert [(x["event"], x["level"]) for x in lines] == [
        ("api_keys_reloaded", "info"),
        ("api_keys_reload_failed", "error"),
        ("api_keys_reload_failed", "error"),
    ]
    assert lines[0]["keys"] == 1
    assert lines[0]["merchants"] == 1
    assert "line 2" in lines[1]["error"]
    assert "PAYMENTS_API_KEYS_FILE" in lines[1]["error"]
    assert "cannot read" in lines[2]["error"]
    everything = "\n".join(json.dumps(x) for x in lines)
    assert ALICE_KEY not in everything
    assert BOB_KEY not in everything


def test_a_new_key_has_256_bits_and_is_url_safe() -> None:
    keys = {new_api_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", key) for key in keys)


def test_the_file_line_for_a_key_is_what_the_ring_accepts(tmp_path: Path) -> None:
    key = new_api_key()
    path = tmp_path / "keys"
    path.write_text(key_file_line("acme", key) + "\n")
    assert merchant_of(KeyRing.load(str(path)), key) == "acme"
    assert key not in path.read_text()


@pytest.mark.parametrize("merchant", ["", "a" * 65, "has space", "semi;colon"])
def test_a_file_line_for_an_invalid_merchant_is_refused(merchant: str) -> None:
    with pytest.raises(ValueError, match="merchant id"):
        key_file_line(merchant, new_api_key())


def merchant_of(ring: KeyRing, key: str) -> str | None:
    principal = ring.principal_for(key)
    return None if principal is None else principal.merchant_id


def test_a_principal_names_its_key_by_a_digest_prefix_never_by_the_key(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{line('alice', ALICE_KEY)}\n")
    principal = KeyRing.load(str(path)).principal_for(ALICE_KEY)
    assert principal is not None
    assert principal.key_id == hashlib.sha256(ALICE_KEY.encode()).hexdigest()[:8]
    assert ALICE_KEY not in repr(principal)


@pytest.mark.parametrize(
    ("mode", "group", "warned"),
    [
        (0o600, "own", False),
        (0o400, "own", False),
        (0o640, "own", False),  # Kubernetes: a Secret mounted 0440 with fsGroup = runAsGroup
        (0o640, "another", True),
        (0o604, "own", True),
        (0o644, "own", True),
    ],
)
def test_a_keys_file_others_can_read_is_warned_about_at_start_and_at_each_reload(
    tmp_path: Path, captured_logs: CapturedLogs, mode: int, group: str, warned: bool
) -> None:
    path = tmp_path / "keys"
    path.write_text(line("alice", ALICE_KEY))
    path.chmod(mode)
    if group == "another":
        if os.geteuid() != 0:
            pytest.skip("changing a file's group to one the process is not in needs root")
        os.chown(path, -1, os.getegid() + 1)
    ring = KeyRing.load(str(path))
    ring.warn_if_exposed()  # what the entry point does once logging is configured
    assert ring.reload() is True
    warnings = captured_logs.lines("api_keys_file_readable_by_others")
    assert len(warnings) == (2 if warned else 0)
    for warning in warnings:
        assert (warning["level"], warning["mode"]) == ("warning", f"{mode:04o}")
        assert warning["variable"] == "PAYMENTS_API_KEYS_FILE"
