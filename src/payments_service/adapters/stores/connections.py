"""A minimal connection pool for the PostgreSQL store: connections lent one operation at a time.

Why not asyncpg's Pool: measured on this machine, one acquire/release pair of `asyncpg.Pool`
costs about 40 µs of client CPU (a proxy object, a release shielded in a new task, a reset, an
inactivity timer), half as much again as the query's own client work, and the store pays it
1.7 times per call of the bench mix. This store needs none of that machinery: it leaves no
session state on a connection (no LISTEN, cursor, SET or open transaction), and a connection it
cannot trust is dropped, not repaired. What is kept:

- at most `max_size` connections, opened on demand (the store opens the first at startup);
- a released connection goes straight to the longest waiter, else back to the idle stack (LIFO:
  the most recently used, warm connection is lent next);
- a connection released as not reusable (an operation was cancelled or failed mid-protocol), or
  found closed, is terminated, and its slot goes to a waiter, who opens a new one;
- a cancelled waiter never loses a connection it was handed as it was cancelled;
- `close()` closes idle connections at once and lent ones when they come back; lending after
  that raises `LenderClosedError`.

The connection type is generic (`Lendable`): tests lend fakes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


class Lendable(Protocol):
    def is_closed(self) -> bool: ...
    def terminate(self) -> None: ...
    async def close(self, *, timeout: float | None = None) -> None: ...  # noqa: ASYNC109 - asyncpg's


C = TypeVar("C", bound=Lendable)


class LenderClosedError(RuntimeError):
    """The store is closing: no connection is lent any more."""


class ConnectionLender(Generic[C]):
    def __init__(self, connect: Callable[[], Awaitable[C]], *, max_size: int) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._connect = connect
        self._max_size = max_size
        self._size = 0  # open connections, lent or idle
        self._idle: list[C] = []
        # None handed to a waiter: a slot was freed, open a new connection.
        self._waiters: collections.deque[asyncio.Future[C | None]] = collections.deque()
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def max_size(self) -> int:
        return self._max_size

    @property
    def waiting(self) -> int:
        """Acquires waiting for a connection (every one is lent and max_size are open)."""
        return len(self._waiters)

    async def acquire(self) -> C:
        while True:
            if self._closed:
                raise LenderClosedError("the PostgreSQL store is closed")
            if self._idle:
                return self._idle.pop()
            if self._size < self._max_size:
                self._size += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._size -= 1
                    self._hand(None)
                    raise
            connection = await self._wait()
            if connection is not None:
                return connection

    def release(self, connection: C, *, reusable: bool = True) -> None:
        if not reusable or self._closed or connection.is_closed():
            connection.terminate()
            self._size -= 1
            self._hand(None)
            return
        self._hand(connection)

    async def close(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - per connection
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(LenderClosedError("the PostgreSQL store is closed"))
        idle, self._idle = self._idle, []
        for connection in idle:
            self._size -= 1
            try:
                await connection.close(timeout=timeout)
            except Exception:  # a connection that cannot close cleanly is cut
                connection.terminate()

    async def _wait(self) -> C | None:
        waiter: asyncio.Future[C | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            # Handed a connection (or a slot) in the same loop turn as the cancellation: pass
            # it on, or it would be lost.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._hand(waiter.result())
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _hand(self, connection: C | None) -> None:
        """Give `connection` (or, for None, a free slot) to the longest waiter; else keep it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if connection is not None:
            self._idle.append(connection)
