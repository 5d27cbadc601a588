"""The settlement supervisor: the background work of payments, apart from the use cases.

It owns two things the use cases need but are not about payments:

- the **first-answer futures**: while the call that created a payment is deciding its answer,
  replays of the same key (in this process) wait on its future instead of polling the store;
- the **background tasks** (a PENDING payment's settlement, work handed over by a cancelled
  call): `drain` waits for them at shutdown, and a task that fails is logged once.

It also holds `within`, the cheap timed wait the creating call uses on the processor's charge.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from payments_service.domain.model import Payment

log = structlog.get_logger(__name__)

T = TypeVar("T")


class SettlementSupervisor:
    def __init__(self) -> None:
        self._answers: dict[str, asyncio.Future[Payment]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def expect_answer(self, payment_id: str) -> asyncio.Future[Payment]:
        """Register the future that replays of `payment_id` wait on until its first answer."""
        answer: asyncio.Future[Payment] = asyncio.get_running_loop().create_future()
        self._answers[payment_id] = answer
        return answer

    def awaited_answer(self, payment_id: str) -> asyncio.Future[Payment] | None:
        """The first-answer future of a payment still deciding in this process, if any."""
        return self._answers.get(payment_id)

    def answered(self, payment_id: str, answer: asyncio.Future[Payment], payment: Payment) -> None:
        self._answers.pop(payment_id, None)
        if not answer.done():
            answer.set_result(payment)

    def failed(
        self, payment_id: str, answer: asyncio.Future[Payment], error: BaseException
    ) -> None:
        """Fail the future for waiting replays, without an "exception was never retrieved"
        warning when none waits."""
        self._answers.pop(payment_id, None)
        if not answer.done():
            answer.set_exception(error)
            answer.exception()

    def abandoned(self, payment_id: str, answer: asyncio.Future[Payment]) -> None:
        self._answers.pop(payment_id, None)
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
