"""Every secret a PostgreSQL store URL can carry (the password, in the user info or the query;
`sslpassword`; the paths of key, certificate and password files) is planted, and ALL output of
the real `payments-server` is scanned for it: `config`, `migrate`, a server that serves calls
and shuts down, and a server whose store cannot be opened."""

from __future__ import annotations

import re
import signal
from collections.abc import AsyncIterator
from urllib.parse import quote

import grpc
import pytest

from payments_service.adapters.stores.location import SECRET_PARAMS, StoreLocation, redact
from payments_service.config import Settings
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from tests.conftest import payment_request
from tests.integration.storage.test_open_store import closed_port
from tests.processes import ServerProcess, run_server
from tests.stores import postgres_schema

# Each secret carries a marker, so a scan finds any copy (a quoted one too: no character of a
# marker is quoted).
PLANTED = {
    "userinfo password": "PLANTEDuserinfo/p@ss",
    "password": "PLANTEDquerypassword",
    "sslpassword": "PLANTEDsslpassword",
    "sslkey": "/nonexistent/PLANTEDsslkey.key",
    "sslcert": "/nonexistent/PLANTEDsslcert.crt",
    "sslrootcert": "/nonexistent/PLANTEDsslrootcert.crt",
    "sslcrl": "/nonexistent/PLANTEDsslcrl.crl",
    "passfile": "/nonexistent/PLANTEDpassfile",
}
MARKERS = tuple(re.findall(r"PLANTED[a-z]+", " ".join(PLANTED.values())))


def planted_url(
    port: int, *, sslmode: str, schema: str = "public", at: StoreLocation | None = None
) -> str:
    """A URL carrying every planted secret, for `at`'s user, host and database (the local
    `postgres@127.0.0.1/test` unless given) on `port`."""
    query = "&".join(
        f"{name}={quote(value, safe='/')}"
        for name, value in PLANTED.items()
        if name != "userinfo password"
    )
    password = quote(PLANTED["userinfo password"], safe="")
    at = at or StoreLocation()
    user = quote(at.user or "postgres", safe="")
    host = at.host or "127.0.0.1"
    database = quote(at.database or "test", safe="")
    return (
        f"postgresql://{user}:{password}@{host}:{port}/{database}"
        f"?sslmode={sslmode}&search_path={schema}&{query}"
    )


@pytest.fixture
async def database() -> AsyncIterator[StoreLocation]:
    """A schema of its own in the test database (PAYMENTS_TEST_DATABASE_URL)."""
    async with postgres_schema() as location:
        yield location


def scan(where: str, text: str) -> None:
    for marker in MARKERS:
        assert marker not in text, f"a planted secret ({marker}) leaked into {where}"


def test_the_planted_url_carries_every_secret_parameter() -> None:
    assert set(PLANTED) - {"userinfo password", "password"} <= SECRET_PARAMS
    assert len(set(MARKERS)) == len(PLANTED)


async def test_no_planted_secret_reaches_any_output(database: StoreLocation) -> None:
    url = planted_url(  # trust authentication: the planted password is never checked
        database.port or 5432,
        sslmode="disable",
        schema=dict(database.params)["search_path"],
        at=database,
    )

    config = run_server("config", PAYMENTS_STORE_URL=url)
    assert config.returncode == 0, config.stderr
    scan("`config`", config.stdout + config.stderr)

    migrated = run_server("migrate", PAYMENTS_STORE_URL=url)
    assert migrated.returncode == 0, migrated.stderr
    assert "store_migrated" in migrated.stdout
    scan("`migrate`", migrated.stdout + migrated.stderr)

    server = ServerProcess(PAYMENTS_STORE_URL=url, PAYMENTS_LOG_LEVEL="debug")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.PaymentServiceStub(channel)
            await stub.RequestPayment(payment_request(), timeout=10)
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for("shutdown_complete")
        server.proc.wait(timeout=10)
    finally:
        server.stop()
    assert server.proc.stderr is not None
    served = "\n".join(map(str, server.seen)) + server.proc.stderr.read()
    assert {"store_connecting", "store_opened", "rpc_completed"} <= {
        str(line["event"]) for line in server.seen
    }
    scan("a serving server's output", served)

    # A store that cannot be opened: the driver's errors are about the files the URL names
    # (verify-full reads them) or the refused port; the retries and the one-line exit are all
    # scanned.
    for sslmode in ("verify-full", "disable"):
        failed = run_server(
            PAYMENTS_STORE_URL=planted_url(closed_port(), sslmode=sslmode),
            PAYMENTS_STORE_CONNECT_TIMEOUT_SECONDS="0.5",
            PAYMENTS_GRPC_ADDRESS="127.0.0.1:0",
            PAYMENTS_METRICS_ADDRESS="off",
        )
        assert failed.returncode == 1, failed.stderr
        assert "store_connect_failed" in failed.stdout
        scan(f"a failed start ({sslmode})", failed.stdout + failed.stderr)


def test_a_drivers_message_quoting_a_secret_parameter_is_redacted() -> None:
    location = Settings.from_env({"PAYMENTS_STORE_URL": planted_url(5432, sslmode="require")}).store
    # The query's password wins over the user info's, which never reaches the driver.
    for name, value in PLANTED.items():
        if name == "userinfo password":
            continue
        text = redact(f"could not use {value} nor {quote(value, safe='')}", location)
        assert text == "could not use *** nor ***"
