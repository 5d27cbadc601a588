"""Logging set-up: one JSON object per line, library logs through the same pipeline."""

from __future__ import annotations

import contextvars
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog

from payments_service.config import Settings
from payments_service.observability.logs import UtcTimestamp, configure_logging
from payments_service.observability.record import CallRecord, MethodInfo, enter_call


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_json_lines_carry_timestamp_level_event_and_the_call_context() -> None:
    out = io.StringIO()
    writer = configure_logging(Settings(), stream=out, cache_loggers=False)

    def inside_a_call() -> None:
        enter_call(CallRecord(MethodInfo.parse("/s/M"), 0.0, request_id="r-1"))
        structlog.get_logger("t").info("payment_created", payment_id="pay_1")
        structlog.get_logger("t").debug("hidden_below_level")

    contextvars.copy_context().run(inside_a_call)
    logging.getLogger("grpc._server").warning("library says %s", "hi")
    assert writer.flush(5)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["payment_created", "library says hi"]
    first, library = lines
    assert first["request_id"] == "r-1"
    assert first["level"] == "info"
    assert first["timestamp"].endswith("Z")
    assert library["logger"] == "grpc._server"
    assert library["level"] == "warning"


def test_exceptions_are_logged_once_as_structured_data() -> None:
    out = io.StringIO()
    writer = configure_logging(Settings(), stream=out, cache_loggers=False)
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger().exception("unhandled_exception")
    assert writer.flush(5)
    (line,) = [json.loads(raw) for raw in out.getvalue().splitlines()]
    assert line["exception"][0]["exc_type"] == "ValueError"


def test_console_format_is_for_humans() -> None:
    out = io.StringIO()
    writer = configure_logging(
        Settings(log_format="console", log_level="debug"), stream=out, cache_loggers=False
    )
    structlog.get_logger().debug("hello", n=1)
    assert writer.flush(5)
    text = out.getvalue()
    assert "hello" in text
    assert not text.lstrip().startswith("{")


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 7, 2, 44, 37, 263821, tzinfo=UTC),
        datetime(2026, 12, 7, 2, 44, 38, 0, tzinfo=UTC),  # isoformat would drop the fraction
        datetime(2027, 1, 1, 0, 0, 0, 999999, tzinfo=UTC),
    ],
)
def test_the_timestamp_is_iso_8601_utc_with_microseconds(moment: datetime) -> None:
    nanos = int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000 + 999
    line = UtcTimestamp(clock=lambda: nanos)(None, "info", {})
    assert line["timestamp"] == moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def test_the_timestamp_follows_the_clock_across_seconds() -> None:
    now = [1_796_000_000_999_999_000]
    stamp = UtcTimestamp(clock=lambda: now[0])
    first = stamp(None, "info", {})["timestamp"]
    now[0] += 1000  # one microsecond later: the next second
    second = stamp(None, "info", {})["timestamp"]
    assert (first[-8:], second[-8:]) == (".999999Z", ".000000Z")
    parsed = [datetime.fromisoformat(t) for t in (first, second)]
    assert (parsed[1] - parsed[0]).total_seconds() == pytest.approx(1e-6)
