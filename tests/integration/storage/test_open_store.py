"""Startup: the store is opened with retry for the connect timeout, never leaking the password;
`payments-server migrate` applies the schema and exits."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

from payments_service.adapters.stores import migrations
from payments_service.adapters.stores.factory import StoreOpenTimeoutError, open_store
from payments_service.adapters.stores.location import redact
from payments_service.adapters.stores.memory import InMemoryPaymentRepository
from payments_service.adapters.stores.sqlite import SqlitePaymentRepository
from payments_service.config import Settings
from payments_service.main import USAGE
from tests.fakes import FakeClock
from tests.processes import run_server
from tests.stores import postgres_schema

PLANTED = "pl4nted-S3cret%/@"  # quoted in the URL; must not appear in any form anywhere


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def unreachable_url() -> str:
    from urllib.parse import quote  # noqa: PLC0415

    return f"postgresql://payments:{quote(PLANTED, safe='')}@127.0.0.1:{closed_port()}/payments"


@pytest.mark.parametrize(
    ("url", "kind"),
    [("memory://", InMemoryPaymentRepository), ("sqlite:///{tmp}/p.db", SqlitePaymentRepository)],
)
async def test_open_store_returns_the_configured_repository(
    tmp_path: Path, url: str, kind: type
) -> None:
    settings = Settings.from_env({"PAYMENTS_STORE_URL": url.format(tmp=tmp_path)})
    store = await open_store(settings, clock=FakeClock())
    try:
        assert isinstance(store.repository, kind)
    finally:
        await store.close()


async def test_open_store_opens_and_migrates_postgresql() -> None:
    async with postgres_schema() as location:
        settings = Settings(store=location)
        store = await open_store(settings, clock=FakeClock())
        try:
            assert store.system == "postgresql"
            assert store.pool is not None
            assert store.pool.pool_max_size() == settings.store_pool_size
        finally:
            await store.close()


async def test_an_unreachable_database_is_retried_then_reported_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings.from_env(
        {"PAYMENTS_STORE_URL": unreachable_url(), "PAYMENTS_STORE_CONNECT_TIMEOUT_SECONDS": "0.5"}
    )
    with pytest.raises(StoreOpenTimeoutError) as caught:
        await open_store(settings, clock=FakeClock())
    message = str(caught.value)
    assert message.startswith("could not open the store postgresql://payments:***@127.0.0.1:")
    assert "within 0.5 s" in message
    logged = capsys.readouterr()
    assert "store_connect_failed" in logged.out + logged.err
    for text in (message, logged.out, logged.err, repr(settings)):
        assert "pl4nted" not in text


def test_redact_hides_the_password_raw_and_url_quoted() -> None:
    settings = Settings.from_env({"PAYMENTS_STORE_URL": unreachable_url()})
    text = f"failed for {PLANTED} and pl4nted-S3cret%25%2F%40"
    assert redact(text, settings.store) == "failed for *** and ***"


def test_migrate_subcommand_creates_the_schema_and_exits_zero(tmp_path: Path) -> None:
    result = run_server("migrate", PAYMENTS_STORE_URL=f"sqlite:///{tmp_path}/p.db")
    assert result.returncode == 0, result.stderr
    assert "store_migrated" in result.stdout
    with sqlite3.connect(tmp_path / "p.db") as db:
        latest = migrations.load("sqlite")[-1].version
        assert db.execute("SELECT max(version) FROM schema_version").fetchone()[0] == latest


def test_an_unreachable_store_exits_one_with_one_line_and_no_password() -> None:
    result = run_server(
        "migrate",
        PAYMENTS_STORE_URL=unreachable_url(),
        PAYMENTS_STORE_CONNECT_TIMEOUT_SECONDS="0.3",
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "payments-server: could not open the store postgresql://payments:***@"
    )
    assert "pl4nted" not in result.stdout + result.stderr


def test_a_database_from_a_newer_release_exits_one_with_a_clear_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/p.db"
    assert run_server("migrate", PAYMENTS_STORE_URL=url).returncode == 0
    with sqlite3.connect(tmp_path / "p.db") as db:
        db.execute("INSERT INTO schema_version VALUES (42, 'future', 0)")
    result = run_server("migrate", PAYMENTS_STORE_URL=url)
    assert result.returncode == 1
    assert "schema is at version 42, newer than this payments-server" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("bogus",), {}, USAGE),
        (("migrate",), {"PAYMENTS_STORE_URL": f"mysql://u:{PLANTED}@h/db"}, "PAYMENTS_STORE_URL"),
    ],
)
def test_bad_arguments_or_urls_exit_two(
    args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    result = run_server(*args, **env)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "pl4nted" not in result.stderr
