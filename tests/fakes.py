"""Deterministic test doubles for the ports. Fakes with real behaviour, not mocks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from payments_service.domain.model import Outcome, PaymentStatus

if TYPE_CHECKING:
    from payments_service.domain.model import Payment

EPOCH = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told to. `advance` moves the wall clock and the monotonic
    clock together, as real time does; `step_wall_clock` moves only the wall clock, as an NTP
    step or an operator's `date -s` does."""

    def __init__(self, start: datetime = EPOCH) -> None:
        self.current = start
        self.monotonic_seconds = 1_000.0  # arbitrary origin, as time.monotonic()'s is

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.monotonic_seconds

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
        self.monotonic_seconds += seconds

    def step_wall_clock(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class SequentialIds:
    def __init__(self) -> None:
        self.issued = 0

    def new_payment_id(self) -> str:
        self.issued += 1
        return f"pay_{self.issued:032x}"


class FailingProcessor:
    """A processor whose network call blows up."""

    async def charge(self, payment: Payment) -> Outcome:
        raise ConnectionError("acquirer unreachable")


class RaisingProcessor:
    """An in-process processor that fails before deciding (a bug in the adapter)."""

    def charge(self, payment: Payment) -> Outcome:
        raise RuntimeError("simulator bug")


class UndecidedProcessor:
    """An in-process processor that breaks its contract by deciding PENDING at once."""

    def charge(self, payment: Payment) -> Outcome:
        return Outcome(PaymentStatus.PENDING, "not decided")


class HangingProcessor:
    """A processor that never answers until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.called = asyncio.Event()

    async def charge(self, payment: Payment) -> Outcome:
        self.called.set()
        await self.release.wait()
        return Outcome(PaymentStatus.SUCCEEDED, "late success")


class NonFinalProcessor:
    """A processor that breaks its contract by answering PENDING."""

    async def charge(self, payment: Payment) -> Outcome:
        return Outcome(PaymentStatus.PENDING, "still thinking")


class ExplodingRepository:
    """A repository whose every operation fails unexpectedly (a bug, a lost connection)."""

    async def claim(self, candidate: Payment) -> object:
        raise RuntimeError("database is on fire: secret-dsn=postgres://u:p@h/db")

    async def get(self, payment_id: str) -> Payment | None:
        raise RuntimeError("database is on fire: secret-dsn=postgres://u:p@h/db")

    async def record(
        self,
        payment_id: str,
        *,
        at: datetime,
        outcome: Outcome | None = None,
        first_response: Outcome | None = None,
    ) -> Payment:
        raise RuntimeError("unreachable in these tests")

    async def purge_expired(self, *, limit: int) -> int:
        raise RuntimeError("database is on fire: secret-dsn=postgres://u:p@h/db")
