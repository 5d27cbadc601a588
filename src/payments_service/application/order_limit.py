"""At most N *new* payments per (merchant, order_id) in a sliding minute.

This is what stops a buggy client from creating twenty payments for one order with twenty
fresh idempotency keys. A replay is not a new payment and never counts:

- each (merchant, order) has a window of the new payments of the last `window` seconds: when
  each was admitted, and a hash of its idempotency key;
- `admit` reserves a place for the request's key before the store's claim, so concurrent
  requests cannot overshoot (nothing awaits between the check and the reservation); the
  caller then `commit`s it if the claim created a payment, or `release`s it if the claim found
  an earlier one (a replay) or failed;
- a request whose key is already in the window is a replay of a payment counted there: it is
  admitted without a place, however full the window is;
- a request over the limit whose key is not in the window is refused with the seconds until
  the oldest place frees up. A replay of a key older than the window, for an order that had N
  new payments in the last minute on this replica, is refused too: it is admitted once the
  window slides (the RetryInfo says when). The window never reads the store.

Memory is bounded twice: a window holds at most N places, and at most `max_windows` windows
are kept; past that the least recently used window, the idlest, is dropped and counted
(`evicted`): forgetting it costs at most one more window's worth of new payments to its order.
Windows are per process: with R replicas behind a round-robin balancer an order may get up to
R x N new payments a minute (docs/calling-reliably.md).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict, deque
from dataclasses import dataclass

from payments_service.domain.errors import RateLimitedError

WINDOW_SECONDS = 60.0


@dataclass(slots=True)
class _Place:
    at: float  # monotonic seconds when admitted
    key: int  # hash of the idempotency key
    committed: bool = False


class Reservation:
    """A place in one order's window, held while the request claims its key."""

    __slots__ = ("_place", "_window")

    def __init__(self, window: deque[_Place], place: _Place) -> None:
        self._window = window
        self._place = place

    def commit(self) -> None:
        """The claim created a payment: the place counts for the rest of the window."""
        self._place.committed = True

    def release(self) -> None:
        """The claim found an earlier payment, or failed: nothing new, the place is freed."""
        if not self._place.committed:
            with contextlib.suppress(ValueError):  # the window was dropped meanwhile
                self._window.remove(self._place)


class OrderAttempts:
    def __init__(self, *, per_window: int, max_windows: int, window: float = WINDOW_SECONDS):
        if per_window < 1 or max_windows < 1 or window <= 0:
            raise ValueError("per_window, max_windows and window must be positive")
        self.per_window = per_window
        self.max_windows = max_windows
        self.window = window
        self.evicted = 0  # windows dropped to stay within max_windows
        self._windows: OrderedDict[tuple[str, str], deque[_Place]] = OrderedDict()

    def __len__(self) -> int:
        """Windows tracked now."""
        return len(self._windows)

    def admit(
        self, merchant_id: str, order_id: str, idempotency_key: str, now: float
    ) -> Reservation | None:
        """A reservation for a possibly new payment, None for a replay of a key counted in the
        window; RateLimitedError when the window is full and the key is not in it."""
        scope = (merchant_id, order_id)
        key = hash(idempotency_key)
        window = self._windows.get(scope)
        if window is None:
            window = self._new_window(scope)
        else:
            self._windows.move_to_end(scope)
            while window and window[0].at <= now - self.window:
                window.popleft()
        if any(place.key == key for place in window):
            return None
        if len(window) >= self.per_window:
            raise RateLimitedError(
                "order",
                f"{self.per_window} new payments per order per {self.window:g} s",
                window[0].at + self.window - now,
            )
        place = _Place(now, key)
        window.append(place)
        return Reservation(window, place)

    def _new_window(self, scope: tuple[str, str]) -> deque[_Place]:
        if len(self._windows) >= self.max_windows:
            self._windows.popitem(last=False)
            self.evicted += 1
        window: deque[_Place] = deque()
        self._windows[scope] = window
        return window
