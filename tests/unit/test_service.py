"""The application service: idempotency, processing model and processor failure handling."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from payments_service.adapters.simulated_processor import DECLINED, SUCCEEDED, SimulatedProcessor
from payments_service.adapters.stores.memory import InMemoryPaymentRepository
from payments_service.application.service import (
    ACCEPTED_PENDING,
    PROCESSING,
    PROCESSOR_ERROR,
    PROCESSOR_TIMEOUT,
    PaymentService,
)
from payments_service.bootstrap import build_service
from payments_service.domain.errors import (
    IdempotencyKeyReusedError,
    PaymentNotFoundError,
    ResponsePendingError,
)
from payments_service.domain.model import Payment, PaymentRequest, PaymentStatus
from payments_service.domain.ports import PaymentProcessor, PaymentRepository
from tests.conftest import TEST_SETTINGS
from tests.fakes import (
    FailingProcessor,
    FakeClock,
    HangingProcessor,
    NonFinalProcessor,
    RaisingProcessor,
    SequentialIds,
    UndecidedProcessor,
)
from tests.loop_callbacks import scheduled_callbacks
from tests.polling import until


def request(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of a valid RequestPayment, with `overrides`."""
    fields: dict[str, Any] = {
        "merchant_id": "default",
        "amount_minor": 1250,
        "currency": "EUR",
        "order_id": "order-42",
        "idempotency_key": "key-1",
        "metadata": {},
    }
    fields.update(overrides)
    return fields


def service_with(
    processor: PaymentProcessor,
    clock: FakeClock,
    repository: PaymentRepository | None = None,
    **timeouts: float,
) -> PaymentService:
    """A service on the given ports; `timeouts` are its constructor's (processor_timeout,
    settlement_timeout), defaulting to the suite's settings."""
    return PaymentService(
        # `is None`, not `or`: an empty repository is falsy (it has __len__).
        repository=InMemoryPaymentRepository(ttl=timedelta(hours=1), clock=clock)
        if repository is None
        else repository,
        processor=processor,
        clock=clock,
        ids=SequentialIds(),
        processor_timeout=timeouts.get(
            "processor_timeout", TEST_SETTINGS.processor_timeout_seconds
        ),
        settlement_timeout=timeouts.get("settlement_timeout", 30.0),
    )


@pytest.mark.parametrize(
    ("metadata", "outcome"),
    [({}, SUCCEEDED), ({"simulate": "decline"}, DECLINED), ({"note": "hi"}, SUCCEEDED)],
)
async def test_a_fast_processor_answer_is_the_response(
    service: PaymentService, metadata: dict[str, str], outcome: Any
) -> None:
    result = await service.request_payment(**request(metadata=metadata))
    assert (result.response, result.replayed) == (outcome, False)
    stored = await service.get_payment("default", result.payment.payment_id)
    assert stored.outcome == outcome


@pytest.mark.parametrize("metadata", [{}, {"simulate": "decline"}])
async def test_an_outcome_decided_at_once_is_answered_without_an_event_loop_callback(
    service: PaymentService, metadata: dict[str, str]
) -> None:
    """No task, future wait or timer when the processor decided at once (the memory store's
    operations do not suspend either): the path almost every payment takes."""
    with scheduled_callbacks() as scheduled:
        result = await service.request_payment(**request(metadata=metadata))
    assert result.response.status.is_terminal
    assert scheduled.total == 0


async def test_only_a_pending_charge_pays_for_a_task_and_the_timeout_timers(
    service: PaymentService,
) -> None:
    with scheduled_callbacks() as scheduled:
        result = await service.request_payment(**request(metadata={"simulate": "slow"}))
    assert result.response == ACCEPTED_PENDING
    assert scheduled.timers >= 2  # the processor deadline and the settlement timeout
    assert scheduled.soon >= 1  # the charge's task


async def test_same_key_and_payload_replays_the_original_response_field_for_field(
    service: PaymentService, clock: FakeClock
) -> None:
    first = await service.request_payment(**request())
    clock.advance(30)
    again = await service.request_payment(**request())
    assert again.replayed
    assert again.payment.payment_id == first.payment.payment_id
    assert again.payment.created_at == first.payment.created_at
    assert again.response == first.response


@pytest.mark.parametrize(
    "change",
    [
        {"amount_minor": 1251},
        {"currency": "USD"},
        {"order_id": "order-43"},
        {"metadata": {"note": "different"}},
    ],
)
async def test_same_key_with_a_different_payload_is_a_conflict_that_changes_nothing(
    service: PaymentService, change: dict[str, Any]
) -> None:
    first = await service.request_payment(**request())
    with pytest.raises(IdempotencyKeyReusedError) as caught:
        await service.request_payment(**request(**change))
    assert caught.value.payment_id == first.payment.payment_id
    # The stored payment is still the one the first call answered, field for field.
    assert await service.get_payment("default", first.payment.payment_id) == first.payment


async def test_after_the_ttl_the_same_key_starts_a_new_payment(
    service: PaymentService, clock: FakeClock
) -> None:
    first = await service.request_payment(**request())
    clock.advance(TEST_SETTINGS.idempotency_ttl_seconds)
    second = await service.request_payment(**request())
    assert not second.replayed
    assert second.payment.payment_id != first.payment.payment_id
    with pytest.raises(PaymentNotFoundError):
        await service.get_payment("default", first.payment.payment_id)


async def test_slow_processing_answers_pending_then_settles_in_the_background(
    service: PaymentService,
) -> None:
    result = await service.request_payment(**request(metadata={"simulate": "slow"}))
    assert result.response == ACCEPTED_PENDING
    payment_id = result.payment.payment_id

    async def settled() -> bool:
        return (await service.get_payment("default", payment_id)).status is PaymentStatus.SUCCEEDED

    await until(settled)
    replay = await service.request_payment(**request(metadata={"simulate": "slow"}))
    assert replay.response == ACCEPTED_PENDING, "a replay returns the original response"


async def test_concurrent_requests_with_one_new_key_create_one_payment(
    service: PaymentService, ids: SequentialIds
) -> None:
    results = await asyncio.gather(
        *(service.request_payment(**request(metadata={"simulate": "slow"})) for _ in range(60))
    )
    assert len({r.payment.payment_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert {r.response for r in results} == {ACCEPTED_PENDING}
    assert ids.issued == 60  # every caller drew a candidate id; only one was stored


@pytest.mark.parametrize(
    ("processor", "outcome"),
    [
        (FailingProcessor(), PROCESSOR_ERROR),
        (NonFinalProcessor(), PROCESSOR_ERROR),
        (RaisingProcessor(), PROCESSOR_ERROR),
        (UndecidedProcessor(), PROCESSOR_ERROR),
    ],
)
async def test_a_processor_error_fails_the_payment_instead_of_losing_it(
    clock: FakeClock, processor: PaymentProcessor, outcome: Any
) -> None:
    service = service_with(processor, clock)
    result = await service.request_payment(**request())
    assert result.response == outcome
    assert (await service.get_payment("default", result.payment.payment_id)).outcome == outcome


async def test_a_hanging_processor_is_cut_off_by_the_settlement_timeout(clock: FakeClock) -> None:
    processor = HangingProcessor()
    service = service_with(processor, clock, settlement_timeout=0.4)
    result = await service.request_payment(**request())
    assert result.response == ACCEPTED_PENDING

    async def failed() -> bool:
        payment = await service.get_payment("default", result.payment.payment_id)
        return payment.outcome == PROCESSOR_TIMEOUT

    await until(failed)
    assert await service.drain(1) == 0


async def test_a_cancelled_first_call_still_records_its_answer_for_replays(
    clock: FakeClock, ids: SequentialIds
) -> None:
    repository = InMemoryPaymentRepository(ttl=timedelta(hours=1), clock=clock)
    service = build_service(TEST_SETTINGS, clock=clock, ids=ids, repository=repository)
    call = asyncio.ensure_future(service.request_payment(**request(metadata={"simulate": "slow"})))

    async def claimed() -> bool:
        return len(repository) == 1

    await until(claimed)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    replay = await service.request_payment(**request(metadata={"simulate": "slow"}))
    assert replay.replayed
    assert replay.response == ACCEPTED_PENDING


async def test_a_replay_whose_first_answer_is_unknown_is_aborted_not_hung(
    clock: FakeClock,
) -> None:
    repository = InMemoryPaymentRepository(ttl=timedelta(hours=1), clock=clock)
    service = service_with(SimulatedProcessor(), clock, repository)
    # As if another process claimed the key and died before recording its answer.
    orphan = PaymentRequest(**request())
    now = clock.now()
    await repository.claim(
        Payment("pay_" + "f" * 32, orphan, orphan.fingerprint(), now, now, PROCESSING)
    )
    with pytest.raises(ResponsePendingError):
        await service.request_payment(**request())


async def test_drain_reports_settlements_still_running(clock: FakeClock) -> None:
    processor = HangingProcessor()
    service = service_with(processor, clock, processor_timeout=0.01)
    await service.request_payment(**request())
    assert await service.drain(0.05) == 1
    processor.release.set()
    assert await service.drain(2) == 0
