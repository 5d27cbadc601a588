"""Gauges of the payment store's size, read from the store at scrape time.

A custom collector rather than gauges the store would set: the store stays free of
prometheus, a scrape costs one `stats()` call, and the hot path does no metric work at all.
The scrape runs on the metrics server's thread while the event loop mutates the store; each
field is one int read under the GIL, so a scrape may mix two neighbouring states but never
sees a torn value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from payments_service.domain.ports import StoreStats

PAYMENTS_HELP = "Payments held by the store (live, or expired and not yet evicted)."
BYTES_HELP = "Accounted size of the payments held, in bytes (see docs/memory-store.md)."
MAX_BYTES_HELP = "The store's cap in bytes (PAYMENTS_MEMORY_STORE_MAX_MIB); 0 means none."
REJECTED_HELP = "New payments refused with RESOURCE_EXHAUSTED because the store was full."


class StoreGauges(Collector):
    def __init__(self, stats: Callable[[], StoreStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        yield GaugeMetricFamily("payments_store_payments", PAYMENTS_HELP, value=stats.payments)
        yield GaugeMetricFamily("payments_store_bytes", BYTES_HELP, value=stats.bytes_used)
        yield GaugeMetricFamily("payments_store_max_bytes", MAX_BYTES_HELP, value=stats.max_bytes)
        yield CounterMetricFamily(
            "payments_store_rejected_full", REJECTED_HELP, value=stats.rejected_full
        )

    def describe(self) -> Iterator[Metric]:
        """The families without values, so registering does not read the store."""
        yield GaugeMetricFamily("payments_store_payments", PAYMENTS_HELP)
        yield GaugeMetricFamily("payments_store_bytes", BYTES_HELP)
        yield GaugeMetricFamily("payments_store_max_bytes", MAX_BYTES_HELP)
        yield CounterMetricFamily("payments_store_rejected_full", REJECTED_HELP)


def register_store_gauges(
    stats: Callable[[], StoreStats], registry: CollectorRegistry
) -> StoreGauges:
    collector = StoreGauges(stats)
    registry.register(collector)
    return collector
