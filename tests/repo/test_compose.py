"""docker-compose.yml runs the service on PostgreSQL without a committed password.

`docker-compose config -q` (make deploy-check) proves the file is valid compose; these tests pin
what the schema cannot: the wiring between the services, the secret and the make target that
writes it.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml  # type: ignore[import-untyped]

from tests.deploy_env import known_variables

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
PAYMENTS_ENV: dict[str, str] = SERVICES["payments"]["environment"]
SECRET_NAME = "postgres_password"


def test_payments_starts_only_after_postgres_is_healthy() -> None:
    assert SERVICES["payments"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    test = SERVICES["postgres"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"]
    assert test[test.index("-h") + 1] == "127.0.0.1", "a socket check passes during initdb"


def test_postgres_keeps_its_data_in_a_named_volume() -> None:
    [volume] = SERVICES["postgres"]["volumes"]
    source, target = volume.split(":")
    assert target == "/var/lib/postgresql/data"
    assert source in COMPOSE["volumes"]


def test_the_store_url_names_the_postgres_service_and_carries_no_password() -> None:
    url = urlsplit(PAYMENTS_ENV["PAYMENTS_STORE_URL"])
    assert url.scheme == "postgresql"
    assert url.hostname == "postgres"
    assert url.hostname in SERVICES
    assert url.password is None
    assert url.username == SERVICES["postgres"]["environment"]["POSTGRES_USER"]
    assert url.path.lstrip("/") == SERVICES["postgres"]["environment"]["POSTGRES_DB"]


def test_both_services_read_the_password_from_the_same_compose_secret() -> None:
    path = f"/run/secrets/{SECRET_NAME}"
    assert PAYMENTS_ENV["PAYMENTS_STORE_PASSWORD_FILE"] == path
    assert SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == path
    for service in ("payments", "postgres"):
        assert SECRET_NAME in SERVICES[service]["secrets"]
    assert "POSTGRES_PASSWORD" not in SERVICES["postgres"]["environment"]


def secret_file() -> Path:
    return ROOT / str(COMPOSE["secrets"][SECRET_NAME]["file"])


def test_the_secret_file_is_git_ignored_and_outside_the_image_context() -> None:
    relative = secret_file().relative_to(ROOT)
    ignored = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert f"{relative.parts[0]}/" in ignored
    # .dockerignore is an allow-list: nothing it does not re-include reaches the build context.
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in dockerignore
    assert not [line for line in dockerignore if line.startswith(f"!{relative.parts[0]}")]


def test_the_service_stop_timeout_covers_drain_and_grace() -> None:
    stop = int(SERVICES["payments"]["stop_grace_period"].removesuffix("s"))
    drain = float(PAYMENTS_ENV["PAYMENTS_SHUTDOWN_DRAIN_SECONDS"])
    grace = float(PAYMENTS_ENV["PAYMENTS_SHUTDOWN_GRACE_SECONDS"])
    assert stop > drain + grace


def test_every_payments_variable_compose_sets_is_one_the_service_reads() -> None:
    set_here = {name for name in PAYMENTS_ENV if name.startswith("PAYMENTS_")}
    assert set_here - known_variables() == set()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_compose_secrets_writes_a_random_password_once(tmp_path: Path) -> None:
    """The target the stack depends on: a private directory, a file the containers can read, a
    password without a newline, and the same password on a second run (the volume keeps it)."""
    directory = tmp_path / "secrets"

    def make() -> None:
        subprocess.run(
            ["make", "-s", "compose-secrets", f"COMPOSE_SECRETS={directory}"],  # noqa: S607
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=60,
        )

    make()
    password_file = directory / secret_file().name
    password = password_file.read_text()
    assert len(password) >= 32
    assert password.strip() == password
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o644
    make()
    assert password_file.read_text() == password
    assert list(directory.iterdir()) == [password_file], "no temporary file is left behind"
