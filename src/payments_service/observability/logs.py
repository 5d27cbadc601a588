"""Logs: structlog configuration, a background writer, and the access-log reporter.

`configure_logging` is called once by the entry point, never at import time. Every line, from
structlog or from stdlib loggers (grpc, asyncio, opentelemetry), goes through the same processors
and is handed to a `LogWriter`: the event loop never writes to stdout itself. The writer's
thread writes whatever has queued in one `os.write`; when its bounded queue is full (a stalled
consumer of stdout) or stdout is gone (a closed pipe), records are dropped and counted
(`payments_log_records_dropped_total`) instead of blocking or failing a call.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, TextIO

import orjson
import structlog
from opentelemetry import trace

from payments_service.observability.record import current_call

if TYPE_CHECKING:
    from collections.abc import Callable

    from structlog.typing import EventDict, Processor, WrappedLogger

    from payments_service.config import Settings
    from payments_service.observability.record import CallRecord

ACCESS_EVENT = "rpc_completed"


class LogWriter:
    """Writes log records to a sink (stdout) from a background thread.

    `write` never blocks, never raises and makes no system call: it appends to a bounded queue
    or counts a drop. The thread wakes every `interval` seconds (or at once when asked to
    flush), takes everything queued and writes it in one call; a failed write (EPIPE, EBADF,
    ...) drops that batch and is counted. Waking the thread per record instead (a
    `threading.Event`) cost ~5 % of the server's CPU under load: a lock and a notify per line.
    """

    def __init__(
        self,
        sink: Callable[[bytes], None],
        max_records: int,
        interval: float = 0.01,
    ) -> None:
        self._sink = sink
        self._max = max_records
        self._interval = interval
        self._queue: deque[bytes] = deque()
        self._wake = threading.Event()
        self._writing = False
        self._closing = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def write(self, line: bytes) -> None:
        if len(self._queue) >= self._max or self._closing:
            self.dropped += 1
            return
        self._queue.append(line)

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds until everything queued so far has been written."""
        deadline = time.monotonic() + timeout
        while self._queue or self._writing:
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            time.sleep(0.001)
        return True

    def close(self, timeout: float) -> bool:
        """Flush within `timeout`, then refuse (and count) later records."""
        flushed = self.flush(timeout)
        self._closing = True
        return flushed

    def _run(self) -> None:
        queue = self._queue
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            if not queue:
                continue
            self._writing = True
            batch = []
            while queue:
                batch.append(queue.popleft())
            self._write_all(b"".join(batch), len(batch))
            self._writing = False

    def _write_all(self, data: bytes, records: int) -> None:
        try:
            self._sink(data)
        except Exception:
            self.dropped += records


def fd_sink(fd: int) -> Callable[[bytes], None]:
    """Write to a file descriptor (stdout in production), completing partial writes."""

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    return write


def stream_sink(stream: TextIO) -> Callable[[bytes], None]:
    """Write to a text stream without a file descriptor (an in-memory buffer in tests)."""

    def write(data: bytes) -> None:
        stream.write(data.decode())
        stream.flush()

    return write


class _QueuedLogger:
    """structlog's wrapped logger: hands each rendered line to the writer."""

    def __init__(self, writer: LogWriter) -> None:
        self._writer = writer

    def msg(self, message: str | bytes) -> None:
        line = message if isinstance(message, bytes) else message.encode()
        self._writer.write(line + b"\n")

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


class _QueuedHandler(logging.Handler):
    """stdlib logging into the same writer, formatted by structlog's ProcessorFormatter."""

    def __init__(self, writer: LogWriter) -> None:
        super().__init__()
        self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._writer.write(self.format(record).encode() + b"\n")
        except Exception:
            self._writer.dropped += 1


def add_call_context(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Add the current call's `request_id` (and, on its access line, `merchant_id`: the record
    learns the merchant when the call completes), so every line of a call, the domain's
    included, leads to the others and to the client's `x-request-id`."""
    record = current_call()
    if record is not None:
        event_dict.setdefault("request_id", record.request_id)
        if record.merchant_id is not None:
            event_dict.setdefault("merchant_id", record.merchant_id)
    return event_dict


def add_trace_context(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Add `trace_id` and `span_id` of the active span, so a log line leads to its trace."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


class UtcTimestamp:
    """A structlog processor: `timestamp` in ISO 8601, UTC, with microseconds and `Z`
    (`2026-12-07T02:44:37.263821Z`), as structlog's `TimeStamper(fmt="iso", utc=True)` writes
    it, except that the fraction is always there. The date and time of day are formatted once
    per second, not per line (a datetime and its isoformat cost ~11 000 instructions a line,
    `make bench-count`); `clock` returns nanoseconds since the epoch."""

    __slots__ = ("_clock", "_second")

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock
        self._second = (-1, "")  # (seconds since the epoch, its formatted prefix): one object

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        seconds, nanos = divmod(self._clock(), 1_000_000_000)
        second = self._second  # read once: other threads log through the same processor
        if second[0] != seconds:
            second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
            self._second = second
        event_dict["timestamp"] = f"{second[1]}.{nanos // 1000:06d}Z"
        return event_dict


def configure_logging(
    settings: Settings, *, stream: TextIO | None = None, cache_loggers: bool = True
) -> LogWriter:
    """Configure structlog and stdlib logging once, at startup, from the settings' level,
    format and queue size; return the writer (the entry point flushes it at shutdown, the
    metrics count its drops).

    `stream` defaults to stdout; `cache_loggers` binds each logger to this configuration on first
    use (a per-call saving); tests that reconfigure logging between cases turn it off.
    """
    fmt = settings.log_format
    numeric_level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    out = stream or sys.stdout
    try:
        out.flush()
        sink = fd_sink(out.fileno())
    except (OSError, ValueError):  # no descriptor (io.StringIO), or already closed
        sink = stream_sink(out)
    writer = LogWriter(sink, settings.log_queue_records)
    # What every line needs, and only that: the call's ids come from its record and its span
    # (nothing binds structlog's own context variables, so `merge_contextvars` is not run).
    shared: list[Processor] = [
        add_call_context,
        add_trace_context,
        structlog.processors.add_log_level,
        UtcTimestamp(),
    ]
    renderer: Processor
    if fmt == "json":
        # Tracebacks as data, without frame locals: locals hold request payloads (metadata
        # values) and must never reach a log line.
        shared.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=lambda *_args: _QueuedLogger(writer),
        cache_logger_on_first_use=cache_loggers,
    )
    handler = _QueuedHandler(writer)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _text(renderer),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    return writer


def _text(renderer: Processor) -> Processor:
    """ProcessorFormatter needs text; orjson renders bytes."""

    def render(logger: WrappedLogger, method: str, event_dict: EventDict) -> Any:
        rendered = renderer(logger, method, event_dict)
        return rendered.decode() if isinstance(rendered, bytes) else rendered

    return render


class AccessLogReporter:
    """One canonical access line per call (`rpc_completed`), written when the call completes.

    Its level is the record's: the error table's row for a failure it answered (client faults
    at info, an operator's problem at error), else by code (`record.default_log_level`). The
    line carries the request id and the trace and span ids through the processors; metadata
    values are never logged. A failure the error table marks as a flood a client can cause
    (`record.log_every` > 1) is logged for the first call and then once in that many calls of its
    method and code, each line saying how many like it went unlogged since the previous one
    (`similar_calls_unlogged`), so nothing a caller sends can multiply the log lines.
    """

    def __init__(self) -> None:
        self._log = structlog.get_logger("payments.access")
        self._unlogged: dict[tuple[str, str], int] = {}  # per flood: calls not logged

    def call_started(self, record: CallRecord) -> None:
        pass

    def call_finished(self, record: CallRecord) -> None:
        unlogged = 0
        if record.log_every > 1:  # decided first: an unlogged call builds no line
            flood = (record.method.full_method, record.code.name)
            seen = self._unlogged.get(flood)
            if seen is not None and seen < record.log_every - 1:
                self._unlogged[flood] = seen + 1
                return
            self._unlogged[flood] = 0
            unlogged = seen or 0
        fields: dict[str, Any] = {
            "rpc_method": record.method.full_method,
            "grpc_code": record.code.name,
            "duration_ms": round(record.duration * 1000, 3),
            "peer": record.peer,
        }
        if record.error_kind is not None:
            fields["error_kind"] = record.error_kind
        payment = record.payment
        if payment is not None:
            fields["payment_id"] = payment.payment_id
            if payment.replayed is not None:
                fields["idempotent_replay"] = payment.replayed
        http = record.http
        if http is not None:
            fields["http_method"] = http.method
            fields["http_route"] = http.route
            fields["http_status"] = http.status
        for name, value in record.signals:
            fields[name.replace(".", "_")] = value
        if record.log_every > 1:
            fields["similar_calls_unlogged"] = unlogged
        getattr(self._log, record.log_level)(ACCESS_EVENT, **fields)
