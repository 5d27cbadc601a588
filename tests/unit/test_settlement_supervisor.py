"""The first answers being decided: replays wait on a future made only when one asks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from payments_service.application.service import PROCESSING
from payments_service.application.settlement import SettlementSupervisor
from payments_service.domain.model import Payment, PaymentRequest
from tests.fakes import EPOCH

REQUEST = PaymentRequest(100, "EUR", "o", "k", merchant_id="default")
PAYMENT = Payment("pay_1", REQUEST, REQUEST.fingerprint(), EPOCH, EPOCH, PROCESSING)


async def test_no_future_exists_until_a_replay_asks() -> None:
    supervisor = SettlementSupervisor()
    assert supervisor.awaited_answer("pay_1") is None  # nothing being decided
    assert not supervisor.deciding("pay_1")
    supervisor.expect_answer("pay_1")
    assert supervisor.deciding("pay_1")
    answer = supervisor.awaited_answer("pay_1")
    assert answer is not None
    assert supervisor.awaited_answer("pay_1") is answer  # every replay waits on the same one
    supervisor.answered("pay_1", PAYMENT)
    assert await answer is PAYMENT
    assert supervisor.awaited_answer("pay_1") is None
    assert not supervisor.deciding("pay_1")


def fail(supervisor: SettlementSupervisor) -> None:
    supervisor.failed("pay_1", RuntimeError("store down"))


def abandon(supervisor: SettlementSupervisor) -> None:
    supervisor.abandoned("pay_1")


ENDINGS: dict[str, tuple[Callable[[SettlementSupervisor], None], type[BaseException]]] = {
    "failed": (fail, RuntimeError),
    "abandoned": (abandon, asyncio.CancelledError),
}


@pytest.mark.parametrize("asked", [True, False])
@pytest.mark.parametrize("ending", list(ENDINGS))
async def test_a_first_answer_that_fails_or_is_abandoned_ends_the_waiting_replays(
    ending: str, asked: bool
) -> None:
    end, raised = ENDINGS[ending]
    supervisor = SettlementSupervisor()
    supervisor.expect_answer("pay_1")
    answer = supervisor.awaited_answer("pay_1") if asked else None
    end(supervisor)
    if answer is not None:
        with pytest.raises(raised):
            await answer
    assert supervisor.awaited_answer("pay_1") is None
