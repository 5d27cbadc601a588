"""Store spans and metrics: database CLIENT spans per the OTel conventions with no parameter
values, a latency histogram per store and operation, and PostgreSQL pool gauges."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

from payments_service.adapters.stores.factory import Store, open_store
from payments_service.adapters.stores.observed import ObservedRepository
from payments_service.adapters.stores.sqlite import SqlitePaymentRepository
from payments_service.bootstrap import observe_store
from payments_service.config import Settings
from payments_service.domain.errors import PaymentNotFoundError
from payments_service.domain.model import Outcome, Payment, PaymentRequest, PaymentStatus
from payments_service.domain.ports import PaymentRepository
from payments_service.observability.metrics import Metrics, StoreMetrics
from payments_service.observability.telemetry import Telemetry
from payments_service.observability.tracing import ServiceTracerProvider
from tests.fakes import FakeClock
from tests.stores import open_sqlite, postgres_schema

KEY = "planted-key-7731"
PAYMENT_ID = "pay_" + "7" * 32
SUCCEEDED = Outcome(PaymentStatus.SUCCEEDED, "ok")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> ServiceTracerProvider:
    provider = ServiceTracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
async def sqlite_store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SqlitePaymentRepository]:
    repository = await open_sqlite(tmp_path / "p.db", ttl=timedelta(hours=1), clock=clock)
    yield repository
    await repository.close()


def candidate(clock: FakeClock) -> Payment:
    request = PaymentRequest(
        987654, "EUR", "order-secret-99", KEY, {"note": "planted-value"}, merchant_id="default"
    )
    now = clock.now()
    pending = Outcome(PaymentStatus.PENDING, "processing")
    return Payment(PAYMENT_ID, request, request.fingerprint(), now, now, pending)


async def test_each_operation_is_one_client_span_with_db_attributes_and_no_values(
    sqlite_store: SqlitePaymentRepository,
    provider: ServiceTracerProvider,
    exporter: InMemorySpanExporter,
    clock: FakeClock,
) -> None:
    registry = CollectorRegistry()
    observed = ObservedRepository(
        sqlite_store,
        system="sqlite",
        tracer_provider=provider,
        metrics=StoreMetrics(registry),
        namespace="p.db",
    )
    await observed.claim(candidate(clock))
    await observed.get("default", PAYMENT_ID)
    await observed.record(PAYMENT_ID, at=clock.now(), outcome=SUCCEEDED, first_response=SUCCEEDED)
    await observed.purge_expired(limit=10)

    spans = exporter.get_finished_spans()
    operations = ["claim", "get", "record", "purge_expired"]
    assert [s.name for s in spans] == [f"{op} payments" for op in operations]
    for span, operation in zip(spans, operations, strict=True):
        assert span.kind is SpanKind.CLIENT
        assert dict(span.attributes or {}) == {
            "db.system.name": "sqlite",
            "db.operation.name": operation,
            "db.collection.name": "payments",
            "db.namespace": "p.db",
        }
        count = registry.get_sample_value(
            "payments_store_operation_seconds_count",
            {"store": "sqlite", "operation": operation},
        )
        assert count == 1


async def test_a_failed_operation_is_an_error_span_with_its_type_and_no_message(
    sqlite_store: SqlitePaymentRepository,
    provider: ServiceTracerProvider,
    exporter: InMemorySpanExporter,
    clock: FakeClock,
) -> None:
    observed = ObservedRepository(sqlite_store, system="sqlite", tracer_provider=provider)
    with pytest.raises(PaymentNotFoundError):
        await observed.record(PAYMENT_ID, at=clock.now(), outcome=SUCCEEDED)
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "PaymentNotFoundError"
    assert not span.events  # the exception message (which names the id) is not recorded
    assert PAYMENT_ID not in str(span.to_json())


async def test_observe_store_wraps_durable_stores_only(
    sqlite_store: SqlitePaymentRepository, provider: ServiceTracerProvider
) -> None:
    telemetry = Telemetry(tracer_provider=provider, metrics=Metrics(CollectorRegistry()))
    settings = Settings()
    memory = Store(sqlite_store, "memory", sqlite_store.close)
    assert observe_store(memory, settings, telemetry) is sqlite_store
    durable = observe_store(Store(sqlite_store, "sqlite", sqlite_store.close), settings, telemetry)
    assert isinstance(durable, ObservedRepository)
    assert durable.inner is sqlite_store


@contextlib.asynccontextmanager
async def observed_store(
    settings: Settings, provider: ServiceTracerProvider, clock: FakeClock
) -> AsyncIterator[tuple[PaymentRepository, CollectorRegistry]]:
    """The configured store opened and wrapped as the server wraps it, and its registry."""
    store = await open_store(settings, clock=clock)
    registry = CollectorRegistry()
    telemetry = Telemetry(tracer_provider=provider, metrics=Metrics(registry))
    try:
        yield observe_store(store, settings, telemetry), registry
    finally:
        await store.close()


async def test_postgresql_pool_gauges_show_idle_and_in_use_connections(
    provider: ServiceTracerProvider, clock: FakeClock
) -> None:
    async with postgres_schema() as location:
        settings = Settings(store=location, store_pool_size=3)
        async with observed_store(settings, provider, clock) as (repository, registry):
            await repository.claim(candidate(clock))

            def gauge(name: str, **labels: str) -> float | None:
                return registry.get_sample_value(name, {"store": "postgresql", **labels})

            assert gauge("payments_store_pool_max_connections") == 3
            assert gauge("payments_store_pool_waiting") == 0
            assert gauge("payments_store_pool_connections", state="in_use") == 0
            assert (gauge("payments_store_pool_connections", state="idle") or 0) >= 1
            assert gauge("payments_store_operation_seconds_count", operation="claim") == 1


async def test_sqlite_group_commit_counts_its_transactions_and_their_operations(
    tmp_path: Path, provider: ServiceTracerProvider, clock: FakeClock
) -> None:
    settings = Settings.from_env({"PAYMENTS_STORE_URL": f"sqlite:///{tmp_path}/p.db"})
    async with observed_store(settings, provider, clock) as (repository, registry):
        await repository.claim(candidate(clock))
        await repository.get("default", PAYMENT_ID)

        def counter(name: str) -> float | None:
            return registry.get_sample_value(name, {"store": "sqlite"})

        # Awaited one after the other: the claim is a transaction of one operation, the lone
        # read needs none, and the migrations run outside any batch.
        assert counter("payments_store_transactions_total") == 1
        assert counter("payments_store_transaction_operations_total") == 1
