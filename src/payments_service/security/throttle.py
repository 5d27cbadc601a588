"""Token buckets: the rate limits on callers (per merchant) and on failed authentications (per
peer address).

A bucket holds up to `burst` tokens and refills at `rate` tokens per second; a request takes one
token or is refused with the time until one is there. `Buckets` keeps one bucket per key and
bounds how many it keeps: past `max_keys`, the least recently used bucket is dropped (it was
the idlest, so forgetting it costs at most one extra burst to that key) and the drop is counted.
No caller input can grow it further. Time is `time.monotonic()` seconds, passed in (tests pass
their own), and nothing awaits, so one event loop needs no lock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    tokens: float
    updated: float  # monotonic seconds of the last refill


class Buckets:
    """One token bucket per key, at most `max_keys` of them."""

    def __init__(self, *, rate: float, burst: int, max_keys: int) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate, burst and max_keys must be positive")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.evicted = 0  # buckets dropped to stay within max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float) -> float:
        """Take one token for `key`: 0.0 if it was there, else the seconds until one is."""
        bucket = self._bucket(key, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def wait(self, key: str, now: float) -> float:
        """The seconds until `key` has a token (0.0: now), without taking one."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def _bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets.popitem(last=False)
                self.evicted += 1
            bucket = self._buckets[key] = TokenBucket(float(self.burst), now)
            return bucket
        self._buckets.move_to_end(key)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        return bucket
