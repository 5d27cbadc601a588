"""Where payments are stored: `PAYMENTS_STORE_URL` parsed into a `StoreLocation`.

The URL forms are SQLAlchemy's: `memory://`, `sqlite:///relative.db`, `sqlite:////absolute.db`,
`postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?PARAM=VALUE…]` (also `postgres://`). A
parse error never quotes the URL: it may hold a password.

What may be logged is `StoreLocation.redacted`: no password and no query string at all (a
libpq parameter such as `sslpassword` is as secret as the password, and a list of secret
names would always be one name short). A driver's error text may still quote a parameter, so
`redact` also removes the values of the parameters that hold a secret or name the files that
do (`SECRET_PARAMS`) from any text before it is logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")
# libpq parameters whose value is a secret (`sslpassword`) or the path of a file that holds one
# (a path is kept out of messages too).
SECRET_PARAMS = frozenset(
    {"sslpassword", "sslkey", "sslcert", "sslrootcert", "sslcrl", "sslcrldir", "passfile"}
)
_EXPECTED = "expected memory://, sqlite:///PATH or postgresql://USER@HOST:PORT/DBNAME"


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """A parsed store URL. `kind` is memory, sqlite or postgresql. The password is kept out of
    `repr` and out of `redacted`; only `password` holds it, for the driver."""

    kind: str = "memory"
    path: str = ""  # sqlite: the database file
    host: str = ""
    port: int | None = None
    user: str = ""
    database: str = ""
    params: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # for the driver
    password: str | None = field(default=None, repr=False)

    @property
    def redacted(self) -> str:
        """The URL without password or query string: safe for logs and error messages."""
        if self.kind == "memory":
            return "memory://"
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        return self._url("***" if self.password is not None else None, "…" if self.params else "")

    @property
    def dsn(self) -> str:
        """The PostgreSQL DSN for the driver: parameters included, password excluded (the
        driver gets that separately). Never log it."""
        return self._url(None, urlencode(self.params))

    def _url(self, password: str | None, query: str) -> str:
        """`postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?QUERY]`, user and database quoted;
        `password` and `query` are written as given, each left out when None or empty."""
        user = quote(self.user, safe="")
        auth = f"{user}:{password}@" if password is not None else (f"{user}@" if user else "")
        query = f"?{query}" if query else ""
        return f"postgresql://{auth}{self._host_port}/{quote(self.database, safe='')}{query}"

    @property
    def _host_port(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host + (f":{self.port}" if self.port is not None else "")

    def with_password(self, password: str) -> StoreLocation:
        return replace(self, password=password)

    def secrets(self) -> tuple[str, ...]:
        """The values in this location that must never be shown: the password, and the
        parameters that hold one (`SECRET_PARAMS`)."""
        values = [value for key, value in self.params if key in SECRET_PARAMS and value]
        if self.password:
            values.append(self.password)
        return tuple(values)


def parse_store_url(raw: str) -> StoreLocation:
    """The location a store URL names; ValueError (never quoting the URL) when it is not one."""
    scheme, sep, rest = raw.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError(_EXPECTED)
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
    raise ValueError(f"unknown scheme; {_EXPECTED}")


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


def redact(text: str, location: StoreLocation) -> str:
    """`text` with every secret of `location` (however it was quoted) replaced by ***."""
    for secret in location.secrets():
        for form in {secret, quote(secret, safe="")}:
            text = text.replace(form, "***")
    return text
