"""Store failures: each driver's errors become the port's store errors in one place
(`adapters.stores.errors`), the store decorator counts them by kind and hands an unreachable
store to its health check, and the health check pings only after such a failure, with backoff,
changing readiness once per outage."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import asyncpg.exceptions
import pytest
from asyncpg.exceptions import _base as asyncpg_base
from structlog.testing import capture_logs

from payments_service.adapters.simulated_processor import SimulatedProcessor
from payments_service.adapters.stores.backoff import Backoff
from payments_service.adapters.stores.errors import (
    TRANSLATIONS,
    cause_of,
    postgres_connect_error,
    postgres_error,
    sqlite_error,
)
from payments_service.adapters.stores.health import RECHECK_SECONDS, StoreHealth
from payments_service.adapters.stores.memory import InMemoryPaymentRepository
from payments_service.adapters.stores.observed import ObservedRepository
from payments_service.application.recovery import SettlementRecovery
from payments_service.domain.errors import (
    STORE_ERROR_KINDS,
    PaymentNotFoundError,
    StoreError,
    StoreFullError,
    StoreReadOnlyError,
    StoreUnavailableError,
)
from payments_service.domain.model import Payment
from payments_service.transport.error_table import rule_for
from tests.conftest import CapturedLogs
from tests.fakes import FakeClock

UNCHANGED = None  # the driver's error passes through: INTERNAL

POSTGRES_CASES: list[tuple[BaseException, type[StoreError] | None]] = [
    (ConnectionRefusedError(111, "Connect call failed"), StoreUnavailableError),
    (ConnectionResetError(104, "Connection reset by peer"), StoreUnavailableError),
    (TimeoutError(), StoreUnavailableError),
    (asyncpg.ConnectionDoesNotExistError("closed in the middle"), StoreUnavailableError),
    (
        asyncpg.InterfaceError("cannot perform operation: connection is closed"),
        StoreUnavailableError,
    ),
    (asyncpg.exceptions.AdminShutdownError("terminating connection"), StoreUnavailableError),
    (asyncpg.exceptions.CrashShutdownError("crash"), StoreUnavailableError),
    (asyncpg.exceptions.CannotConnectNowError("starting up"), StoreUnavailableError),
    (asyncpg.exceptions.TooManyConnectionsError("too many clients"), StoreUnavailableError),
    (asyncpg.exceptions.DiskFullError("could not extend file"), StoreFullError),
    (asyncpg.exceptions.OutOfMemoryError("out of memory"), StoreFullError),
    (asyncpg.exceptions.ReadOnlySQLTransactionError("read-only transaction"), StoreReadOnlyError),
    (asyncpg.exceptions.InsufficientPrivilegeError("permission denied"), StoreReadOnlyError),
    (
        asyncpg_base.InternalClientError("cannot switch to state 12; another operation (2) is in"),
        StoreUnavailableError,
    ),
    (asyncpg_base.ProtocolError("unexpected message"), StoreUnavailableError),
    (asyncpg.exceptions.UniqueViolationError("duplicate key"), UNCHANGED),
    (asyncpg.exceptions.PostgresSyntaxError("syntax error at or near"), UNCHANGED),
    (asyncpg_base.DataError("invalid input for query argument $1"), UNCHANGED),  # a bug
    (RuntimeError("claim kept racing"), UNCHANGED),
]


@pytest.mark.parametrize(("error", "expected"), POSTGRES_CASES, ids=lambda c: type(c).__name__)
def test_postgresql_failures_become_store_errors(
    error: BaseException, expected: type[StoreError] | None
) -> None:
    translated = postgres_error(error)
    if expected is None:
        assert translated is error
    else:
        assert type(translated) is expected
        assert "connection" not in str(translated).lower() or expected is StoreUnavailableError


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.InvalidPasswordError("password authentication failed"),
        asyncpg.exceptions.ObjectNotInPrerequisiteStateError("not accepting connections"),
        asyncpg.exceptions.InvalidCatalogNameError("database does not exist"),
        OSError("Name or service not known"),
    ],
    ids=lambda c: type(c).__name__,
)
def test_any_failure_to_open_a_connection_is_unavailable(error: BaseException) -> None:
    assert type(postgres_connect_error(error)) is StoreUnavailableError


def test_a_cancellation_stays_one() -> None:
    cancelled = asyncio.CancelledError()
    assert postgres_connect_error(cancelled) is cancelled
    assert postgres_error(cancelled) is cancelled


def sqlite_failure(code: int, message: str = "driver text") -> sqlite3.OperationalError:
    """sqlite3's own exception type with the code it carries when the library raises it."""
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


SQLITE_CASES: list[tuple[int, type[StoreError] | None]] = [
    (sqlite3.SQLITE_BUSY, StoreUnavailableError),
    (sqlite3.SQLITE_BUSY_SNAPSHOT, StoreUnavailableError),  # an extended code: its primary
    (sqlite3.SQLITE_LOCKED, StoreUnavailableError),
    (sqlite3.SQLITE_CANTOPEN, StoreUnavailableError),
    (sqlite3.SQLITE_FULL, StoreFullError),
    (sqlite3.SQLITE_NOMEM, StoreFullError),
    (sqlite3.SQLITE_READONLY, StoreReadOnlyError),
    (sqlite3.SQLITE_READONLY_DBMOVED, StoreReadOnlyError),
    (sqlite3.SQLITE_PERM, StoreReadOnlyError),
    (sqlite3.SQLITE_IOERR_WRITE, StoreUnavailableError),  # every file writable: a failing disk
    (sqlite3.SQLITE_CORRUPT, UNCHANGED),
    (sqlite3.SQLITE_CONSTRAINT_UNIQUE, UNCHANGED),
]


@pytest.mark.parametrize(("code", "expected"), SQLITE_CASES)
def test_sqlite_failures_become_store_errors(
    tmp_path: Path, code: int, expected: type[StoreError] | None
) -> None:
    path = tmp_path / "payments.db"
    path.touch()
    error = sqlite_failure(code)
    translated = sqlite_error(error, str(path))
    if expected is None:
        assert translated is error
    else:
        assert type(translated) is expected
        assert str(tmp_path) not in str(translated)


def test_a_disk_io_error_on_a_file_that_cannot_be_written_is_read_only(tmp_path: Path) -> None:
    path = tmp_path / "payments.db"
    path.touch()
    wal = tmp_path / "payments.db-wal"
    wal.touch()
    wal.chmod(0o444)
    if os.access(wal, os.W_OK):
        pytest.skip("this process may write a read-only file (root): the chattr test covers it")
    error = sqlite_failure(sqlite3.SQLITE_IOERR_WRITE)
    assert type(sqlite_error(error, str(path))) is StoreReadOnlyError


def test_an_error_of_the_sqlite3_module_itself_stays_what_it_is(tmp_path: Path) -> None:
    closed = sqlite3.ProgrammingError("Cannot operate on a closed database.")  # no library code
    assert sqlite_error(closed, str(tmp_path / "payments.db")) is closed


def test_real_sqlite_errors_are_classified(tmp_path: Path) -> None:
    path = tmp_path / "payments.db"
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    holder = sqlite3.connect(path, isolation_level=None)
    writer = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as read_only:
            reader.execute("INSERT INTO t VALUES (1)")
        assert type(sqlite_error(read_only.value, str(path))) is StoreReadOnlyError
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as busy:
            writer.execute("BEGIN IMMEDIATE")
        assert type(sqlite_error(busy.value, str(path))) is StoreUnavailableError
        holder.execute("ROLLBACK")
        writer.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(sqlite3.IntegrityError) as constraint:
            writer.execute("INSERT INTO t VALUES (1)")
        assert sqlite_error(constraint.value, str(path)) is constraint.value  # a bug: INTERNAL
    finally:
        for db in (reader, holder, writer):
            db.close()
    missing = str(tmp_path / "no-such-dir" / "payments.db")
    with pytest.raises(sqlite3.OperationalError) as cannot_open:
        sqlite3.connect(missing).execute("SELECT 1")
    assert type(sqlite_error(cannot_open.value, missing)) is StoreUnavailableError


def test_every_translation_ends_in_a_row_of_the_error_table() -> None:
    for translation in TRANSLATIONS:
        assert rule_for(translation.error) is not None, translation


def test_a_log_line_names_the_drivers_error_never_its_message() -> None:
    error = StoreUnavailableError()
    error.__cause__ = asyncpg.exceptions.AdminShutdownError("SELECT secret FROM t, dsn=...")
    assert cause_of(error) == "AdminShutdownError 57P01"
    assert cause_of(sqlite_failure(sqlite3.SQLITE_FULL)) == "OperationalError"
    assert cause_of(TimeoutError()) == "TimeoutError"


# The decorator: failures counted by kind, an unreachable store handed to the health check.


class FailingStore(InMemoryPaymentRepository):
    def __init__(self) -> None:
        super().__init__(ttl=timedelta(hours=1), clock=FakeClock())
        self.failure: Exception | None = None

    async def get(self, merchant_id: str, payment_id: str) -> Payment | None:
        if self.failure is not None:
            raise self.failure
        return await super().get(merchant_id, payment_id)


async def test_the_decorator_counts_failures_by_kind_and_reports_unreachability() -> None:
    inner = FailingStore()
    suspected: list[BaseException] = []
    observed = ObservedRepository(
        inner, system="sqlite", tracer_provider=None, on_unavailable=suspected.append
    )
    failures: list[Exception] = [
        StoreUnavailableError(),
        StoreUnavailableError(),
        StoreFullError(),
        StoreReadOnlyError(),
        RuntimeError("a bug"),
        PaymentNotFoundError("pay_1"),  # an answer, not a failure of the store
    ]
    for failure in failures:
        inner.failure = failure
        with pytest.raises(type(failure)):
            await observed.get("default", "pay_1")
    assert observed.errors == {"unavailable": 2, "full": 1, "readonly": 1, "other": 1}
    assert list(observed.errors) == list(STORE_ERROR_KINDS)
    assert suspected == failures[:2]


# The health check.


class Ping:
    """A store's ping whose answers the test scripts: True answers, False fails, None hangs."""

    def __init__(self, *answers: bool | None, clock: Monotonic | None = None) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.clock = clock  # advanced a second by each ping, when given

    async def __call__(self) -> None:
        self.calls += 1
        if self.clock is not None:
            self.clock.now += 1.0
        answer = self.answers.pop(0) if self.answers else True
        if answer is None:
            await asyncio.Event().wait()
        if answer is False:
            raise StoreUnavailableError


class Monotonic:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class Changes(list[bool]):
    """What `on_change` was told, in order; `changed` is set at each."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()


@pytest.fixture
def changes() -> Changes:
    return Changes()


def health(ping: Ping, changes: Changes, clock: Monotonic | None = None) -> StoreHealth:
    async def on_change(reachable: bool) -> None:
        changes.append(reachable)
        changes.changed.set()

    return StoreHealth(
        ping,
        on_change=on_change,
        timeout=0.05,
        backoff=Backoff(first=0.001, maximum=0.004, random=lambda: 1.0),
        monotonic=clock or Monotonic(),
    )


async def test_a_failure_whose_ping_answers_changes_nothing(
    changes: Changes, captured_logs: CapturedLogs
) -> None:
    ping = Ping(True)
    checker = health(ping, changes)
    checker.suspect(StoreUnavailableError())
    await checker.checked()
    assert (ping.calls, changes, checker.reachable) == (1, [], True)
    assert not captured_logs.lines("store_unreachable")


async def test_an_outage_turns_readiness_off_once_and_back_on_once(
    changes: Changes, captured_logs: CapturedLogs
) -> None:
    clock = Monotonic()
    ping = Ping(False, False, None, False, True, clock=clock)  # down, down, hung, down, back
    checker = health(ping, changes, clock)
    checker.suspect(StoreUnavailableError())
    for _ in range(20):  # failures during the outage start no other ping
        checker.suspect(StoreUnavailableError())
    await checker.checked()
    assert (ping.calls, changes, checker.reachable) == (5, [False, True], True)
    (down,) = captured_logs.lines("store_unreachable")
    (up,) = captured_logs.lines("store_reachable")
    assert (down["level"], down["cause"], down["ping"]) == (
        "error",
        "StoreUnavailableError",
        "StoreUnavailableError",
    )
    assert up["level"] == "info"
    assert up["unreachable_seconds"] == 4.0  # from the first failed ping to the good one


async def test_failures_soon_after_a_good_ping_are_only_counted(changes: Changes) -> None:
    clock = Monotonic()
    ping = Ping()
    checker = health(ping, changes, clock)
    checker.suspect(StoreUnavailableError())
    await checker.checked()
    clock.now += RECHECK_SECONDS - 0.01
    checker.suspect(StoreUnavailableError())
    assert not checker.checking
    clock.now += 0.01
    checker.suspect(StoreUnavailableError())
    await checker.checked()
    assert ping.calls == 2


async def test_close_stops_the_pings_for_good(changes: Changes) -> None:
    ping = Ping(*([False] * 10_000))
    checker = health(ping, changes)
    checker.suspect(StoreUnavailableError())
    await changes.changed.wait()  # unreachable, and pinging with backoff
    await checker.close()
    calls = ping.calls
    checker.suspect(StoreUnavailableError())
    assert not checker.checking
    assert ping.calls == calls
    assert changes == [False]


def test_the_backoff_doubles_to_its_maximum_with_jitter_and_resets() -> None:
    draws: Iterator[float] = iter([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    backoff = Backoff(first=0.1, maximum=0.5, random=lambda: next(draws))
    delays = [round(backoff.next_delay(), 3) for _ in range(5)]
    assert delays == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert round(backoff.next_delay(), 3) == 0.1
    assert round(backoff.next_delay(), 3) == 0.1  # jitter 0: half of 0.2
    assert round(backoff.next_delay(), 3) == 0.4


class UnreachableStalled:
    """Crash recovery's source in an outage."""

    def __init__(self) -> None:
        self.calls = 0
        self.thrice = asyncio.Event()

    async def take_stalled(self, *, limit: int) -> list[Payment]:
        self.calls += 1
        if self.calls == 3:
            self.thrice.set()
        raise StoreUnavailableError

    async def oldest_pending(self) -> datetime | None:
        raise StoreUnavailableError


async def test_crash_recovery_during_an_outage_logs_no_stack_per_round() -> None:
    stalled = UnreachableStalled()
    recovery = SettlementRecovery(
        stalled=stalled,
        repository=InMemoryPaymentRepository(ttl=timedelta(hours=1), clock=FakeClock()),
        processor=SimulatedProcessor(),
        clock=FakeClock(),
        deadline=timedelta(minutes=10),
        charge_timeout=1.0,
    )
    with capture_logs() as logs:
        running = asyncio.ensure_future(recovery.run(0.001))
        try:
            await stalled.thrice.wait()
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    assert {(line["event"], line["log_level"]) for line in logs} == {
        ("settlement_recovery_skipped", "debug")
    }
