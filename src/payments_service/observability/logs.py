"""structlog configuration: JSON lines on stdout (or a console renderer for humans).

Called once by the entry point, never at import time. Standard-library logging (grpc, asyncio)
is routed through the same processors so every line on stdout has one shape.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, TextIO

import orjson
import structlog
from opentelemetry import trace

if TYPE_CHECKING:
    from structlog.typing import EventDict, Processor, WrappedLogger


def add_trace_context(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Add `trace_id` and `span_id` of the active span, so a log line leads to its trace."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


def _orjson_dumps(event: Any, **kwargs: Any) -> str:
    """orjson instead of json.dumps: the JSON renderer is most of a log line's cost."""
    return orjson.dumps(event, **kwargs).decode()


def configure_logging(
    *,
    level: str = "info",
    fmt: str = "json",
    stream: TextIO | None = None,
    cache_loggers: bool = True,
) -> None:
    """Configure structlog and stdlib logging once, at startup.

    `cache_loggers` binds each logger to this configuration on first use (a per-call saving);
    tests that reconfigure logging between cases turn it off.
    """
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_context,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
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
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer()
    out = stream or sys.stdout
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=cache_loggers,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
