"""Settings, parsed once from the environment into a frozen object at startup.

Nothing reads the environment at import time. An invalid value raises `ConfigError` naming the
variable; the entry point turns it into one line on stderr and exit status 2.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

T = TypeVar("T")

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "console")
OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_HOST_PORT = re.compile(r"(?P<host>\[[0-9a-fA-F:.]*\]|[A-Za-z0-9.-]*):(?P<port>\d{1,5})")


STORE_URL = "PAYMENTS_STORE_URL"
STORE_PASSWORD_FILE = "PAYMENTS_STORE_PASSWORD_FILE"  # noqa: S105 - a variable name
POSTGRES_SCHEMES = ("postgresql", "postgres")


class ConfigError(ValueError):
    """An environment variable has an invalid value."""


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """Where payments are stored, parsed from `PAYMENTS_STORE_URL` (SQLAlchemy's URL forms).

    `kind` is memory, sqlite or postgresql. The password is kept out of `repr` and out of
    `redacted`; only `password` itself holds it, for the driver.
    """

    kind: str = "memory"
    path: str = ""  # sqlite: the database file
    host: str = ""
    port: int | None = None
    user: str = ""
    database: str = ""
    params: tuple[tuple[str, str], ...] = ()  # postgresql: passed to the driver (e.g. sslmode)
    password: str | None = field(default=None, repr=False)

    @property
    def redacted(self) -> str:
        """The URL with the password replaced by ***: safe for logs and error messages."""
        if self.kind == "memory":
            return "memory://"
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        return self._postgres_url("***" if self.password is not None else None)

    @property
    def dsn(self) -> str:
        """The PostgreSQL DSN without the password (the driver gets that separately)."""
        return self._postgres_url(None)

    def _postgres_url(self, password: str | None) -> str:
        user = quote(self.user, safe="")
        auth = f"{user}:{password}@" if password is not None else (f"{user}@" if user else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        query = f"?{urlencode(self.params)}" if self.params else ""
        return f"postgresql://{auth}{host}{port}/{quote(self.database, safe='')}{query}"


@dataclass(frozen=True, slots=True)
class Settings:
    grpc_address: str = "[::]:50051"
    metrics_address: str | None = "0.0.0.0:9464"
    log_level: str = "info"
    log_format: str = "json"
    idempotency_ttl_seconds: float = 86_400.0
    shutdown_grace_seconds: float = 10.0
    processor_timeout_seconds: float = 1.0
    simulated_slow_seconds: float = 2.0
    access_log: bool = True
    observe_health_checks: bool = False
    log_queue_records: int = 10_000
    # The OpenTelemetry switches the service itself acts on (the SDK reads the rest, e.g.
    # OTEL_BSP_*, OTEL_EXPORTER_OTLP_* and the sampler, from the environment as usual).
    tracing: bool = True  # OTEL_SDK_DISABLED=true turns it off
    otlp_export: bool = False  # an OTLP endpoint is configured
    span_attribute_value_limit: int = 256
    # OTEL_BSP_MAX_EXPORT_BATCH_SIZE with this service's default (the SDK's is 512): a smaller
    # batch holds the GIL for less time per export and keeps fewer finished spans in memory.
    span_export_batch_size: int = 128
    # OTEL_BSP_MAX_QUEUE_SIZE (the SDK's default): spans past it are dropped and counted in
    # payments_spans_dropped_total (observability/span_drops.py).
    span_export_queue_size: int = 2048
    api_keys_file: str | None = None  # unset: authentication off, every caller is `default`
    tls_cert_file: str | None = None  # with tls_key_file: serve TLS on the gRPC port
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None  # also require client certificates (mutual TLS)
    simulation: bool = True  # off: the `simulate` metadata key is refused (production)
    store: StoreLocation = StoreLocation()
    store_connect_timeout_seconds: float = 30.0
    store_pool_size: int = 10
    store_sqlite_synchronous: str = "full"
    settlement_timeout_seconds: float = 30.0
    settlement_deadline_seconds: float = 600.0
    recovery_interval_seconds: float = 5.0

    @property
    def settlement_lease_seconds(self) -> float:
        """How long a payment's settlement belongs to the process that started it: one attempt
        (processor deadline + settlement timeout) plus a margin. After that, a durable store's
        recovery may take the payment over (its owner died)."""
        return self.processor_timeout_seconds + self.settlement_timeout_seconds + 5.0

    memory_store_max_mib: int = 256
    # The edges (docs/limits.md): load shedding, connection policy, the shutdown drain.
    max_concurrent_rpcs: int = 1000
    max_connection_idle_seconds: float = 300.0
    max_connection_age_seconds: float = 300.0
    max_connection_age_grace_seconds: float = 30.0
    keepalive_time_seconds: float = 60.0
    shutdown_drain_seconds: float = 2.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        defaults = cls()

        def read(name: str, parse: Callable[[str], T], default: T) -> T:
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                return default
            try:
                return parse(raw.strip())
            except ValueError as exc:
                raise ConfigError(f"invalid {name}={raw!r}: {exc}") from None

        settings = cls(
            grpc_address=read("PAYMENTS_GRPC_ADDRESS", _address, defaults.grpc_address),
            metrics_address=read(
                "PAYMENTS_METRICS_ADDRESS", _optional_address, defaults.metrics_address
            ),
            log_level=read("PAYMENTS_LOG_LEVEL", _choice(LOG_LEVELS), defaults.log_level),
            log_format=read("PAYMENTS_LOG_FORMAT", _choice(LOG_FORMATS), defaults.log_format),
            idempotency_ttl_seconds=read(
                "PAYMENTS_IDEMPOTENCY_TTL_SECONDS",
                _positive_float,
                defaults.idempotency_ttl_seconds,
            ),
            shutdown_grace_seconds=read(
                "PAYMENTS_SHUTDOWN_GRACE_SECONDS",
                _non_negative_float,
                defaults.shutdown_grace_seconds,
            ),
            processor_timeout_seconds=read(
                "PAYMENTS_PROCESSOR_TIMEOUT_SECONDS",
                _positive_float,
                defaults.processor_timeout_seconds,
            ),
            simulated_slow_seconds=read(
                "PAYMENTS_SIMULATED_SLOW_SECONDS",
                _non_negative_float,
                defaults.simulated_slow_seconds,
            ),
            access_log=read("PAYMENTS_ACCESS_LOG", _switch, defaults.access_log),
            observe_health_checks=read(
                "PAYMENTS_OBSERVE_HEALTH_CHECKS", _switch, defaults.observe_health_checks
            ),
            log_queue_records=read(
                "PAYMENTS_LOG_QUEUE_RECORDS", _positive_int, defaults.log_queue_records
            ),
            tracing=not read("OTEL_SDK_DISABLED", _otel_boolean, False),
            otlp_export=any(env.get(name, "").strip() for name in OTLP_ENDPOINT_VARIABLES),
            span_export_batch_size=read(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                _positive_int,
                defaults.span_export_batch_size,
            ),
            span_export_queue_size=read(
                "OTEL_BSP_MAX_QUEUE_SIZE", _positive_int, defaults.span_export_queue_size
            ),
            span_attribute_value_limit=read(
                "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                _positive_int,
                read(
                    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
                    _positive_int,
                    defaults.span_attribute_value_limit,
                ),
            ),
            api_keys_file=read("PAYMENTS_API_KEYS_FILE", str, defaults.api_keys_file),
            tls_cert_file=read("PAYMENTS_TLS_CERT_FILE", str, None),
            tls_key_file=read("PAYMENTS_TLS_KEY_FILE", str, None),
            tls_client_ca_file=read("PAYMENTS_TLS_CLIENT_CA_FILE", str, None),
            simulation=read("PAYMENTS_SIMULATION", _switch, defaults.simulation),
            store=_store_location(env),
            store_connect_timeout_seconds=read(
                "PAYMENTS_STORE_CONNECT_TIMEOUT_SECONDS",
                _positive_float,
                defaults.store_connect_timeout_seconds,
            ),
            store_pool_size=read("PAYMENTS_STORE_POOL_SIZE", _pool_size, defaults.store_pool_size),
            store_sqlite_synchronous=read(
                "PAYMENTS_STORE_SQLITE_SYNCHRONOUS",
                _choice(("full", "normal")),
                defaults.store_sqlite_synchronous,
            ),
            settlement_timeout_seconds=read(
                "PAYMENTS_SETTLEMENT_TIMEOUT_SECONDS",
                _positive_float,
                defaults.settlement_timeout_seconds,
            ),
            settlement_deadline_seconds=read(
                "PAYMENTS_SETTLEMENT_DEADLINE_SECONDS",
                _positive_float,
                defaults.settlement_deadline_seconds,
            ),
            recovery_interval_seconds=read(
                "PAYMENTS_RECOVERY_INTERVAL_SECONDS",
                _positive_float,
                defaults.recovery_interval_seconds,
            ),
            memory_store_max_mib=read(
                "PAYMENTS_MEMORY_STORE_MAX_MIB", _positive_int, defaults.memory_store_max_mib
            ),
            max_concurrent_rpcs=read(
                "PAYMENTS_MAX_CONCURRENT_RPCS", _positive_int, defaults.max_concurrent_rpcs
            ),
            max_connection_idle_seconds=read(
                "PAYMENTS_MAX_CONNECTION_IDLE_SECONDS",
                _positive_float,
                defaults.max_connection_idle_seconds,
            ),
            max_connection_age_seconds=read(
                "PAYMENTS_MAX_CONNECTION_AGE_SECONDS",
                _positive_float,
                defaults.max_connection_age_seconds,
            ),
            max_connection_age_grace_seconds=read(
                "PAYMENTS_MAX_CONNECTION_AGE_GRACE_SECONDS",
                _positive_float,
                defaults.max_connection_age_grace_seconds,
            ),
            keepalive_time_seconds=read(
                "PAYMENTS_KEEPALIVE_TIME_SECONDS", _positive_float, defaults.keepalive_time_seconds
            ),
            shutdown_drain_seconds=read(
                "PAYMENTS_SHUTDOWN_DRAIN_SECONDS",
                _non_negative_float,
                defaults.shutdown_drain_seconds,
            ),
        )
        _check_tls_files(settings)
        return settings


def _check_tls_files(settings: Settings) -> None:
    """Certificate and key come together; mutual TLS needs TLS. (Their contents are checked
    by `security.tls` when the server starts.)"""
    if settings.tls_cert_file is not None and settings.tls_key_file is None:
        raise ConfigError("invalid PAYMENTS_TLS_KEY_FILE='': required with PAYMENTS_TLS_CERT_FILE")
    if settings.tls_key_file is not None and settings.tls_cert_file is None:
        raise ConfigError("invalid PAYMENTS_TLS_CERT_FILE='': required with PAYMENTS_TLS_KEY_FILE")
    if settings.tls_client_ca_file is not None and settings.tls_cert_file is None:
        raise ConfigError(
            f"invalid PAYMENTS_TLS_CLIENT_CA_FILE={settings.tls_client_ca_file!r}: client "
            "certificates need TLS: set PAYMENTS_TLS_CERT_FILE and PAYMENTS_TLS_KEY_FILE too"
        )


def _otel_boolean(raw: str) -> bool:
    """OpenTelemetry's boolean: only a case-insensitive "true" is true (the spec's rule)."""
    return raw.lower() == "true"


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("expected a whole number") from None
    if value < 1:
        raise ValueError("expected a whole number greater than 0")
    return value


def _store_location(env: Mapping[str, str]) -> StoreLocation:
    """Parse PAYMENTS_STORE_URL. Unlike the other variables, an error never echoes the raw
    value: it may hold a password."""
    raw = (env.get(STORE_URL) or "").strip()
    if not raw:
        return StoreLocation()
    try:
        location = _parse_store_url(raw)
    except ValueError as exc:
        raise ConfigError(f"invalid {STORE_URL}: {exc}") from None
    if location.kind != "postgresql" or location.password is not None:
        return location
    password_file = (env.get(STORE_PASSWORD_FILE) or "").strip()
    if password_file:
        try:
            password = Path(password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(
                f"invalid {STORE_PASSWORD_FILE}={password_file!r}: cannot read it ({detail})"
            ) from None
        return _with_password(location, password)
    if env.get("PGPASSWORD"):
        return _with_password(location, env["PGPASSWORD"])
    return location


def _with_password(location: StoreLocation, password: str) -> StoreLocation:
    return StoreLocation(
        kind=location.kind,
        host=location.host,
        port=location.port,
        user=location.user,
        database=location.database,
        params=location.params,
        password=password,
    )


def _parse_store_url(raw: str) -> StoreLocation:
    scheme, sep, rest = raw.partition("://")
    scheme = scheme.lower()
    expected = "expected memory://, sqlite:///PATH or postgresql://USER@HOST:PORT/DBNAME"
    if not sep:
        raise ValueError(expected)
    if scheme == "memory":
        if rest:
            raise ValueError("memory:// takes no path")
        return StoreLocation()
    if scheme == "sqlite":
        # sqlite:///relative.db -> "relative.db"; sqlite:////abs/file.db -> "/abs/file.db"
        if not rest.startswith("/") or rest == "/" or "?" in rest:
            raise ValueError("expected sqlite:///relative/path.db or sqlite:////absolute/path.db")
        return StoreLocation(kind="sqlite", path=unquote(rest[1:]))
    if scheme in POSTGRES_SCHEMES:
        return _parse_postgres_url(raw)
    raise ValueError(f"unknown scheme; {expected}")


def _parse_postgres_url(raw: str) -> StoreLocation:
    try:
        parts = urlsplit(raw)
        port = parts.port
        params = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ValueError("malformed postgresql URL (check the port and the query)") from None
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ValueError("expected postgresql://USER@HOST:PORT/DBNAME with a database name")
    if parts.fragment:
        raise ValueError("a postgresql URL takes no #fragment")
    password = unquote(parts.password) if parts.password is not None else None
    kept: list[tuple[str, str]] = []
    for key, value in params:
        if key == "password":  # libpq allows it in the query too; keep it out of the DSN
            password = value
        else:
            kept.append((key, value))
    return StoreLocation(
        kind="postgresql",
        host=parts.hostname or "",
        port=port,
        user=unquote(parts.username or ""),
        database=database,
        params=tuple(kept),
        password=password,
    )


def _address(raw: str) -> str:
    match = _HOST_PORT.fullmatch(raw)
    if match is None or int(match["port"]) > 65535:
        raise ValueError("expected HOST:PORT, e.g. [::]:50051 or 127.0.0.1:50051")
    return raw


def _optional_address(raw: str) -> str | None:
    return None if raw.lower() == "off" else _address(raw)


def _switch(raw: str) -> bool:
    value = raw.lower()
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no"):
        return False
    raise ValueError("expected on or off")


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def _pool_size(raw: str) -> int:
    value = _positive_int(raw)
    if value > 1000:
        raise ValueError("expected a whole number from 1 to 1000")
    return value


def _positive_float(raw: str) -> float:
    value = _non_negative_float(raw)
    if value == 0:
        raise ValueError("expected a number of seconds greater than 0")
    return value


def _non_negative_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise ValueError("expected a finite, non-negative number of seconds")
    return value
