"""The expiry timer: evicts expired payments even when no new payment arrives.

Without it a store only forgets on claims, so after a burst the expired payments stay in memory
for as long as traffic is quiet. The sweeper asks the store to purge every `interval` seconds,
in batches of `limit` with a yield to the event loop between batches, so a large backlog never
stalls the calls being served. A failing purge is logged and retried on the next tick: the
timer never dies and never takes the loop down. A store that cannot be reached, is full or
read-only is not logged again here at each tick: its health check and the calls report it
(docs/store-outages.md); only the unexpected is logged with its stack.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import structlog

from payments_service.domain.errors import StoreError

log = structlog.get_logger(__name__)


class Purger(Protocol):
    async def purge_expired(self, *, limit: int) -> int: ...


class ExpirySweeper:
    def __init__(self, store: Purger, *, interval: float = 1.0, limit: int = 1_000) -> None:
        if interval <= 0 or limit <= 0:
            raise ValueError("interval and limit must be positive")
        self._store = store
        self._interval = interval
        self._limit = limit
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self) -> int:
        """Purge batch after batch until one comes back short; return how many went."""
        total = 0
        while True:
            purged = await self._store.purge_expired(limit=self._limit)
            total += purged
            if purged < self._limit:
                return total
            await asyncio.sleep(0)  # let the calls in flight run between batches

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                purged = await self.sweep_once()
            except StoreError as error:
                log.debug("expiry_sweep_skipped", store_error=error.kind)
                continue
            except Exception:
                log.exception("expiry_sweep_failed")
                continue
            if purged:
                log.debug("expired_payments_purged", count=purged)
