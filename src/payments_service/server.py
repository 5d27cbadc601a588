"""Entry point: `payments-server` / `python -m payments_service`.

Lifecycle: parse settings (exit 2 on a bad value), configure logging, start serving, and on
SIGTERM or SIGINT shut down gracefully: health goes NOT_SERVING, new calls are refused,
in-flight calls and background settlements get `PAYMENTS_SHUTDOWN_GRACE_SECONDS`, exit 0.
SIGHUP re-reads the API keys file. `payments-server keys new MERCHANT_ID` makes an API key.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog

from payments_service import __version__
from payments_service.bootstrap import build_interceptors, build_service
from payments_service.config import ConfigError, Settings
from payments_service.observability.logs import configure_logging
from payments_service.observability.metrics import start_metrics_server
from payments_service.observability.telemetry import build_telemetry
from payments_service.security.api_keys import KeyRing
from payments_service.security.authenticator import Authenticator
from payments_service.security.keys_cli import keys_main
from payments_service.security.tls import server_credentials, tls_mode

if TYPE_CHECKING:
    import grpc

log = structlog.get_logger(__name__)


async def serve(
    settings: Settings,
    env: Mapping[str, str],
    keys: KeyRing | None = None,
    credentials: grpc.ServerCredentials | None = None,
) -> None:
    from payments_service.transport.server import UNARY_METHODS, start_server  # noqa: PLC0415

    telemetry = build_telemetry(settings, env)
    metrics_server, metrics_port = None, None
    if telemetry.metrics is not None and settings.metrics_address is not None:
        telemetry.metrics.initialize(UNARY_METHODS)
        metrics_server, metrics_port = start_metrics_server(
            settings.metrics_address, telemetry.metrics.registry
        )
    service = build_service(settings, telemetry=telemetry)
    if keys is None:
        log.warning("authentication_disabled", reason="PAYMENTS_API_KEYS_FILE is not set")
    interceptors = build_interceptors(telemetry, Authenticator(keys))
    running = await start_server(service, settings.grpc_address, interceptors, credentials)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Before server_started: a signal sent once that line is out must find its handler.
    loop.add_signal_handler(signal.SIGHUP, _reload_keys, keys)
    log.info(
        "server_started",
        version=__version__,
        grpc_address=settings.grpc_address,
        port=running.port,
        metrics_port=metrics_port,
        tracing=telemetry.tracer_provider is not None,
        api_keys=None if keys is None else len(keys),
        tls=tls_mode(settings),
        pid=os.getpid(),
    )
    await stop.wait()

    grace = settings.shutdown_grace_seconds
    deadline = time.monotonic() + grace
    log.info("shutdown_started", grace_seconds=grace)
    await running.stop(grace)
    unsettled = await service.drain(max(0.0, deadline - time.monotonic()))
    telemetry.shutdown()  # flushes the spans of the last calls
    if metrics_server is not None:
        metrics_server.shutdown()
    log.info("shutdown_complete", unsettled_payments=unsettled)


def _reload_keys(keys: KeyRing | None) -> None:
    """SIGHUP: re-read the API keys file (rotation, revocation). A bad file keeps the old keys
    and logs one error. Handled even without a file, so a stray SIGHUP never kills the server."""
    if keys is None:
        log.warning("api_keys_reload_skipped", reason="PAYMENTS_API_KEYS_FILE is not set")
    else:
        keys.reload()


def main() -> None:
    if sys.argv[1:2] == ["keys"]:  # `payments-server keys new MERCHANT_ID`
        raise SystemExit(keys_main(sys.argv[2:]))
    try:
        settings = Settings.from_env(os.environ)
        keys = KeyRing.load(settings.api_keys_file) if settings.api_keys_file else None
        credentials = server_credentials(settings)
    except ConfigError as exc:
        print(f"payments-server: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    asyncio.run(serve(settings, os.environ, keys, credentials))
