"""`ExportQueue`: every span the OTLP export loses is counted, by reason, and scraped as
`payments_spans_dropped_total`; a span it accepts is never dropped by the SDK behind it."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from prometheus_client import CollectorRegistry

from payments_service.config import Settings
from payments_service.observability.metrics import register_sampled, span_drop_series
from payments_service.observability.span_drops import ExportQueue
from payments_service.observability.telemetry import build_telemetry

QUEUE_FULL, EXPORT_FAILED = "queue_full", "export_failed"  # the `reason` label's values


class GatedExporter:
    """Holds each export until `release` is set; records the names it was given."""

    def __init__(self, result: SpanExportResult = SpanExportResult.SUCCESS) -> None:
        self.result = result
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[list[str]] = []
        self.shutdown_timeouts: list[float] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.batches.append([span.name for span in spans])
        self.entered.set()
        assert self.release.wait(10), "the test never released the exporter"
        return self.result

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        self.shutdown_timeouts.append(timeout_millis)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def exported(self) -> list[str]:
        return [name for batch in self.batches for name in batch]


class RaisingExporter(GatedExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        super().export(spans)
        raise ConnectionError("collector gone")


@pytest.fixture
def exporter() -> Iterator[GatedExporter]:
    gated = GatedExporter()
    yield gated
    gated.release.set()  # never leave the SDK's worker thread waiting


def tracer_with(queue: ExportQueue, *, sampled: bool = True) -> TracerProvider:
    provider = TracerProvider(sampler=None if sampled else ALWAYS_OFF, shutdown_on_exit=False)
    provider.add_span_processor(queue)
    return provider


def end_spans(provider: TracerProvider, names: list[str]) -> None:
    tracer = provider.get_tracer("test")
    for name in names:
        tracer.start_span(name).end()


def test_spans_past_the_queue_bound_are_dropped_and_counted_and_the_rest_exported(
    exporter: GatedExporter,
) -> None:
    queue = ExportQueue(exporter, max_queue_size=4, max_export_batch_size=2)
    provider = tracer_with(queue)
    end_spans(provider, ["a", "b"])  # one full batch: the worker takes it and blocks
    assert exporter.entered.wait(10)
    end_spans(provider, [f"q{i}" for i in range(7)])  # 4 fit in the queue, 3 do not
    assert queue.queue_full == 3
    exporter.release.set()
    assert queue.force_flush()
    # Everything accepted reached the exporter: the SDK's own queue never overflowed.
    assert exporter.exported() == ["a", "b", "q0", "q1", "q2", "q3"]
    assert queue.export_failed == 0
    end_spans(provider, ["after"])  # room again once the exporter caught up
    assert queue.force_flush()
    assert exporter.exported()[-1] == "after"
    assert queue.queue_full == 3
    provider.shutdown()


def test_unsampled_spans_are_neither_exported_nor_counted(exporter: GatedExporter) -> None:
    exporter.release.set()
    queue = ExportQueue(exporter, max_queue_size=1, max_export_batch_size=1)
    provider = tracer_with(queue, sampled=False)
    end_spans(provider, ["x"] * 5)
    assert queue.force_flush()
    assert (exporter.exported(), queue.queue_full) == ([], 0)
    provider.shutdown()


@pytest.mark.parametrize("exporter_type", [GatedExporter, RaisingExporter])
def test_spans_of_a_batch_the_exporter_failed_are_counted(
    exporter_type: type[GatedExporter],
) -> None:
    failing = exporter_type(SpanExportResult.FAILURE)
    failing.release.set()
    queue = ExportQueue(failing, max_queue_size=8, max_export_batch_size=8)
    provider = tracer_with(queue)
    end_spans(provider, ["a", "b", "c"])
    assert queue.force_flush()
    assert (queue.export_failed, queue.queue_full) == (3, 0)
    provider.shutdown()


def test_shutdown_reaches_the_exporter_with_the_sdk_budget(exporter: GatedExporter) -> None:
    exporter.release.set()
    queue = ExportQueue(exporter, max_queue_size=8, max_export_batch_size=8)
    queue.shutdown()
    assert len(exporter.shutdown_timeouts) == 1


def samples(registry: CollectorRegistry) -> dict[str, float]:
    return {
        sample.labels["reason"]: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "payments_spans_dropped_total"
    }


def test_the_counter_reads_the_queue_at_scrape_time(exporter: GatedExporter) -> None:
    queue = ExportQueue(exporter, max_queue_size=1, max_export_batch_size=1)
    registry = CollectorRegistry()
    register_sampled(registry, span_drop_series(queue))
    assert samples(registry) == {QUEUE_FULL: 0, EXPORT_FAILED: 0}
    provider = tracer_with(queue)
    end_spans(provider, ["taken"])
    assert exporter.entered.wait(10)
    end_spans(provider, ["queued", "dropped", "dropped too"])
    assert samples(registry) == {QUEUE_FULL: 2, EXPORT_FAILED: 0}
    exporter.release.set()
    provider.shutdown()


def test_without_export_both_series_exist_at_zero() -> None:
    registry = CollectorRegistry()
    register_sampled(registry, span_drop_series(None))
    assert samples(registry) == {QUEUE_FULL: 0, EXPORT_FAILED: 0}


@pytest.mark.parametrize(("value", "size"), [(None, 2048), ("64", 64)])
def test_the_service_exports_through_the_counted_queue_sized_by_otel_bsp_max_queue_size(
    value: str | None, size: int
) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "8",
    }
    if value is not None:
        env["OTEL_BSP_MAX_QUEUE_SIZE"] = value
    settings = Settings.from_env(env)
    assert settings.span_export_queue_size == size
    telemetry = build_telemetry(settings)
    assert telemetry.tracer_provider is not None
    assert isinstance(telemetry.tracer_provider.export_queue, ExportQueue)
    assert telemetry.metrics is not None
    assert samples(telemetry.metrics.registry) == {QUEUE_FULL: 0, EXPORT_FAILED: 0}
    telemetry.tracer_provider.shutdown()
