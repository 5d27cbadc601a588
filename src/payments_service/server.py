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

import structlog

from payments_service import __version__
from payments_service.bootstrap import build_interceptors, build_service
from payments_service.config import ConfigError, Settings
from payments_service.observability.logs import configure_logging

log = structlog.get_logger(__name__)


async def serve(settings: Settings) -> None:
    from payments_service.transport.server import start_server  # noqa: PLC0415 - after logging

    service = build_service(settings)
    running = await start_server(service, settings.grpc_address, build_interceptors())
    log.info(
        "server_started",
        version=__version__,
        grpc_address=settings.grpc_address,
        port=running.port,
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
    unsettled = await service.drain(max(0.0, deadline - time.monotonic()))
    log.info("shutdown_complete", unsettled_payments=unsettled)


def main() -> None:
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        print(f"payments-server: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    asyncio.run(serve(settings))
