"""The store's gauges: payments held, accounted bytes, cap, refusals; read at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from payments_service.adapters.stores.memory import payment_size
from payments_service.domain.ports import StoreStats
from payments_service.observability.metrics import register_sampled, store_size_series
from tests.conftest import payment_request
from tests.integration.observability.conftest import Observed


def test_the_collector_exposes_what_the_store_reports_at_each_scrape() -> None:
    registry = CollectorRegistry()
    current = [StoreStats(payments=3, bytes_used=4096, max_bytes=8192, rejected_full=0)]
    register_sampled(registry, store_size_series(lambda: current[0]))
    assert registry.get_sample_value("payments_store_payments") == 3
    current[0] = StoreStats(payments=5, bytes_used=8000, max_bytes=8192, rejected_full=7)
    assert {
        name: registry.get_sample_value(name)
        for name in (
            "payments_store_payments",
            "payments_store_bytes",
            "payments_store_max_bytes",
            "payments_store_rejected_full_total",
        )
    } == {
        "payments_store_payments": 5,
        "payments_store_bytes": 8000,
        "payments_store_max_bytes": 8192,
        "payments_store_rejected_full_total": 7,
    }


def test_registering_does_not_read_the_store() -> None:
    def unreadable() -> StoreStats:
        raise AssertionError("read at registration")

    register_sampled(CollectorRegistry(), store_size_series(unreadable))


async def test_the_served_metrics_show_the_running_store(observed: Observed) -> None:
    created = await observed.api.stub.RequestPayment(payment_request(), timeout=5)
    stored = await observed.api.service.get_payment("default", created.payment_id)
    assert observed.sample("payments_store_payments") == 1
    assert observed.sample("payments_store_bytes") == payment_size(stored)
    assert observed.sample("payments_store_max_bytes") == 256 * 1024 * 1024
    assert observed.sample("payments_store_rejected_full_total") == 0
