"""The delays between attempts to reach a store: at startup (`factory.open_store`), when the
PostgreSQL lender reconnects (`connections.ConnectionLender`), and while the store's health is
being rechecked (`health.StoreHealth`).

The first delay is `FIRST_DELAY_SECONDS`, each next one twice the last, up to
`MAX_DELAY_SECONDS`; each is jittered to between half and all of itself, so processes that lost
their database at the same moment do not reconnect in step.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

FIRST_DELAY_SECONDS = 0.1
MAX_DELAY_SECONDS = 2.0


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with jitter; `random` is injectable so tests are deterministic."""

    first: float = FIRST_DELAY_SECONDS
    maximum: float = MAX_DELAY_SECONDS
    random: Callable[[], float] = random.random
    _next: float = field(init=False)

    def __post_init__(self) -> None:
        self._next = self.first

    def next_delay(self) -> float:
        """The delay before the next attempt; the one after it doubles (up to the maximum)."""
        delay = self._next
        self._next = min(delay * 2, self.maximum)
        return delay * (0.5 + self.random() / 2)

    def reset(self) -> None:
        """An attempt succeeded: the next failure starts from the first delay again."""
        self._next = self.first
