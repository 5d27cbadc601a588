"""How each store driver's failures become the repository port's store errors.

The one place that knows the drivers' failures. Each store adapter passes every exception of an
operation through its driver's function here (`postgres_error`, `postgres_connect_error`,
`sqlite_error`) and raises what comes back. What becomes what is `TRANSLATIONS` below (rendered
into docs/store-outages.md by `make docs`). Anything else (a constraint violation, a syntax
error, a corrupt file) is returned unchanged: the error table answers it INTERNAL and logs it
once with its traceback, because it is a bug or needs a person.

The store errors carry fixed messages, never the driver's text, which may quote SQL, a file
path or a value. The driver's exception stays the `__cause__` (for a traceback), and `cause_of`
names it for a log line without its message.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass

import asyncpg
from asyncpg.exceptions import _base as asyncpg_base

from payments_service.domain.errors import (
    StoreError,
    StoreFullError,
    StoreReadOnlyError,
    StoreUnavailableError,
)


@dataclass(frozen=True, slots=True)
class Translation:
    """One driver failure and the store error it becomes."""

    store: str  # PostgreSQL or SQLite
    failure: str  # as the docs show it
    error: type[StoreError]


# SQLSTATE -> (the store error, what it is). asyncpg raises one class per SQLSTATE.
POSTGRES_STATES: dict[str, tuple[type[StoreError], str]] = {
    "57P01": (StoreUnavailableError, "admin_shutdown: the server stops, or pg_terminate_backend"),
    "57P02": (StoreUnavailableError, "crash_shutdown"),
    "57P03": (StoreUnavailableError, "cannot_connect_now: the server is starting or stopping"),
    "53300": (StoreUnavailableError, "too_many_connections"),
    "53000": (StoreFullError, "insufficient_resources"),
    "53100": (StoreFullError, "disk_full"),
    "53200": (StoreFullError, "out_of_memory"),
    "25006": (StoreReadOnlyError, "read_only_sql_transaction: a standby, or read-only by default"),
    "42501": (StoreReadOnlyError, "insufficient_privilege: permission denied"),
}
# A SQLite primary result code (the low byte of an extended one) -> (the store error, its name,
# what it is).
SQLITE_CODES: dict[int, tuple[type[StoreError], str, str]] = {
    sqlite3.SQLITE_BUSY: (StoreUnavailableError, "SQLITE_BUSY", "locked past the busy timeout"),
    sqlite3.SQLITE_LOCKED: (StoreUnavailableError, "SQLITE_LOCKED", ""),
    sqlite3.SQLITE_CANTOPEN: (
        StoreUnavailableError,
        "SQLITE_CANTOPEN",
        "the file cannot be opened",
    ),
    sqlite3.SQLITE_FULL: (StoreFullError, "SQLITE_FULL", "the file system is full"),
    sqlite3.SQLITE_NOMEM: (StoreFullError, "SQLITE_NOMEM", ""),
    sqlite3.SQLITE_READONLY: (StoreReadOnlyError, "SQLITE_READONLY", ""),
    sqlite3.SQLITE_PERM: (StoreReadOnlyError, "SQLITE_PERM", "permission denied"),
    sqlite3.SQLITE_AUTH: (StoreReadOnlyError, "SQLITE_AUTH", ""),
}
SQLITE_FILE_SUFFIXES = ("", "-wal", "-shm")  # the database and the files WAL mode keeps beside it

TRANSLATIONS: tuple[Translation, ...] = (
    Translation(
        "PostgreSQL",
        "a connection refused, reset, timed out or lost (`OSError`, asyncpg's connection "
        'errors, SQLSTATE class 08, "connection is closed")',
        StoreUnavailableError,
    ),
    Translation(
        "PostgreSQL",
        "asyncpg's `InternalClientError` (\"cannot switch to state …; another operation is in "
        'progress"): a pooled connection whose session the server ended while it was idle, '
        "lent before the client noticed",
        StoreUnavailableError,
    ),
    Translation(
        "PostgreSQL",
        "opening a connection fails for any reason (also a rejected password, or a database "
        "with `ALLOW_CONNECTIONS false`), or none comes free within "
        "`PAYMENTS_STORE_TIMEOUT_SECONDS`",
        StoreUnavailableError,
    ),
    *(
        Translation("PostgreSQL", f"SQLSTATE `{state}` {what}", error)
        for state, (error, what) in POSTGRES_STATES.items()
    ),
    *(
        Translation("SQLite", f"`{name}` {what}".rstrip(), error)
        for error, name, what in SQLITE_CODES.values()
    ),
    Translation(
        "SQLite",
        "`SQLITE_IOERR` (disk I/O error) while a file of the database cannot be written "
        "(read-only, or `chattr +i` immutable)",
        StoreReadOnlyError,
    ),
    Translation("SQLite", "`SQLITE_IOERR` otherwise", StoreUnavailableError),
)


def postgres_error(error: BaseException) -> BaseException:
    """The store error `error` (raised by asyncpg or the socket under it) means, else `error`."""
    if isinstance(error, (OSError, asyncpg.PostgresConnectionError)):
        return StoreUnavailableError()  # refused, reset, timed out (TimeoutError), lost
    if type(error) is asyncpg.InterfaceError:  # "connection is closed" (its subclasses are bugs)
        return StoreUnavailableError()
    if isinstance(error, asyncpg_base.InternalClientError):
        # The protocol is in a state no operation can start from. The lender lends a connection
        # to one operation at a time, so this is a session the server ended (57P01 arriving on
        # an idle connection), not concurrent use; `_use` drops the connection.
        return StoreUnavailableError()
    if isinstance(error, asyncpg.PostgresError):
        found = POSTGRES_STATES.get(getattr(error, "sqlstate", "") or "")
        if found is not None:
            return found[0]()
    return error


def postgres_connect_error(error: BaseException) -> BaseException:
    """A failure to open (or wait for) a connection: the store cannot be reached, whatever the
    reason, so every Exception is unavailability unless it says more; a cancellation stays
    one."""
    if not isinstance(error, Exception) or isinstance(error, StoreError):
        return error
    found = postgres_error(error)
    return found if isinstance(found, StoreError) else StoreUnavailableError()


def sqlite_error(error: BaseException, path: str) -> BaseException:
    """The store error `error` (raised by sqlite3 on the database at `path`) means, else
    `error`. A disk I/O error is read-only when a file of the database cannot be written (an
    immutable file fails writes with "disk I/O error"), else unavailable."""
    code = getattr(error, "sqlite_errorcode", None) if isinstance(error, sqlite3.Error) else None
    if code is None:
        return error
    primary = code & 0xFF
    if primary == sqlite3.SQLITE_IOERR:
        files = [path + suffix for suffix in SQLITE_FILE_SUFFIXES]
        unwritable = any(os.path.exists(f) and not os.access(f, os.W_OK) for f in files)
        return StoreReadOnlyError() if unwritable else StoreUnavailableError()
    found = SQLITE_CODES.get(primary)
    return error if found is None else found[0]()


def cause_of(error: BaseException) -> str:
    """What a log line may say about a store failure: the driver's exception type (and its
    SQLSTATE or SQLite code name), never its message."""
    cause = error.__cause__ if isinstance(error, StoreError) and error.__cause__ else error
    name = type(cause).__name__
    code = getattr(cause, "sqlstate", None) or getattr(cause, "sqlite_errorname", None)
    return f"{name} {code}" if code else name
