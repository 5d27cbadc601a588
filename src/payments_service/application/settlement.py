"""The settlement supervisor: the background work of payments, apart from the use cases.

It owns two things the use cases need but are not about payments:

- the **first answers being decided**: while the call that created a payment is deciding its
  answer, replays of the same key (in this process) wait on a future instead of polling the
  store. The future is made only when a replay asks for it: the creating call makes none;
- the **background tasks** (a PENDING payment's settlement, work handed over by a cancelled
  call): `drain` waits for them at shutdown, and a task that fails is logged once.

It also holds `within`, the cheap timed wait the creating call uses on a pending charge, and
`charged`, a charge's outcome whether the processor decided it at once or not.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from payments_service.domain.model import Outcome

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from payments_service.domain.model import Payment
    from payments_service.domain.ports import PaymentProcessor

log = structlog.get_logger(__name__)

T = TypeVar("T")


class SettlementSupervisor:
    def __init__(self) -> None:
        # payment id -> the future replays wait on, or None while no replay has asked
        self._answers: dict[str, asyncio.Future[Payment] | None] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def expect_answer(self, payment_id: str) -> None:
        """`payment_id`'s first answer is being decided in this process: replays wait for it.
        Every call to it ends with `answered`, `failed` or `abandoned`."""
        self._answers[payment_id] = None

    def deciding(self, payment_id: str) -> bool:
        """Whether `payment_id`'s first answer is being decided in this process (asking makes
        no future)."""
        return payment_id in self._answers

    def awaited_answer(self, payment_id: str) -> asyncio.Future[Payment] | None:
        """The future of a payment's first answer while it is being decided in this process
        (made on the first ask), else None."""
        if payment_id not in self._answers:
            return None
        answer = self._answers[payment_id]
        if answer is None:
            answer = self._answers[payment_id] = asyncio.get_running_loop().create_future()
        return answer

    def answered(self, payment_id: str, payment: Payment) -> None:
        answer = self._answers.pop(payment_id, None)
        if answer is not None and not answer.done():
            answer.set_result(payment)

    def failed(self, payment_id: str, error: BaseException) -> None:
        """Fail the future of waiting replays, without an "exception was never retrieved"
        warning when none waits any more."""
        answer = self._answers.pop(payment_id, None)
        if answer is not None and not answer.done():
            answer.set_exception(error)
            answer.exception()

    def abandoned(self, payment_id: str) -> None:
        answer = self._answers.pop(payment_id, None)
        if answer is not None:
            answer.cancel()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as a supervised background task."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    async def drain(self, timeout: float) -> int:  # noqa: ASYNC109 - a budget, not a cancel
        """Wait up to `timeout` seconds for the background tasks; return how many are left."""
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        return len(pending)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("settlement_failed", exc_info=exc)


async def charged(processor: PaymentProcessor, payment: Payment) -> Outcome:
    """The processor's outcome for `payment`, awaited only when it was not decided at once."""
    charge = processor.charge(payment)
    return charge if isinstance(charge, Outcome) else await charge


async def within(task: asyncio.Future[T], timeout: float) -> T | None:  # noqa: ASYNC109
    """The task's result if it completes within `timeout` seconds, else None (it keeps running).

    One future, one timer and one done-callback: `asyncio.wait` would add a set, a second
    callback and a waiter per call on the hot path, and `wait_for` would cancel the task."""
    if not task.done() and timeout > 0:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def wake(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        timer = loop.call_later(timeout, wake)
        task.add_done_callback(wake)
        try:
            await waiter
        finally:
            timer.cancel()
            task.remove_done_callback(wake)
    if not task.done():
        return None
    return task.result()
