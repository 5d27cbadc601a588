"""The observability bundle the composition root wires in: tracing, metrics, access logs,
the reporters they feed, and their bounded shutdown."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry import trace

from payments_service.observability.logs import AccessLogReporter
from payments_service.observability.metrics import (
    HttpMetricsReporter,
    Metrics,
    MetricsReporter,
    RateLimitReporter,
    log_series,
    new_registry,
    register_sampled,
    span_drop_series,
)
from payments_service.observability.tracing import (
    SCOPE_NAME,
    ServiceTracerProvider,
    SpanReporter,
    build_tracer_provider,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from opentelemetry.sdk.trace import SpanProcessor

    from payments_service.config import Settings
    from payments_service.observability.logs import LogWriter
    from payments_service.observability.reporting import Reporter


@dataclass(slots=True)
class Telemetry:
    """None / False switches a signal off; nothing is then installed for it."""

    tracer_provider: ServiceTracerProvider | None = None
    metrics: Metrics | None = None
    access_log: bool = False
    observe_health_checks: bool = False

    def tracer(self) -> trace.Tracer:
        if self.tracer_provider is None:
            return trace.NoOpTracer()
        return self.tracer_provider.get_tracer(SCOPE_NAME)

    def reporters(self) -> tuple[list[Reporter], list[Reporter]]:
        """(reporters of every call, reporters of health checks). Span first: the metrics
        reporter reads the span it found for its exemplar."""
        return self._reporters(MetricsReporter)

    def http_reporters(self) -> tuple[list[Reporter], list[Reporter]]:
        """The same as `reporters`, for the JSON/HTTP transport: the same span and access-line
        reporters; for metrics, the HTTP request histogram instead of the gRPC-named series."""
        return self._reporters(lambda metrics: HttpMetricsReporter(metrics.http))

    def _reporters(
        self, calls: Callable[[Metrics], Reporter]
    ) -> tuple[list[Reporter], list[Reporter]]:
        spans: list[Reporter] = [SpanReporter()] if self.tracer_provider is not None else []
        logs: list[Reporter] = [AccessLogReporter()] if self.access_log else []
        metrics: list[Reporter] = []
        if self.metrics is not None:
            metrics = [calls(self.metrics), RateLimitReporter(self.metrics)]
        every_call = [*spans, *metrics, *logs]
        return every_call, (every_call if self.observe_health_checks else metrics)

    def shutdown(self, timeout: float) -> bool:
        """Export what is queued and stop the exporters, within `timeout` seconds.

        The flush runs on its own daemon thread, so an unreachable collector (the exporter's
        retries and timeouts) can never hold the process past its shutdown budget. Returns
        whether everything was flushed in time *and* taken by the collector: a flush whose
        exports failed (an unreachable collector) is not a flush."""
        provider = self.tracer_provider
        if provider is None:
            return True
        flushed = threading.Event()
        queue = provider.export_queue
        failed_before = None if queue is None else queue.export_failed

        def flush_and_stop() -> None:
            if provider.force_flush(int(timeout * 1000)) and (
                queue is None or queue.export_failed == failed_before
            ):
                flushed.set()
            provider.shutdown()

        thread = threading.Thread(target=flush_and_stop, name="telemetry-shutdown", daemon=True)
        thread.start()
        thread.join(timeout)
        return flushed.is_set()


def build_telemetry(
    settings: Settings,
    *,
    log_writer: LogWriter | None = None,
    span_processors: tuple[SpanProcessor, ...] = (),
) -> Telemetry:
    metrics = None
    if settings.metrics_address is not None:
        metrics = Metrics(new_registry())
        if log_writer is not None:
            register_sampled(metrics.registry, log_series(lambda: log_writer.dropped))
    provider = build_tracer_provider(settings, span_processors)
    if metrics is not None:
        queue = None if provider is None else provider.export_queue
        register_sampled(metrics.registry, span_drop_series(queue))
    return Telemetry(
        tracer_provider=provider,
        metrics=metrics,
        access_log=settings.access_log,
        observe_health_checks=settings.observe_health_checks,
    )
