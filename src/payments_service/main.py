"""Entry point: `payments-server` / `python -m payments_service`.

Lifecycle: parse settings, the API keys file and the TLS files (exit 2 on a bad value),
configure logging, build and start the app (`bootstrap.build_app`), and on SIGTERM or SIGINT
shut down within drain + grace + 2 s:

1. health goes NOT_SERVING at once;
2. calls are still served for `PAYMENTS_SHUTDOWN_DRAIN_SECONDS`, while load balancers and
   health-checking clients move away;
3. the server stops accepting calls (GOAWAY; new calls get UNAVAILABLE, which clients retry);
   the JSON/HTTP listener stops accepting connections and closes idle ones at the same time,
   and its new calls get 503 with `Retry-After` through the same gate;
4. in-flight calls and background settlements get `PAYMENTS_SHUTDOWN_GRACE_SECONDS`, then spans
   and log lines are flushed with what is left (at least `FLUSH_FLOOR_SECONDS` each), exit 0.

A second SIGTERM or SIGINT during the shutdown exits at once with status 1 and one log line.
SIGHUP re-reads the API keys file and the TLS files.

A fatal signal (SIGSEGV, SIGBUS, SIGFPE, SIGABRT, SIGILL) leaves "Fatal Python error" and every
thread's stack on stderr (`faulthandler`) instead of a silent exit: SQLite's shared memory is a
memory-mapped file, and when that file becomes immutable the kernel kills the process with
SIGBUS on its next write there (docs/store-outages.md).

`payments-server migrate` applies the store's pending migrations and exits;
`payments-server config [--markdown]` prints the effective settings (secrets redacted);
`payments-server keys new MERCHANT_ID` makes an API key.
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import signal
import sys
import time
from typing import TYPE_CHECKING

import structlog

from payments_service import __version__
from payments_service.adapters.stores.factory import StoreOpenTimeoutError, open_store
from payments_service.adapters.stores.migrations import SchemaTooNewError
from payments_service.adapters.system import SystemClock
from payments_service.bootstrap import build_app
from payments_service.config import ConfigError, Settings
from payments_service.observability.logs import configure_logging
from payments_service.reference import effective_settings
from payments_service.security.api_keys import KeyRing
from payments_service.security.keys_cli import keys_main
from payments_service.security.tls import ServerTls, tls_mode

if TYPE_CHECKING:
    from payments_service.observability.logs import LogWriter

log = structlog.get_logger(__name__)

# The span and log flushes get what is left of the grace, but never less than this: the
# shutdown stays within grace + 2 s (one second each).
FLUSH_FLOOR_SECONDS = 1.0


async def serve(
    settings: Settings,
    *,
    log_writer: LogWriter | None = None,
    keys: KeyRing | None = None,
    tls: ServerTls | None = None,
) -> None:
    app = await build_app(
        settings,
        log_writer=log_writer,
        keys=keys,
        credentials=None if tls is None else tls.credentials(),
        tls_not_after=None if tls is None else tls.not_after,
        ssl_context=None if tls is None else tls.ssl_context(),
    )
    if keys is None:
        log.warning("authentication_disabled", reason="PAYMENTS_API_KEYS_FILE is not set")
    app.background.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # Before server_started: a signal sent once that line is out must find its handler.
    loop.add_signal_handler(signal.SIGHUP, _reload, keys, tls)
    log.info(
        "server_started",
        version=__version__,
        grpc_address=settings.grpc_address,
        port=app.server.port,
        http_port=None if app.http is None else app.http.port,
        metrics_port=app.metrics_port,
        tracing=app.telemetry.tracer_provider is not None,
        otlp_endpoint=settings.otlp_endpoint,
        api_keys=None if keys is None else len(keys),
        tls=tls_mode(settings),
        pid=os.getpid(),
    )
    await stop.wait()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _exit_now, signum, log_writer)
    drain, grace = settings.shutdown_drain_seconds, settings.shutdown_grace_seconds
    log.info("shutdown_started", drain_seconds=drain, grace_seconds=grace)
    await app.server.not_serving()
    if app.http is not None:
        app.http.not_serving()
    if drain > 0:
        await asyncio.sleep(drain)  # still serving: the drain is a duration, not a wait for
        # anything (load balancers and health-checking clients move away meanwhile)
    deadline = time.monotonic() + grace
    log.info("shutdown_stopping_server", grace_seconds=grace)
    stopping = [app.server.stop(grace)]
    if app.http is not None:
        stopping.append(app.http.stop(grace))
    await asyncio.gather(*stopping)  # the gate they share parks, then refuses, new calls
    await app.background.stop()
    unsettled = await app.service.drain(max(0.0, deadline - time.monotonic()))
    flush_budget = max(FLUSH_FLOOR_SECONDS, deadline - time.monotonic())
    spans_flushed = await asyncio.to_thread(app.telemetry.shutdown, flush_budget)
    if app.metrics_http is not None:
        app.metrics_http.shutdown()
    await app.store.close()
    log.info("shutdown_complete", unsettled_payments=unsettled, spans_flushed=spans_flushed)


def _exit_now(signum: int, log_writer: LogWriter | None) -> None:
    """A second SIGTERM or SIGINT while shutting down: one line, then exit 1 at once (no drain,
    no grace, no flush of spans)."""
    log.warning("shutdown_forced", signal=signal.Signals(signum).name, exit_status=1)
    if log_writer is not None:
        log_writer.flush(FLUSH_FLOOR_SECONDS)
    os._exit(1)


def _reload(keys: KeyRing | None, tls: ServerTls | None) -> None:
    """SIGHUP: the API keys, and the TLS files when TLS is on."""
    _reload_keys(keys)
    if tls is not None:
        tls.reload()


def _reload_keys(keys: KeyRing | None) -> None:
    """SIGHUP: re-read the API keys file (rotation, revocation). A bad file keeps the old keys
    and logs one error. Handled even without a file, so a stray SIGHUP never kills the server."""
    if keys is None:
        log.warning("api_keys_reload_skipped", reason="PAYMENTS_API_KEYS_FILE is not set")
    else:
        keys.reload()


async def migrate(settings: Settings) -> None:
    """`payments-server migrate`: apply pending migrations, then exit."""
    store = await open_store(settings, clock=SystemClock())
    await store.close()
    log.info("store_migrated", store=settings.store.redacted)


USAGE = "usage: payments-server [serve | migrate | config [--markdown] | keys new MERCHANT_ID]"


def main() -> None:
    if sys.argv[1:2] == ["keys"]:  # `payments-server keys new MERCHANT_ID`
        raise SystemExit(keys_main(sys.argv[2:]))
    command = sys.argv[1:]
    if command not in ([], ["serve"], ["migrate"], ["config"], ["config", "--markdown"]):
        print(USAGE, file=sys.stderr)
        raise SystemExit(2)
    try:
        if command[:1] == ["config"]:  # the effective settings, secrets redacted
            print(effective_settings(os.environ, markdown=command[1:] == ["--markdown"]), end="")
            return
        settings = Settings.from_env(os.environ)
        keys = KeyRing.load(settings.api_keys_file) if settings.api_keys_file else None
        tls = ServerTls.load(settings)
    except ConfigError as exc:
        print(f"payments-server: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    writer = configure_logging(settings)
    if not faulthandler.is_enabled():  # PYTHONFAULTHANDLER or a test runner may have done it
        faulthandler.enable(all_threads=True)
    if keys is not None:
        keys.warn_if_exposed()
    try:
        try:
            if command == ["migrate"]:
                asyncio.run(migrate(settings))
            else:
                asyncio.run(serve(settings, log_writer=writer, keys=keys, tls=tls))
        finally:
            writer.close(FLUSH_FLOOR_SECONDS)  # the log lines first, then any error line
    except (ConfigError, StoreOpenTimeoutError, SchemaTooNewError) as exc:
        # ConfigError: found only when serving (an address already in use); exit status 2 as
        # for any other invalid setting. A store that never opened or is too new: 1.
        print(f"payments-server: {exc}", file=sys.stderr)
        raise SystemExit(2 if isinstance(exc, ConfigError) else 1) from None
