"""The whole application (`bootstrap.build_app`) for a test, stopped as `main.serve` stops it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from payments_service.bootstrap import App, build_app
from payments_service.config import Settings

# What a test's teardown gives the settlements in flight and the span flush (main.serve gives
# them the shutdown grace); the listeners stop at once.
DRAIN_SECONDS = 5.0
FLUSH_SECONDS = 5.0


@asynccontextmanager
async def running_app(settings: Settings, **build_app_options: Any) -> AsyncIterator[App]:
    """`build_app(settings, **build_app_options)` (background work built, not started), then
    everything `main.serve` stops, in its order: the gRPC server and the JSON/HTTP listener (if
    any), the background work, the service's settlements in flight, telemetry, the metrics
    listener (if any), the store."""
    app = await build_app(settings, **build_app_options)
    try:
        yield app
    finally:
        stopping = [app.server.stop(0)]
        if app.http is not None:
            stopping.append(app.http.stop(0))
        await asyncio.gather(*stopping)
        await app.background.stop()
        await app.service.drain(DRAIN_SECONDS)
        await asyncio.to_thread(app.telemetry.shutdown, FLUSH_SECONDS)
        if app.metrics_http is not None:
            app.metrics_http.shutdown()
        await app.store.close()
