"""The simulated processor keeps the port's idempotency guarantee: one charge per payment id."""

from __future__ import annotations

import asyncio

from payments_service.adapters.simulated_processor import DECLINED, SUCCEEDED, SimulatedProcessor
from payments_service.application.service import PROCESSING
from payments_service.application.settlement import charged
from payments_service.domain.model import Payment, PaymentRequest
from tests.fakes import EPOCH


def payment(payment_id: str, **metadata: str) -> Payment:
    request = PaymentRequest(100, "EUR", "o", f"key-{payment_id}", metadata, merchant_id="default")
    return Payment(payment_id, request, request.fingerprint(), EPOCH, EPOCH, PROCESSING)


async def test_charging_a_payment_again_returns_the_first_outcome_without_a_second_charge() -> None:
    processor = SimulatedProcessor()
    declined = payment("pay_1", simulate="decline")
    assert processor.charge(declined) is DECLINED  # decided at once: no awaitable
    assert processor.charge(declined) is DECLINED
    assert processor.charge(payment("pay_2")) is SUCCEEDED
    assert processor.charges_made == 2


async def test_concurrent_charges_of_one_payment_share_one_charge() -> None:
    processor = SimulatedProcessor(slow_delay=0.05)
    slow = payment("pay_1", simulate="slow")
    outcomes = await asyncio.gather(*(charged(processor, slow) for _ in range(10)))
    assert outcomes == [SUCCEEDED] * 10
    assert processor.charges_made == 1


async def test_only_the_most_recent_payment_ids_are_remembered() -> None:
    processor = SimulatedProcessor(remember=2)
    for payment_id in ("pay_1", "pay_2", "pay_3", "pay_1"):
        processor.charge(payment(payment_id))
    assert processor.charges_made == 4  # pay_1 was forgotten, so charged again
