"""Admission: what a call must pass before any work is done for it.

- `ConcurrencyLimit` (load shedding) and `ShutdownGate`: see below;
- `MerchantRateLimit`: the per-merchant token bucket, asked right after authentication.

Load shedding: at most `limit` unary calls run at once in this process.

The observation interceptor asks `try_enter()` for every unary call except health checks
(probes must answer while the server is saturated). A call past the limit is answered
RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo` through the one error table, and, because the
refusal happens inside the observed path, it has a request id, an access line, a span and
`grpc_server_handled_total{grpc_code="ResourceExhausted"}`. The counts are plain integers read
at scrape time (`payments_rpcs_in_flight`, `payments_rpcs_rejected_total`): the hot path does
no metric work.

The event loop is single-threaded, so no lock is needed: nothing awaits between the check and
the increment.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from payments_service.domain.errors import RateLimitedError

if TYPE_CHECKING:
    from collections.abc import Callable

    from payments_service.security.throttle import Buckets


class ConcurrencyLimit:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the concurrency limit must be at least 1")
        self.limit = limit
        self.in_flight = 0
        self.rejected = 0

    def try_enter(self) -> bool:
        """Admit one call (True) or count a refusal (False). Every admitted call must `leave()`."""
        if self.in_flight >= self.limit:
            self.rejected += 1
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        self.in_flight -= 1


class ShutdownGate:
    """The last step before grpc's stop: new calls are parked, then refused UNAVAILABLE.

    grpc-core's stop answers CANCELLED to every call it has received but not yet handed to the
    application (`RealRequestMatcher::ZombifyPending` in grpc's src/core/server/server.cc),
    and under load there are many: the audit saw 10 of 16. Clients do not retry CANCELLED.
    `RunningServer.stop` therefore closes this gate first: for a short window every new call
    reaching a handler waits here (costing nothing), so grpc-core's queue empties into our
    hands and the clients' outstanding calls are parked instead of re-sent; then grpc's stop
    begins (GOAWAY), and only after that are the parked calls answered UNAVAILABLE, which
    clients retry, on another replica. Health checks are never parked.
    scripts/shutdown_cancelled_probe.py measures both orders on a bare grpc.aio server.
    """

    def __init__(self) -> None:
        self.closed = False
        self.parked = 0
        self._released = asyncio.Event()

    def close(self) -> None:
        self.closed = True

    def release(self) -> None:
        self._released.set()

    async def wait(self) -> None:
        """Park one call until `release()`."""
        self.parked += 1
        await self._released.wait()


class MerchantRateLimit:
    """A token bucket per merchant on every payments call (never on health checks): past it
    the call is refused RESOURCE_EXHAUSTED with the time until a token is there. The buckets
    are bounded by the merchants the keys file lists (and capped: `security.throttle`)."""

    def __init__(self, buckets: Buckets, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets = buckets
        self._clock = clock
        self._limit = f"{buckets.rate:g} calls/s per merchant, burst {buckets.burst}"

    def admit(self, merchant_id: str) -> None:
        """Take one token for `merchant_id`, or raise RateLimitedError."""
        wait = self._buckets.take(merchant_id, self._clock())
        if wait > 0:
            raise RateLimitedError("merchant", self._limit, wait)
