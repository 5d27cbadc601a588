"""Whether the store can be reached: what readiness (grpc.health.v1) follows during an outage.

Decided from a cheap signal, never by a probe per health check: nothing is asked of the store
while its operations succeed. A store operation that fails because the store cannot be reached
(`StoreUnavailableError`: a refused or lost connection, the lender's failed connect or timeout,
a busy SQLite file) calls `suspect`, and the store is pinged once, at once (`ping`: a new
PostgreSQL connection and `SELECT 1`, a SQLite read):

- the ping succeeds: nothing changes (one lost connection, e.g. a terminated backend, while the
  database itself answers);
- it fails: the store is unreachable. `on_change(False)` (readiness NOT_SERVING), one error
  line `store_unreachable`, and the ping is repeated with backoff and jitter (`Backoff`: 0.1 s
  doubling to 2 s) until one succeeds: `on_change(True)`, one info line `store_reachable`.

One ping at a time; a failure within `RECHECK_SECONDS` of a successful ping is only counted, so
a flood of failures costs at most one ping per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import structlog

from payments_service.adapters.stores.backoff import Backoff
from payments_service.adapters.stores.errors import cause_of

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

log = structlog.get_logger(__name__)

RECHECK_SECONDS = 1.0


class StoreHealth:
    def __init__(
        self,
        ping: Callable[[], Awaitable[None]],
        *,
        on_change: Callable[[bool], Awaitable[None]],
        timeout: float,
        backoff: Backoff | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`ping` raises unless the store answers; `on_change(reachable)` is awaited on each
        change; `timeout` bounds one ping."""
        self._ping = ping
        self._on_change = on_change
        self._timeout = timeout
        self._backoff = backoff or Backoff()
        self._monotonic = monotonic
        self.reachable = True
        self._closed = False
        self._checking: asyncio.Task[None] | None = None
        self._checked_at = -RECHECK_SECONDS  # when a ping last succeeded (monotonic)

    @property
    def checking(self) -> bool:
        """Whether a check is running (a ping, or the backoff before the next one)."""
        return self._checking is not None

    async def checked(self) -> None:
        """Wait until the running check, if any, has ended."""
        if self._checking is not None:
            await asyncio.wait({self._checking})

    def suspect(self, error: BaseException) -> None:
        """An operation failed because the store could not be reached: ping it, unless a ping
        is already running or one succeeded less than `RECHECK_SECONDS` ago."""
        if self._checking is not None or self._closed:
            return
        if self._monotonic() - self._checked_at < RECHECK_SECONDS:
            return
        self._checking = asyncio.get_running_loop().create_task(self._check(error))

    async def close(self) -> None:
        """Stop pinging, for good (shutdown)."""
        self._closed = True
        checking, self._checking = self._checking, None
        if checking is not None:
            checking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checking

    async def _check(self, suspected: BaseException) -> None:
        try:
            down_since: float | None = None
            while True:
                try:
                    async with asyncio.timeout(self._timeout):
                        await self._ping()
                    break
                except Exception as error:
                    if down_since is None:
                        down_since = self._monotonic()
                        self.reachable = False
                        log.error(
                            "store_unreachable",
                            cause=cause_of(suspected),
                            ping=cause_of(error),
                        )
                        await self._on_change(False)
                await asyncio.sleep(self._backoff.next_delay())
            self._backoff.reset()
            self._checked_at = self._monotonic()
            if down_since is not None:
                self.reachable = True
                log.info(
                    "store_reachable",
                    unreachable_seconds=round(self._checked_at - down_since, 3),
                )
                await self._on_change(True)
        finally:
            self._checking = None
