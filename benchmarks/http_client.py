"""A minimal HTTP/1.1 keep-alive client for the load generator: one connection per loop.

The load generator must measure the server, not itself. aiohttp's client spent 0.53 to 0.63 ms
of CPU per request here and its sequential requests took far longer than that CPU (2026-12-07,
`GET /v1/health` against `benchmarks.http_floor_server` on another core, one connection, 300
requests, three runs on the busy machine: p50 2.1 to 3.1 ms, against 0.4 to 0.6 ms for a raw
socket), and `http` rounds with it left the server idle most of the time. This client
writes each request in one `write` and reads the answer by its `Content-Length`, which is all
the payments listener and the HTTP floor send.
"""

from __future__ import annotations

import asyncio


class HttpConnection:
    """One keep-alive connection; `request` sends and reads one exchange at a time."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """(status, body) of one request; reconnects when the server closed the connection."""
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self._host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self._writer.write(head.encode() + body)
        answer = await self._reader.readuntil(b"\r\n\r\n")
        lines = answer.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"connection" and value.strip().lower() == b"close":
                close = True
        payload = await self._reader.readexactly(length)
        if close:
            await self.close()
        return status, payload

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
