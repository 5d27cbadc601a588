"""Counting what a piece of code asks the event loop to do: callbacks and timers.

Every task step, future wake-up and timer of asyncio goes through the running loop's
`call_soon` or `call_at` (`call_later` calls `call_at`; the C Task and Future call the loop's
`call_soon` by name). `scheduled_callbacks` shadows both on the running loop with counting
wrappers for the duration of a `with` block, so a test can pin how many a call path costs.
`only_if` narrows the count to the callbacks scheduled while it is true (e.g. inside a call).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Scheduled:
    soon: int = 0  # call_soon: task steps, future callbacks
    timers: int = 0  # call_at / call_later

    @property
    def total(self) -> int:
        return self.soon + self.timers


@contextlib.contextmanager
def scheduled_callbacks(only_if: Callable[[], bool] = lambda: True) -> Iterator[Scheduled]:
    loop = asyncio.get_running_loop()
    counts = Scheduled()
    call_soon, call_at = loop.call_soon, loop.call_at

    def counting_call_soon(callback: Any, *args: Any, context: Any = None) -> asyncio.Handle:
        if only_if():
            counts.soon += 1
        return call_soon(callback, *args, context=context)

    def counting_call_at(
        when: float, callback: Any, *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        if only_if():
            counts.timers += 1
        return call_at(when, callback, *args, context=context)

    loop.call_soon = counting_call_soon  # type: ignore[method-assign,assignment]
    loop.call_at = counting_call_at  # type: ignore[method-assign,assignment]
    try:
        yield counts
    finally:
        del loop.call_soon, loop.call_at  # the instance attributes: the methods show again
