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
  found closed when released or lent, is terminated; its slot goes to the longest waiter, who
  opens a new connection in it (reserved: a caller arriving meanwhile does not take it);
- a cancelled waiter never loses a connection or slot it was handed as it was cancelled;
- a failed connect is not retried at once: until its backoff (`backoff.Backoff`: 0.1 s doubling
  to 2 s, jittered) has passed, an acquire that would have to open a connection fails at once
  with `NoConnectionError`, so an unreachable database costs a failed call, not a connection
  attempt per call; a successful connect, or `reachable()`, resets the backoff;
- an acquire that waits longer than `wait_timeout` for a connection fails with
  `NoConnectionError` (a slot or connection handed to it as it times out is passed on);
- `close()` closes idle connections at once and lent ones when they come back; lending after
  that raises `LenderClosedError`.

The connection type is generic (`Lendable`): tests lend fakes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from payments_service.adapters.stores.backoff import Backoff

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


class Lendable(Protocol):
    def is_closed(self) -> bool: ...
    def terminate(self) -> None: ...
    async def close(self, *, timeout: float | None = None) -> None: ...  # noqa: ASYNC109 - asyncpg's


C = TypeVar("C", bound=Lendable)


class LenderClosedError(RuntimeError):
    """The store is closing: no connection is lent any more."""


class NoConnectionError(Exception):
    """No connection could be lent: the last connect failed and the next one waits for its
    backoff, or none came free within the wait timeout."""


class ConnectionLender(Generic[C]):
    def __init__(
        self,
        connect: Callable[[], Awaitable[C]],
        *,
        max_size: int,
        wait_timeout: float | None = None,
        backoff: Backoff | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._connect = connect
        self._max_size = max_size
        self._wait_timeout = wait_timeout
        self._backoff = backoff or Backoff()
        self._monotonic = monotonic
        self._reconnect_at = 0.0  # after a failed connect: no new one before this
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
        if self._closed:
            raise LenderClosedError("the PostgreSQL store is closed")
        if self._idle:
            connection = self._idle.pop()
            if not connection.is_closed():
                return connection
            connection.terminate()  # closed while idle (server restart, idle timeout)
            return await self._open()  # in its slot
        if self._size < self._max_size:
            self._size += 1
            return await self._open()
        try:
            async with asyncio.timeout(self._wait_timeout):
                handed = await self._wait()
        except TimeoutError:
            raise NoConnectionError(
                f"no connection came free within {self._wait_timeout:g} s"
            ) from None
        if handed is not None:
            return handed
        if self._closed:  # handed a slot just before close()
            self._free_slot()
            raise LenderClosedError("the PostgreSQL store is closed")
        return await self._open()  # a slot, already counted in size

    def reachable(self) -> None:
        """The database answered a connection opened elsewhere (the store's health check): the
        next connect need not wait for the backoff of an earlier failure."""
        self._backoff.reset()
        self._reconnect_at = 0.0

    def release(self, connection: C, *, reusable: bool = True) -> None:
        if not reusable or connection.is_closed():
            connection.terminate()
            self._free_slot()
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

    async def _open(self) -> C:
        """A new connection in a slot the caller holds (counted in size), unless the last
        connect failed and its backoff has not passed."""
        try:
            wait = self._reconnect_at - self._monotonic()
            if wait > 0:
                raise NoConnectionError(f"the last connect failed; the next in {wait:.2f} s")
            connection = await self._connect()
        except BaseException as error:
            self._free_slot()
            if isinstance(error, Exception) and not isinstance(error, NoConnectionError):
                self._reconnect_at = self._monotonic() + self._backoff.next_delay()
            raise
        self.reachable()
        return connection

    async def _wait(self) -> C | None:
        waiter: asyncio.Future[C | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            # Handed a connection or a slot in the same loop turn as the cancellation: pass it
            # on, or it would be lost.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                handed = waiter.result()
                if handed is None:
                    self._free_slot()
                else:
                    self._hand(handed)
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def _hand(self, connection: C) -> None:
        """Give `connection` to the longest waiter; else keep it idle (closed: close it)."""
        if self._closed:
            connection.terminate()
            self._size -= 1
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def _free_slot(self) -> None:
        """A slot whose connection is gone: to the longest waiter, who opens a connection in it
        (it stays counted, so nobody arriving meanwhile takes it); else it is free."""
        while self._waiters and not self._closed:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._size -= 1
