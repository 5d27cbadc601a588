"""Entry point: `payments-server` / `python -m payments_service`.

Lifecycle: parse settings (exit 2 on a bad value), configure logging, start serving, and on
SIGTERM or SIGINT shut down gracefully: health goes NOT_SERVING, new calls are refused,
in-flight calls and background settlements get `PAYMENTS_SHUTDOWN_GRACE_SECONDS`, exit 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Mapping

import structlog

from payments_service import __version__
from payments_service.application.expiry import ExpirySweeper
from payments_service.bootstrap import build_interceptors, build_service
from payments_service.config import ConfigError, Settings
from payments_service.observability.logs import configure_logging
from payments_service.observability.metrics import start_metrics_server
from payments_service.observability.telemetry import build_telemetry

log = structlog.get_logger(__name__)


async def serve(settings: Settings, env: Mapping[str, str]) -> None:
    from payments_service.transport.server import UNARY_METHODS, start_server  # noqa: PLC0415

    telemetry = build_telemetry(settings, env)
    metrics_server, metrics_port = None, None
    if telemetry.metrics is not None and settings.metrics_address is not None:
        telemetry.metrics.initialize(UNARY_METHODS)
        metrics_server, metrics_port = start_metrics_server(
            settings.metrics_address, telemetry.metrics.registry
        )
    service = build_service(settings, telemetry=telemetry)
    running = await start_server(service, settings.grpc_address, build_interceptors(telemetry))
    sweeper = ExpirySweeper(service)
    sweeper.start()
    log.info(
        "server_started",
        version=__version__,
        grpc_address=settings.grpc_address,
        port=running.port,
        metrics_port=metrics_port,
        tracing=telemetry.tracer_provider is not None,
        pid=os.getpid(),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    grace = settings.shutdown_grace_seconds
    deadline = time.monotonic() + grace
    log.info("shutdown_started", grace_seconds=grace)
    await running.stop(grace)
    await sweeper.stop()
    unsettled = await service.drain(max(0.0, deadline - time.monotonic()))
    telemetry.shutdown()  # flushes the spans of the last calls
    if metrics_server is not None:
        metrics_server.shutdown()
    log.info("shutdown_complete", unsettled_payments=unsettled)


def main() -> None:
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        print(f"payments-server: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    asyncio.run(serve(settings, os.environ))
