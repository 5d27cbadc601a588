"""Settings: every environment variable the service reads, declared once, here.

Each field of `Settings` (and of `ProbeSettings`, which only `payments-healthcheck` reads) is
declared with `setting(...)`: the variable, its parser, its default *as written in the
environment* (parsed by the same parser, so the documented default is the real one), a one-line
meaning, and for a limit what a client sees when it is hit. `from_env` is a loop over these
declarations; `payments-server config` prints them with their effective values, and the README's
configuration table and docs/limits.md are rendered from them (`payments_service.reference`,
`make docs`). Nothing else in src/ reads the environment or repeats a default.

Nothing reads the environment at import time. An invalid value raises `ConfigError` naming the
variable; the entry points turn it into one line on stderr and exit status 2.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

from payments_service.adapters.stores.location import StoreLocation, parse_store_url
from payments_service.adapters.stores.sqlite import SYNCHRONOUS as SQLITE_SYNCHRONOUS

T = TypeVar("T")
S = TypeVar("S", bound="EnvSettings")

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "console")
_HOST_PORT = re.compile(r"(?P<host>\[[0-9a-fA-F:.]*\]|[A-Za-z0-9.-]*):(?P<port>\d{1,5})")


class ConfigError(ValueError):
    """An environment variable has an invalid value."""


@dataclass(frozen=True, slots=True)
class Limit:
    """What a setting bounds, for the limits table (docs/limits.md).

    `reason`: the `ErrorInfo.reason` of the error-table row a client gets when the limit is hit
    (its code and details are rendered from that row), or None when hitting it is not an error
    of ours; `effect`: what happens, in words; `metrics`: the series that show it.
    """

    what: str
    effect: str
    metrics: tuple[str, ...] = ()
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable: the declaration behind one settings field."""

    names: tuple[str, ...]  # the variable, then the ones it falls back to when unset
    parse: Callable[[str], Any]
    default: str | None  # as written in the environment; None: unset
    meaning: str
    secret: bool = False
    limit: Limit | None = None

    @property
    def name(self) -> str:
        return self.names[0]

    def read(self, env: Mapping[str, str]) -> Any:
        """The value `env` gives this variable, else its default; ConfigError names it."""
        name = self.source(env)
        if name is None:
            return self.default_value()
        raw = env[name].strip()
        try:
            return self.parse(raw)
        except ValueError as exc:
            shown = "" if self.secret else f"={raw!r}"
            raise ConfigError(f"invalid {name}{shown}: {exc}") from None

    def default_value(self) -> Any:
        return None if self.default is None else self.parse(self.default)

    def source(self, env: Mapping[str, str]) -> str | None:
        """The variable `env` sets for this setting, or None: the default applies."""
        return next((name for name in self.names if env.get(name, "").strip()), None)


@overload
def setting(
    names: str | tuple[str, ...],
    parse: Callable[[str], T],
    default: str,
    meaning: str,
    *,
    secret: bool = False,
    limit: Limit | None = None,
) -> T: ...
@overload
def setting(
    names: str | tuple[str, ...],
    parse: Callable[[str], T],
    default: None,
    meaning: str,
    *,
    secret: bool = False,
    limit: Limit | None = None,
) -> T | None: ...
def setting(
    names: str | tuple[str, ...],
    parse: Callable[[str], T],
    default: str | None,
    meaning: str,
    *,
    secret: bool = False,
    limit: Limit | None = None,
) -> T | None:
    """Declare a settings field: the dataclass default is `parse(default)`."""
    variable = Variable(
        (names,) if isinstance(names, str) else names, parse, default, meaning, secret, limit
    )
    value: T | None = dataclasses.field(  # the dataclass machinery sees a Field
        default=variable.default_value(), repr=not secret, metadata={"variable": variable}
    )
    return value


# Parsers: each raises ValueError with what it expected (ConfigError adds the variable).


def address(raw: str) -> str:
    match = _HOST_PORT.fullmatch(raw)
    if match is None or int(match["port"]) > 65535:
        raise ValueError("expected HOST:PORT, e.g. [::]:50051 or 127.0.0.1:50051")
    return raw


def optional_address(raw: str) -> str | None:
    return None if raw.lower() == "off" else address(raw)


def switch(raw: str) -> bool:
    value = raw.lower()
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no"):
        return False
    raise ValueError("expected on or off")


def otel_boolean(raw: str) -> bool:
    """OpenTelemetry's boolean: only a case-insensitive "true" is true (the spec's rule)."""
    return raw.lower() == "true"


def choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def whole(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("expected a whole number") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise ValueError(f"expected a whole number {bound}")
        return value

    return parse


def seconds(raw: str) -> float:
    """A finite number of seconds, 0 allowed."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise ValueError("expected a finite, non-negative number of seconds")
    return value


def positive_seconds(raw: str) -> float:
    value = seconds(raw)
    if value == 0:
        raise ValueError("expected a number of seconds greater than 0")
    return value


def text(raw: str) -> str:
    return raw


def per_second(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number per second") from None
    if not 0 < value < float("inf"):
        raise ValueError("expected a finite number per second greater than 0")
    return value


def or_off(parse: Callable[[str], T]) -> Callable[[str], T | None]:
    """`parse`, or None for `off` (the limit is disabled)."""

    def parse_or_off(raw: str) -> T | None:
        return None if raw.lower() == "off" else parse(raw)

    return parse_or_off


positive = whole(1)


class EnvSettings:
    """`from_env` and the declarations of a settings dataclass."""

    __slots__ = ()

    @classmethod
    def variables(cls) -> Iterator[tuple[str, Variable]]:
        """(field name, its variable), in declaration order."""
        for spec in dataclasses.fields(cls):  # type: ignore[arg-type]
            variable = spec.metadata.get("variable")
            if variable is not None:
                yield spec.name, variable

    @classmethod
    def from_env(cls: type[S], env: Mapping[str, str]) -> S:
        values = {name: variable.read(env) for name, variable in cls.variables()}
        return cls(**values)._checked()

    def _checked(self: S) -> S:
        return self


@dataclass(frozen=True, slots=True)
class Settings(EnvSettings):
    """What the server reads at startup (`payments-server`)."""

    grpc_address: str = setting(
        "PAYMENTS_GRPC_ADDRESS",
        address,
        "[::]:50051",
        "gRPC listen address (`HOST:PORT`; port 0 picks a free one)",
    )
    http_address: str | None = setting(
        "PAYMENTS_HTTP_ADDRESS",
        optional_address,
        "0.0.0.0:8080",
        "JSON/HTTP listen address (docs/http-api.md; the same TLS as gRPC); `off` disables it",
    )
    metrics_address: str | None = setting(
        "PAYMENTS_METRICS_ADDRESS",
        optional_address,
        "0.0.0.0:9464",
        "Prometheus `/metrics` listen address; `off` disables metrics",
    )
    log_level: str = setting(
        "PAYMENTS_LOG_LEVEL", choice(LOG_LEVELS), "info", "`debug`, `info`, `warning`, `error`"
    )
    log_format: str = setting(
        "PAYMENTS_LOG_FORMAT",
        choice(LOG_FORMATS),
        "json",
        "`json` (one object per line on stdout) or `console`",
    )
    access_log: bool = setting(
        "PAYMENTS_ACCESS_LOG", switch, "on", "`off` drops the per-call access line"
    )
    observe_health_checks: bool = setting(
        "PAYMENTS_OBSERVE_HEALTH_CHECKS", switch, "off", "`on` traces and logs health checks too"
    )
    log_queue_records: int = setting(
        "PAYMENTS_LOG_QUEUE_RECORDS",
        positive,
        "10000",
        "log lines waiting for stdout; calls never wait for stdout",
        limit=Limit(
            "log lines queued for stdout",
            "nothing for the client: lines past the queue are dropped",
            ("payments_log_records_dropped_total",),
        ),
    )
    idempotency_ttl_seconds: float = setting(
        "PAYMENTS_IDEMPOTENCY_TTL_SECONDS",
        positive_seconds,
        "86400",
        "how long keys (and payments) are remembered",
    )
    processor_timeout_seconds: float = setting(
        "PAYMENTS_PROCESSOR_TIMEOUT_SECONDS",
        positive_seconds,
        "1",
        "how long RequestPayment waits for the processor before answering PENDING",
        limit=Limit(
            "processor deadline",
            "not an error: RequestPayment answers PENDING, the payment settles in the background",
            ("grpc_server_handling_seconds", "payments_settled_total"),
        ),
    )
    simulated_slow_seconds: float = setting(
        "PAYMENTS_SIMULATED_SLOW_SECONDS",
        seconds,
        "2",
        "how long the simulated processor takes for `simulate=slow`",
    )
    simulation: bool = setting(
        "PAYMENTS_SIMULATION",
        switch,
        "on",
        "`off` refuses the `simulate` metadata key with INVALID_ARGUMENT (production)",
    )
    settlement_timeout_seconds: float = setting(
        "PAYMENTS_SETTLEMENT_TIMEOUT_SECONDS",
        positive_seconds,
        "30",
        "one settlement attempt's bound (the processor call); after it the payment is FAILED",
    )
    settlement_deadline_seconds: float = setting(
        "PAYMENTS_SETTLEMENT_DEADLINE_SECONDS",
        positive_seconds,
        "600",
        "durable stores: a payment a crash left PENDING is resumed until `created_at` + this, "
        "then FAILED",
    )
    recovery_interval_seconds: float = setting(
        "PAYMENTS_RECOVERY_INTERVAL_SECONDS",
        positive_seconds,
        "5",
        "durable stores: how often each process looks for settlements whose lease ran out",
    )
    store: StoreLocation = setting(
        "PAYMENTS_STORE_URL",
        parse_store_url,
        "memory://",
        "which store: `memory://`, `sqlite:///relative.db`, `sqlite:////absolute.db`, "
        "`postgresql://user@host:5432/db` (docs/storage.md)",
        secret=True,  # it may carry a password: never echoed, shown redacted
    )
    store_password_file: str | None = setting(
        "PAYMENTS_STORE_PASSWORD_FILE",
        text,
        None,
        "file holding the PostgreSQL password (when the URL has none; wins over `PGPASSWORD`)",
    )
    store_pgpassword: str | None = setting(
        "PGPASSWORD",
        text,
        None,
        "libpq's variable: the PostgreSQL password when neither the URL nor the file has one",
        secret=True,
    )
    store_connect_timeout_seconds: float = setting(
        "PAYMENTS_STORE_CONNECT_TIMEOUT_SECONDS",
        positive_seconds,
        "30",
        "how long startup retries an unreachable store (backoff 0.1 s doubling to 2 s, jittered)",
        limit=Limit(
            "store connect at startup",
            "calls get UNAVAILABLE while the store connects (health NOT_SERVING); past the "
            "timeout the process exits 1 with one line",
            ("grpc_server_handled_total",),
            reason="STORE_UNAVAILABLE",
        ),
    )
    store_timeout_seconds: float = setting(
        "PAYMENTS_STORE_TIMEOUT_SECONDS",
        positive_seconds,
        "5",
        "PostgreSQL: how long opening a connection, an operation's wait for a free one, and "
        "one operation may take",
        limit=Limit(
            "PostgreSQL connect, connection wait and operation time",
            "the call fails instead of waiting longer, and whether the store can be reached is "
            "rechecked (health NOT_SERVING while it cannot, docs/store-outages.md)",
            ("payments_store_errors_total", "payments_store_pool_waiting"),
            reason="STORE_UNAVAILABLE",
        ),
    )
    store_pool_size: int = setting(
        "PAYMENTS_STORE_POOL_SIZE",
        whole(1, 1000),
        "10",
        "PostgreSQL connections per process",
        limit=Limit(
            "PostgreSQL connections per process",
            "store operations wait for a connection (latency grows; nothing fails)",
            ("payments_store_pool_waiting", "payments_store_pool_connections"),
        ),
    )
    store_sqlite_synchronous: str = setting(
        "PAYMENTS_STORE_SQLITE_SYNCHRONOUS",
        choice(tuple(SQLITE_SYNCHRONOUS)),
        "full",
        "SQLite durability: `full` survives power loss; `normal` survives a killed process but "
        "may lose the last commits to an OS crash, for a higher write rate",
    )
    memory_store_max_mib: int = setting(
        "PAYMENTS_MEMORY_STORE_MAX_MIB",
        positive,
        "256",
        "cap on the in-memory store's accounted size (docs/memory-store.md)",
        limit=Limit(
            "memory store size",
            "a new payment is refused and nothing is stored; replays and GetPayment still work",
            (
                "payments_store_bytes",
                "payments_store_max_bytes",
                "payments_store_rejected_full_total",
            ),
            reason="STORE_FULL",
        ),
    )
    max_concurrent_rpcs: int = setting(
        "PAYMENTS_MAX_CONCURRENT_RPCS",
        positive,
        "1000",
        "unary calls running at once in this process (health checks excluded)",
        limit=Limit(
            "concurrent unary calls",
            "the call is refused before any work (health checks are never refused)",
            ("payments_rpcs_shed_total", "payments_rpcs_in_flight", "payments_rpcs_max_in_flight"),
            reason="OVERLOADED",
        ),
    )
    rate_limit_rps: float | None = setting(
        "PAYMENTS_RATE_LIMIT_RPS",
        or_off(per_second),
        "500",
        "payments calls per second each merchant may make on this replica (health checks "
        "never count); `off` disables the merchant limit",
        limit=Limit(
            "calls per merchant",
            "the call is refused before any work; the RetryInfo says when a token is back",
            ("payments_rate_limited_total",),
            reason="RATE_LIMITED",
        ),
    )
    rate_limit_burst: int = setting(
        "PAYMENTS_RATE_LIMIT_BURST",
        positive,
        "1000",
        "calls a merchant may make at once above its rate (the bucket's size)",
    )
    order_attempts_per_minute: int | None = setting(
        "PAYMENTS_ORDER_ATTEMPTS_PER_MINUTE",
        or_off(positive),
        "10",
        "new payments (new idempotency keys) per merchant and `order_id` in a sliding minute "
        "on this replica; replays never count; `off` disables",
        limit=Limit(
            "new payments per order",
            "the new key is refused and nothing is stored; a replay is never refused for it",
            ("payments_rate_limited_total",),
            reason="RATE_LIMITED",
        ),
    )
    order_windows_max: int = setting(
        "PAYMENTS_ORDER_WINDOWS_MAX",
        positive,
        "50000",
        "orders whose last minute the per-order limit tracks",
        limit=Limit(
            "orders tracked by the per-order limit",
            "nothing for the client: the least recently used order's window is forgotten",
            (
                "payments_rate_limit_order_windows",
                "payments_rate_limit_order_windows_evicted_total",
            ),
        ),
    )
    auth_failures_per_minute: int | None = setting(
        "PAYMENTS_AUTH_FAILURES_PER_MINUTE",
        or_off(positive),
        "60",
        "failed authentications a peer address may make per minute (also the burst); `off` "
        "disables",
        limit=Limit(
            "failed authentications per peer address",
            "UNAUTHENTICATED at once, the key not looked at, until the address's bucket "
            "refills; one access line in 100",
            ("payments_auth_throttled_total",),
        ),
    )
    auth_peers_max: int = setting(
        "PAYMENTS_AUTH_PEERS_MAX",
        positive,
        "10000",
        "peer addresses whose failed authentications are tracked",
        limit=Limit(
            "peer addresses tracked for failed authentications",
            "nothing for the client: the least recently used address is forgotten",
            ("payments_auth_failure_peers", "payments_auth_failure_peers_evicted_total"),
        ),
    )
    max_concurrent_streams: int | None = setting(
        "PAYMENTS_MAX_CONCURRENT_STREAMS",
        positive,
        None,
        "HTTP/2 streams (calls) one connection may have open; unset: "
        "`PAYMENTS_MAX_CONCURRENT_RPCS` + 100, so even a single connection meets the "
        "concurrency limit (RESOURCE_EXHAUSTED with RetryInfo) before this one",
        limit=Limit(
            "concurrent calls per connection",
            "not an error: the client's channel holds further calls until one of its calls "
            "ends (set it above `PAYMENTS_MAX_CONCURRENT_RPCS`, or one connection never sees "
            "RESOURCE_EXHAUSTED)",
        ),
    )
    max_request_bytes: int = setting(
        "PAYMENTS_MAX_REQUEST_BYTES",
        whole(1024),
        "65536",
        "largest request message (gRPC) or JSON body (HTTP) accepted (the largest valid "
        "RequestPayment is ~15 KiB)",
        limit=Limit(
            "request message size",
            "gRPC: RESOURCE_EXHAUSTED `Received message larger than max` from grpc-core, before "
            "any interceptor: no request id, no details. HTTP: 413 with a google.rpc.Status "
            "(RESOURCE_EXHAUSTED) and a request id; nothing was done",
        ),
    )
    max_metadata_bytes: int = setting(
        "PAYMENTS_MAX_METADATA_BYTES",
        whole(1024),
        "8192",
        "request metadata (headers) size grpc-core accepts (its soft limit; the hard limit is "
        "twice it)",
        limit=Limit(
            "request metadata size",
            "between the soft and the hard limit grpc-core refuses some calls, past the hard "
            "limit every call, with RESOURCE_EXHAUSTED before any interceptor",
        ),
    )
    http_max_header_bytes: int = setting(
        "PAYMENTS_HTTP_MAX_HEADER_BYTES",
        whole(1024, 65536),
        "8190",
        "JSON/HTTP: the longest request line and header field accepted (bytes)",
        limit=Limit(
            "HTTP request line and header size",
            "400 from the HTTP parser before any handler (no request id, no JSON body); the "
            "body's own limit is `PAYMENTS_MAX_REQUEST_BYTES` (413 with a google.rpc.Status)",
            ("payments_http_requests_malformed_total",),
        ),
    )
    max_connection_idle_seconds: float = setting(
        "PAYMENTS_MAX_CONNECTION_IDLE_SECONDS",
        positive_seconds,
        "300",
        "a connection without calls for this long gets GOAWAY",
        limit=Limit(
            "connection idle time",
            "GOAWAY; the channel reconnects on its next call (no call fails)",
        ),
    )
    max_connection_age_seconds: float = setting(
        "PAYMENTS_MAX_CONNECTION_AGE_SECONDS",
        positive_seconds,
        "300",
        "every connection gets GOAWAY after this age (+/-10 % jitter), so clients re-resolve "
        "DNS and new replicas get traffic",
        limit=Limit("connection age", "GOAWAY; new calls go on a new connection (no call fails)"),
    )
    max_connection_age_grace_seconds: float = setting(
        "PAYMENTS_MAX_CONNECTION_AGE_GRACE_SECONDS",
        positive_seconds,
        "30",
        "calls still open this long after the age GOAWAY are cancelled (this frees calls "
        "whose client never sends)",
        limit=Limit(
            "connection age grace",
            "calls still open are cancelled: the client sees UNAVAILABLE `max connection age`",
        ),
    )
    keepalive_time_seconds: float = setting(
        "PAYMENTS_KEEPALIVE_TIME_SECONDS",
        positive_seconds,
        "60",
        "the server pings a connection idle this long",
    )
    keepalive_timeout_seconds: float = setting(
        "PAYMENTS_KEEPALIVE_TIMEOUT_SECONDS",
        positive_seconds,
        "20",
        "a connection whose ping is not acknowledged this long is closed",
        limit=Limit(
            "keepalive ack",
            "a dead peer's connection is closed and its calls cancelled",
        ),
    )
    min_client_ping_interval_seconds: float = setting(
        "PAYMENTS_MIN_CLIENT_PING_INTERVAL_SECONDS",
        positive_seconds,
        "10",
        "clients may ping this often, with or without calls",
        limit=Limit(
            "client keepalive pings",
            "a client pinging more often gets GOAWAY `too_many_pings`",
        ),
    )
    shutdown_drain_seconds: float = setting(
        "PAYMENTS_SHUTDOWN_DRAIN_SECONDS",
        seconds,
        "2",
        "on SIGTERM/SIGINT health goes NOT_SERVING at once and calls are still served this "
        "long, so balancers move away",
    )
    shutdown_grace_seconds: float = setting(
        "PAYMENTS_SHUTDOWN_GRACE_SECONDS",
        seconds,
        "10",
        "after the drain, how long in-flight calls and settlements get; the process exits "
        "within drain + grace + 2 s",
        limit=Limit(
            "shutdown grace",
            "after the drain new calls are refused; calls still running past the grace are "
            "cancelled (CANCELLED)",
            ("grpc_server_handled_total",),
            reason="SHUTTING_DOWN",
        ),
    )
    metrics_max_connections: int = setting(
        "PAYMENTS_METRICS_MAX_CONNECTIONS",
        whole(1, 64),
        "4",
        "`/metrics` connections served at once; more are closed at once",
        limit=Limit(
            "metrics HTTP connections",
            "a scraper arriving while all are busy is closed at once (it retries)",
            ("payments_metrics_http_refused_total",),
        ),
    )
    metrics_read_timeout_seconds: float = setting(
        "PAYMENTS_METRICS_READ_TIMEOUT_SECONDS",
        positive_seconds,
        "5",
        "a `/metrics` request not fully read within this is closed",
    )
    api_keys_file: str | None = setting(
        "PAYMENTS_API_KEYS_FILE",
        text,
        None,
        "the API keys file (docs/security.md); unset: authentication off; re-read on SIGHUP",
    )
    tls_cert_file: str | None = setting(
        "PAYMENTS_TLS_CERT_FILE",
        text,
        None,
        "PEM server certificate (chain); with the key, the gRPC port serves TLS",
    )
    tls_key_file: str | None = setting(
        "PAYMENTS_TLS_KEY_FILE", text, None, "PEM private key of that certificate (unencrypted)"
    )
    tls_client_ca_file: str | None = setting(
        "PAYMENTS_TLS_CLIENT_CA_FILE",
        text,
        None,
        "PEM CA certificate(s); when set, clients must present a certificate it signed (mTLS)",
    )
    sdk_disabled: bool = setting(
        "OTEL_SDK_DISABLED", otel_boolean, "false", "`true` turns tracing off (no spans at all)"
    )
    otlp_endpoint: str | None = setting(
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
        text,
        None,
        "where spans are exported (OTLP/gRPC); unset: not exported. The SDK reads the other "
        "`OTEL_*` variables itself",
    )
    span_export_batch_size: int = setting(
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        positive,
        "128",
        "spans per OTLP export (the SDK's own default is 512)",
    )
    span_export_queue_size: int = setting(
        "OTEL_BSP_MAX_QUEUE_SIZE",
        positive,
        "2048",
        "finished spans waiting for the OTLP export (the SDK's default)",
        limit=Limit(
            "spans waiting for export",
            "nothing for the client: spans past it are dropped (the collector is too slow or "
            "unreachable)",
            ("payments_spans_dropped_total",),
        ),
    )
    span_attribute_value_limit: int = setting(
        ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"),
        positive,
        "256",
        "span attribute values are cut to this many characters",
        limit=Limit(
            "span attribute value length",
            "nothing for the client: longer values (a 6 KB `user-agent`) are cut in the span",
        ),
    )

    @property
    def tracing(self) -> bool:
        return not self.sdk_disabled

    @property
    def otlp_export(self) -> bool:
        return self.otlp_endpoint is not None

    @property
    def settlement_lease_seconds(self) -> float:
        """How long a payment's settlement belongs to the process that started it: one attempt
        (processor deadline + settlement timeout) plus a margin. After that, a durable store's
        recovery may take the payment over (its owner died)."""
        return self.processor_timeout_seconds + self.settlement_timeout_seconds + 5.0

    def _checked(self) -> Settings:
        """The checks that span variables: TLS files come in pairs, an export batch fits the
        export queue, and the store password is read from its file or `PGPASSWORD` when the URL
        has none."""
        if self.tls_cert_file is not None and self.tls_key_file is None:
            raise ConfigError(
                f"invalid {env_name('tls_key_file')}='': required with the certificate"
            )
        if self.tls_key_file is not None and self.tls_cert_file is None:
            raise ConfigError(f"invalid {env_name('tls_cert_file')}='': required with the key")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ConfigError(
                f"invalid {env_name('tls_client_ca_file')}={self.tls_client_ca_file!r}: client "
                f"certificates need TLS: set {env_name('tls_cert_file')} and "
                f"{env_name('tls_key_file')}"
            )
        if self.span_export_batch_size > self.span_export_queue_size:
            raise ConfigError(
                f"invalid {env_name('span_export_batch_size')}={self.span_export_batch_size}: "
                f"larger than {env_name('span_export_queue_size')}={self.span_export_queue_size}"
            )
        store = self.store
        if store.kind != "postgresql" or store.password is not None:
            return self
        if self.store_password_file is not None:
            name = env_name("store_password_file")
            password = _read_secret_file(name, self.store_password_file)
            return dataclasses.replace(self, store=store.with_password(password))
        if self.store_pgpassword is not None:
            return dataclasses.replace(self, store=store.with_password(self.store_pgpassword))
        return self


@dataclass(frozen=True, slots=True)
class ProbeSettings(EnvSettings):
    """What `payments-healthcheck` reads besides the server's own settings."""

    target: str | None = setting(
        "PAYMENTS_HEALTHCHECK_TARGET",
        address,
        None,
        "where `payments-healthcheck` asks; unset: 127.0.0.1 and the port of "
        "`PAYMENTS_GRPC_ADDRESS`",
    )
    ca_file: str | None = setting(
        "PAYMENTS_HEALTHCHECK_CA_FILE",
        text,
        None,
        "the CA that signed the server certificate: turns TLS on for the probe (required when "
        "`PAYMENTS_TLS_CERT_FILE` is set)",
    )
    cert_file: str | None = setting(
        "PAYMENTS_HEALTHCHECK_CERT_FILE",
        text,
        None,
        "under mutual TLS, the probe's client certificate",
    )
    key_file: str | None = setting("PAYMENTS_HEALTHCHECK_KEY_FILE", text, None, "its private key")
    server_name: str | None = setting(
        "PAYMENTS_HEALTHCHECK_SERVER_NAME",
        text,
        None,
        "the name the probe verifies in the server certificate, when it does not list 127.0.0.1",
    )
    timeout_seconds: float = setting(
        "PAYMENTS_HEALTHCHECK_TIMEOUT_SECONDS",
        positive_seconds,
        "3",
        "how long the probe waits for an answer",
    )


SETTINGS_CLASSES: tuple[type[EnvSettings], ...] = (Settings, ProbeSettings)


def variable(settings_class: type[EnvSettings], field_name: str) -> Variable:
    """The declaration of one field (its variable name, default, meaning...)."""
    return dict(settings_class.variables())[field_name]


def all_variables() -> Iterator[Variable]:
    """Every variable any command of this package reads, in declaration order."""
    for settings_class in SETTINGS_CLASSES:
        for _, declared in settings_class.variables():
            yield declared


def env_name(field_name: str, settings_class: type[EnvSettings] = Settings) -> str:
    """The environment variable behind one field, e.g. `PAYMENTS_TLS_KEY_FILE`."""
    return variable(settings_class, field_name).name


def cannot_listen(field_name: str, address: str, reason: str) -> ConfigError:
    """The one line a listener's address that cannot be bound exits with."""
    return ConfigError(
        f"invalid {env_name(field_name)}={address!r}: cannot listen there ({reason})"
    )


def _read_secret_file(name: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"invalid {name}={path!r}: cannot read it ({detail})") from None
