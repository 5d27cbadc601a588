"""A TCP fault proxy for tests: put it between a client (the store adapter) and a real server,
and break the network between them on demand.

`FaultProxy(host, port)` listens on 127.0.0.1, on a port of its own (`port`, bound to 0), and
forwards every connection to the server. Its mode applies to every connection, open or new:

- `passing()`: bytes flow both ways (the start);
- `resetting()`: every open connection is reset (RST, as a dead peer or a restarted server does)
  and every new one is accepted and reset at once: the database is gone;
- `stalling()`: connections stay open but no byte moves either way, held and not lost (a network
  partition): new ones are accepted and held too. `passing()` delivers what was held.

It runs on the test's event loop; `close()` resets what is left. `connections` counts the
connections it accepted, so a test can see a client reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

_CHUNK = 65536


class FaultProxy:
    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._resetting = False
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        return self

    def passing(self) -> None:
        self._resetting = False
        self._flowing.set()

    def stalling(self) -> None:
        self._resetting = False
        self._flowing.clear()

    def resetting(self) -> None:
        self._resetting = True
        self._flowing.set()
        for writer in list(self._open):
            _reset(writer)
        self._open.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.resetting()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self._resetting:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            _reset(writer)
            return
        if self._resetting:  # reset while connecting
            _reset(writer)
            _reset(up_writer)
            return
        self._open |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pump(source, sink, (writer, up_writer)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        try:
            async for chunk in _chunks(source):
                await self._flowing.wait()  # stalled: held here, delivered on passing()
                if sink.is_closing():
                    break
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        for writer in pair:  # one side ended: end the other too, as TCP would
            self._open.discard(writer)
            if not writer.is_closing():
                writer.close()


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while chunk := await reader.read(_CHUNK):
        yield chunk


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN: SO_LINGER on, with a zero timeout."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
