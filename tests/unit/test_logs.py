"""Logging set-up: one JSON object per line, library logs through the same pipeline."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from payments_service.config import Settings
from payments_service.observability.logs import configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_json_lines_carry_timestamp_level_event_and_bound_context() -> None:
    out = io.StringIO()
    writer = configure_logging(Settings(), stream=out, cache_loggers=False)
    structlog.contextvars.bind_contextvars(request_id="r-1")
    structlog.get_logger("t").info("payment_created", payment_id="pay_1")
    structlog.get_logger("t").debug("hidden_below_level")
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
