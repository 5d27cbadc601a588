"""Every metric name the service exposes on /metrics, for the tests that check what the docs,
the dashboard and the alert rules name: read from the registries `bootstrap.build_app` builds,
never from a list kept by hand."""

from __future__ import annotations

import asyncio
import functools
import tempfile
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from payments_service.adapters.stores.connections import ConnectionLender
from payments_service.adapters.stores.factory import Store
from payments_service.adapters.stores.postgres import PostgresPaymentRepository
from payments_service.adapters.system import SystemClock
from payments_service.bootstrap import observe_store
from payments_service.config import Settings
from payments_service.observability.logs import LogWriter
from payments_service.observability.telemetry import build_telemetry
from payments_service.security.api_keys import KeyRing, key_file_line, new_api_key
from tests.apps import running_app


async def _served_metric_names(workdir: Path) -> set[str]:
    """The names on /metrics, from the registries `build_app` builds: on the memory store and on
    SQLite (calls, payments, limits, load, log and span drops, refused scrapes, store size,
    latency, group commit, a served certificate, API key reloads); and the PostgreSQL pool gauges as
    `observe_store` registers them for a store that is not opened (opening one needs a
    database)."""
    names: set[str] = set()
    keys_file = workdir / "api-keys"
    keys_file.write_text(key_file_line("acme", new_api_key()) + "\n")
    keys_file.chmod(0o600)
    quiet = LogWriter(lambda _: None, 100)
    async with AsyncExitStack() as stack:
        stack.callback(quiet.close, 1)
        for store_url in ("memory://", f"sqlite:///{workdir / 'payments.db'}"):
            settings = Settings.from_env(
                {
                    "PAYMENTS_GRPC_ADDRESS": "127.0.0.1:0",
                    "PAYMENTS_METRICS_ADDRESS": "127.0.0.1:0",
                    "PAYMENTS_HTTP_ADDRESS": "127.0.0.1:0",
                    "PAYMENTS_STORE_URL": store_url,
                    "OTEL_SDK_DISABLED": "true",
                }
            )
            app = await stack.enter_async_context(
                running_app(
                    settings,
                    keys=KeyRing.load(str(keys_file)),
                    log_writer=quiet,
                    tls_not_after=lambda: {"server": 0.0},
                )
            )
            assert app.telemetry.metrics is not None
            names |= _exposed(app.telemetry.metrics.registry)
        settings = Settings.from_env({"PAYMENTS_STORE_URL": "postgresql://nobody@127.0.0.1/none"})
        telemetry = build_telemetry(settings)
        assert telemetry.metrics is not None
        unopened = PostgresPaymentRepository(
            ConnectionLender(_never_connects, max_size=settings.store_pool_size),
            ttl=timedelta(seconds=settings.idempotency_ttl_seconds),
            clock=SystemClock(),
            lease=timedelta(seconds=settings.settlement_lease_seconds),
            connect=_never_connects,
        )
        store = Store(unopened, "postgresql", unopened.close, pool=unopened, stalled=unopened)
        observe_store(store, settings, telemetry)
        names |= _exposed(telemetry.metrics.registry)
    return names


async def _never_connects() -> Any:
    raise AssertionError("listing the metric names opens no database")


def _exposed(registry: CollectorRegistry) -> set[str]:
    """Sample names, and histogram and summary families marked `family:` (a query names those
    only with a suffix, a doc may name them bare)."""
    names = set()
    for family in registry.collect():
        names |= {sample.name for sample in family.samples}
        if family.type in ("histogram", "summary"):
            names.add(f"family:{family.name}")
    return names


@functools.cache
def _served() -> frozenset[str]:
    with tempfile.TemporaryDirectory() as workdir:
        return frozenset(asyncio.run(_served_metric_names(Path(workdir))))


def served_sample_names() -> frozenset[str]:
    """Every sample name on /metrics (`_total`, `_bucket`, `_created`...)."""
    return frozenset(name for name in _served() if not name.startswith("family:"))


def served_metric_names() -> frozenset[str]:
    """The sample names, and the bare names of histograms and summaries."""
    return frozenset(name.removeprefix("family:") for name in _served())
