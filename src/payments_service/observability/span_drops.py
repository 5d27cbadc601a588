"""Spans the OTLP export loses, counted (`payments_spans_dropped_total{reason}`, declared in
`observability.metrics`).

The SDK's BatchSpanProcessor queues finished spans for its export thread. When the queue is full
(the collector is slower than the service, or unreachable while the exporter retries) it drops a
span with one log line and nothing a scrape can see: its own counters are switched on only by
OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED and report to an OpenTelemetry MeterProvider, which
this service does not run, and its queue is private.

`ExportQueue` is a span processor in front of the SDK's BatchSpanProcessor, built from the SDK's
public API only (`SpanProcessor`, `SpanExporter`, `BatchSpanProcessor`'s constructor):

- it hands a sampled span on only while fewer than `max_queue_size` spans are waiting for the
  exporter (spans handed on minus spans the exporter has received), and counts the others as
  `reason="queue_full"`. The SDK's queue holds at most that many spans, so it never drops one
  itself, and this count is every span the queue lost. Unlike the SDK, which evicts the oldest
  span of a full queue, the newest is the one dropped.
- its exporter wrapper counts the spans of every batch the exporter failed to deliver (after
  its retries) as `reason="export_failed"`.

The waiting count is an upper bound of the SDK's queue length: a batch is counted as received
when the exporter is called, a few statements after the SDK took it off its queue.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span


class Exporter(Protocol):
    """What `ExportQueue` needs of an exporter (`sdk_extensions.FastOTLPSpanExporter`, or any of
    the SDK's)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult: ...
    def shutdown(self) -> None: ...
    def force_flush(self, timeout_millis: int = 30_000) -> bool: ...


class _CountingExporter(SpanExporter):
    """`inner`, counting the spans it is given (`received`) and those it failed to deliver."""

    def __init__(self, inner: Exporter) -> None:
        self._inner = inner
        self.received = 0  # written by the export thread only (the SDK exports under a lock)
        self.failed = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.received += len(spans)
        try:
            result = self._inner.export(spans)
        except Exception:
            self.failed += len(spans)
            raise
        if result is not SpanExportResult.SUCCESS:
            self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


class ExportQueue(SpanProcessor):
    """The SDK's BatchSpanProcessor with a counted bound in front of it (module docstring)."""

    def __init__(
        self, exporter: Exporter, *, max_queue_size: int, max_export_batch_size: int
    ) -> None:
        self._exporter = _CountingExporter(exporter)
        self._batch = BatchSpanProcessor(
            self._exporter,
            max_queue_size=max_queue_size,
            max_export_batch_size=max_export_batch_size,
        )
        self._capacity = max_queue_size
        self._handed_on = 0
        self._lock = threading.Lock()  # spans may end on any thread
        self.queue_full = 0

    @property
    def export_failed(self) -> int:
        return self._exporter.failed

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass  # the batch processor does nothing on start either

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return  # the batch processor exports sampled spans only
        with self._lock:
            if self._handed_on - self._exporter.received >= self._capacity:
                self.queue_full += 1
                return
            self._handed_on += 1
        self._batch.on_end(span)

    def shutdown(self) -> None:
        self._batch.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._batch.force_flush(timeout_millis)
