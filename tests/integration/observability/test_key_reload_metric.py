"""A key reload that fails is visible: counted in payments_api_keys_reload_failures_total (and
logged at error level), while the previous keys stay in force."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from payments_service.security.api_keys import KeyRing
from tests.apps import running_app
from tests.conftest import TEST_SETTINGS, CapturedLogs
from tests.scrape import sample


def reload_failures(port: int | None) -> float:
    return sample(port, "payments_api_keys_reload_failures_total")


async def test_a_failed_reload_is_counted_and_logged_at_error(
    tmp_path: Path, captured_logs: CapturedLogs
) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"alice {hashlib.sha256(b'alice-key').hexdigest()}\n")
    keys_file.chmod(0o600)
    keys = KeyRing.load(str(keys_file))
    settings = dataclasses.replace(
        TEST_SETTINGS, metrics_address="127.0.0.1:0", api_keys_file=str(keys_file)
    )
    async with running_app(settings, log_writer=captured_logs.writer, keys=keys) as app:
        assert reload_failures(app.metrics_port) == 0
        keys_file.write_text("alice not-a-digest\n")
        assert keys.reload() is False
        assert keys.reload() is False
        assert reload_failures(app.metrics_port) == 2
        assert keys.merchants() == {"alice"}  # the previous keys stay
    failed = captured_logs.lines("api_keys_reload_failed")
    assert [line["level"] for line in failed] == ["error", "error"]
