"""PAYMENTS_STORE_URL and its password sources: parsed once, never echoing a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from payments_service.adapters.stores.location import StoreLocation
from payments_service.config import ConfigError, Settings

SECRET = "s3cr3t-Pa55"


def test_the_default_store_is_memory_with_a_thirty_second_connect_timeout() -> None:
    settings = Settings.from_env({})
    assert settings.store == StoreLocation(kind="memory")
    assert settings.store_connect_timeout_seconds == 30.0


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("memory://", StoreLocation()),
        ("sqlite:///payments.db", StoreLocation(kind="sqlite", path="payments.db")),
        ("sqlite:///data/p.db", StoreLocation(kind="sqlite", path="data/p.db")),
        ("sqlite:////var/lib/p.db", StoreLocation(kind="sqlite", path="/var/lib/p.db")),
        (
            "postgresql://app@db.internal:5433/payments",
            StoreLocation(
                kind="postgresql", host="db.internal", port=5433, user="app", database="payments"
            ),
        ),
        (
            "postgres://app:pw@db/payments?sslmode=require&search_path=s1",
            StoreLocation(
                kind="postgresql",
                host="db",
                user="app",
                database="payments",
                params=(("sslmode", "require"), ("search_path", "s1")),
                password="pw",  # noqa: S106
            ),
        ),
        (
            "postgresql://app@[::1]:5432/p?password=pw",
            StoreLocation(
                kind="postgresql",
                host="::1",
                port=5432,
                user="app",
                database="p",
                password="pw",  # noqa: S106
            ),
        ),
    ],
)
def test_each_store_url_form_is_parsed(url: str, expected: StoreLocation) -> None:
    assert Settings.from_env({"PAYMENTS_STORE_URL": url}).store == expected


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u@h/db",
        "memory",
        "memory://x",
        "sqlite://",
        "sqlite:///",
        "sqlite://relative.db",
        "sqlite:///p.db?mode=ro",
        "postgresql://u@h:99999/db",
        "postgresql://u@h:port/db",
        "postgresql://u@h:5432",
        "postgresql://u@h:5432/a/b",
        "postgresql://u@h/db#frag",
        f"postgresql://u:{SECRET}@h:notaport/db",
    ],
)
def test_an_invalid_store_url_names_the_variable_and_never_echoes_it(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^invalid PAYMENTS_STORE_URL: ") as caught:
        Settings.from_env({"PAYMENTS_STORE_URL": f"{url}"})
    assert SECRET not in str(caught.value)


def test_the_store_connect_timeout_is_read_and_checked() -> None:
    env = {"PAYMENTS_STORE_CONNECT_TIMEOUT_SECONDS": "2.5"}
    assert Settings.from_env(env).store_connect_timeout_seconds == 2.5
    with pytest.raises(ConfigError, match=r"^invalid PAYMENTS_STORE_CONNECT_TIMEOUT_SECONDS="):
        Settings.from_env({"PAYMENTS_STORE_CONNECT_TIMEOUT_SECONDS": "0"})


@pytest.mark.parametrize(
    ("url", "extra", "expected"),
    [
        # The URL's own password wins over every other source.
        ("postgresql://u:from-url@h/db", {"PGPASSWORD": "from-env"}, "from-url"),
        # The password file wins over PGPASSWORD: it is this service's own setting.
        ("postgresql://u@h/db", {"PGPASSWORD": "from-env", "FILE": "from-file\n"}, "from-file"),
        ("postgresql://u@h/db", {"PGPASSWORD": "from-env"}, "from-env"),
        ("postgresql://u@h/db", {}, None),
        # SQLite has no password: the sources are ignored.
        ("sqlite:///p.db", {"PGPASSWORD": "from-env"}, None),
    ],
)
def test_the_password_comes_from_the_url_then_the_file_then_pgpassword(
    tmp_path: Path, url: str, extra: dict[str, str], expected: str | None
) -> None:
    env = {"PAYMENTS_STORE_URL": url}
    if "FILE" in extra:
        secret_file = tmp_path / "password"
        secret_file.write_text(extra.pop("FILE"))
        env["PAYMENTS_STORE_PASSWORD_FILE"] = str(secret_file)
    env.update(extra)
    assert Settings.from_env(env).store.password == expected


def test_an_unreadable_password_file_names_its_variable(tmp_path: Path) -> None:
    env = {
        "PAYMENTS_STORE_URL": "postgresql://u@h/db",
        "PAYMENTS_STORE_PASSWORD_FILE": str(tmp_path / "missing"),
    }
    with pytest.raises(ConfigError, match=r"^invalid PAYMENTS_STORE_PASSWORD_FILE="):
        Settings.from_env(env)


def test_the_password_never_appears_in_the_settings_repr_or_the_redacted_url() -> None:
    settings = Settings.from_env(
        {"PAYMENTS_STORE_URL": f"postgresql://app:{SECRET}@db:5432/payments?sslmode=require"}
    )
    assert settings.store.password == SECRET
    assert SECRET not in repr(settings)
    assert SECRET not in settings.store.dsn
    assert settings.store.redacted == "postgresql://app:***@db:5432/payments?…"  # no query
    assert settings.store.dsn == "postgresql://app@db:5432/payments?sslmode=require"


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("memory://", "memory://"),
        ("sqlite:////abs/p.db", "sqlite:////abs/p.db"),
        ("postgresql://h/db", "postgresql://h/db"),
        ("postgresql://[::1]/db", "postgresql://[::1]/db"),
    ],
)
def test_the_redacted_url_round_trips_without_a_password(url: str, redacted: str) -> None:
    assert Settings.from_env({"PAYMENTS_STORE_URL": url}).store.redacted == redacted


@pytest.mark.parametrize(
    ("url", "redacted", "dsn"),
    [
        (
            f"postgresql://us%20er:{SECRET}@db:5432/pay%20db",
            "postgresql://us%20er:***@db:5432/pay%20db",
            "postgresql://us%20er@db:5432/pay%20db",
        ),
        ("postgresql://[::1]:5432/db", "postgresql://[::1]:5432/db", "postgresql://[::1]:5432/db"),
        (
            f"postgresql://[fe80::1]/db?password={SECRET}&application_name=a b",
            "postgresql://:***@[fe80::1]/db?…",
            "postgresql://[fe80::1]/db?application_name=a+b",
        ),
    ],
)
def test_the_redacted_url_and_the_dsn_share_the_user_host_and_database(
    url: str, redacted: str, dsn: str
) -> None:
    store = Settings.from_env({"PAYMENTS_STORE_URL": url}).store
    assert (store.redacted, store.dsn) == (redacted, dsn)
    assert SECRET not in store.redacted + store.dsn


@pytest.mark.parametrize(
    ("env", "field", "value"),
    [
        ({"PAYMENTS_STORE_POOL_SIZE": "25"}, "store_pool_size", 25),
        ({"PAYMENTS_STORE_SQLITE_SYNCHRONOUS": "NORMAL"}, "store_sqlite_synchronous", "normal"),
        ({}, "store_sqlite_synchronous", "full"),
        ({}, "store_pool_size", 10),
    ],
)
def test_store_tuning_variables_are_read(env: dict[str, str], field: str, value: object) -> None:
    assert getattr(Settings.from_env(env), field) == value


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("PAYMENTS_STORE_POOL_SIZE", "0"),
        ("PAYMENTS_STORE_POOL_SIZE", "many"),
        ("PAYMENTS_STORE_POOL_SIZE", "1001"),
        ("PAYMENTS_STORE_SQLITE_SYNCHRONOUS", "off"),
    ],
)
def test_an_invalid_store_tuning_value_names_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=rf"^invalid {name}="):
        Settings.from_env({name: raw})
