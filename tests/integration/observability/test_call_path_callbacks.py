"""What a call costs the event loop inside the server, end to end through a real channel.

Each new payment has its own order, or the per-order limit (`PAYMENTS_ORDER_ATTEMPTS_PER_MINUTE`)
would refuse some of them.

Counted: the callbacks and timers scheduled while the server runs a call (from the observation
point on, where the call's record becomes current). The yardstick is `Health`, which does no
work: grpc.aio schedules its own callbacks for any call (the RPC task's done callback and a
wake-up; its wake-ups after I/O come from its completion queue, outside the call). A payment
whose processor outcome is known at once, a replay and a read must cost the loop no more than
that: no task, future wait or timer of ours.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.observability.record import current_call
from tests.conftest import Api, payment_request
from tests.integration.observability.conftest import Observed
from tests.loop_callbacks import Scheduled, scheduled_callbacks

CALLS = 20


async def scheduled_per_call(call: Callable[[int], Awaitable[Any]]) -> Scheduled:
    """Per call, rounded: grpc may schedule the last callbacks of a call after its client saw
    the answer, so one call's may fall just inside or outside the counted window."""
    await call(-1)  # warm-up: handlers are wrapped on the first call of a method
    with scheduled_callbacks(only_if=lambda: current_call() is not None) as scheduled:
        for n in range(CALLS):
            await call(n)
    return Scheduled(round(scheduled.soon / CALLS), round(scheduled.timers / CALLS))


async def test_grpc_own_callbacks_per_call_are_the_yardstick(api: Api) -> None:
    health = await scheduled_per_call(lambda n: api.stub.Health(pb.HealthRequest()))
    assert health == Scheduled(soon=2, timers=0)


@pytest.mark.parametrize("metadata", [{}, {"simulate": "decline"}])
async def test_a_new_payment_decided_at_once_costs_the_loop_what_health_does(
    api: Api, metadata: dict[str, str]
) -> None:
    health = await scheduled_per_call(lambda n: api.stub.Health(pb.HealthRequest()))
    new = await scheduled_per_call(
        lambda n: api.stub.RequestPayment(
            payment_request(idempotency_key=f"k-{n}", order_id=f"o-{n}", metadata=metadata)
        )
    )
    assert new == health


async def test_replays_and_reads_cost_the_loop_what_health_does(api: Api) -> None:
    created = await api.stub.RequestPayment(payment_request())
    health = await scheduled_per_call(lambda n: api.stub.Health(pb.HealthRequest()))
    replay = await scheduled_per_call(lambda n: api.stub.RequestPayment(payment_request()))
    read = await scheduled_per_call(
        lambda n: api.stub.GetPayment(pb.GetPaymentRequest(payment_id=created.payment_id))
    )
    assert replay == read == health


async def test_every_signal_on_adds_nothing_to_the_loop(observed: Observed) -> None:
    """A span, an access line and the metrics per call: handed to the exporter's and the log
    writer's threads, never scheduled on the event loop."""
    stub = observed.api.stub
    health = await scheduled_per_call(lambda n: stub.Health(pb.HealthRequest()))
    new = await scheduled_per_call(
        lambda n: stub.RequestPayment(payment_request(idempotency_key=f"k-{n}", order_id=f"o-{n}"))
    )
    assert new == health
    assert len(observed.server_spans()) == CALLS + 1
