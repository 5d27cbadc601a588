"""Shared by the benchmark's helper servers (floor, proto, HTTP floor and OTLP sink): announce
the bound port on stdout the way `payments-server` does, and serve until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grpc


def announce(event: str, **fields: Any) -> None:
    """One JSON line on stdout, flushed: `{"event": "server_started", "port": N, ...}`."""
    print(json.dumps({"event": event, **fields}), flush=True)


async def until_signalled() -> None:
    """Return on the first SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def serve_until_signalled(server: grpc.aio.Server, port: int, **fields: Any) -> None:
    """Start `server`, announce `port` (and `fields`), and stop it (no grace) on SIGTERM or
    SIGINT."""
    await server.start()
    announce("server_started", port=port, pid=os.getpid(), **fields)
    await until_signalled()
    await server.stop(None)
