"""A simulated payment processor whose behaviour is chosen by the request's metadata.

Rules (metadata key `simulate`, validated in the domain):

- no `simulate`: SUCCEEDED at once ("payment succeeded");
- `simulate=decline`: FAILED at once ("card declined by issuer (simulated)");
- `simulate=slow`: SUCCEEDED after `slow_delay` seconds. The default (2 s) is longer than the
  service's processor deadline (1 s), so RequestPayment answers PENDING and the payment settles
  in the background.

An outcome decided at once is returned as the `Outcome` itself (the port allows it): the
service then answers without a task, a wait or a timer. Only `slow` returns an awaitable.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING

from payments_service.domain.model import Outcome, PaymentStatus
from payments_service.domain.validation import SIMULATE_KEY

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from payments_service.domain.model import Payment

SUCCEEDED = Outcome(PaymentStatus.SUCCEEDED, "payment succeeded")
DECLINED = Outcome(PaymentStatus.FAILED, "card declined by issuer (simulated)")


class SimulatedProcessor:
    """Honours the port's idempotency guarantee the way a PSP does with an idempotency key:
    the charge of a payment id runs once; charging it again returns (or awaits) that charge.
    It remembers the last `remember` payment ids (a real PSP keeps them for days). The memory is
    the process's own, so only this process benefits: 10 000 (about 1 MiB) covers every charge
    still in flight at the service's rates; `make bench-soak` showed 100 000 as RSS growth."""

    def __init__(self, *, slow_delay: float = 2.0, remember: int = 10_000) -> None:
        self._slow_delay = slow_delay
        self._remember = remember
        # An outcome decided at once, or the shared future of a slow charge.
        self._charges: OrderedDict[str, Outcome | asyncio.Future[Outcome]] = OrderedDict()
        self.charges_made = 0

    def charge(self, payment: Payment) -> Outcome | Awaitable[Outcome]:
        charge = self._charges.get(payment.payment_id)
        if charge is None:
            charge = self._start(payment)
            self._charges[payment.payment_id] = charge
            if len(self._charges) > self._remember:
                self._charges.popitem(last=False)
        if isinstance(charge, Outcome):
            return charge
        # shield: a caller that gives up must not cancel the charge others share.
        return asyncio.shield(charge)

    def _start(self, payment: Payment) -> Outcome | asyncio.Future[Outcome]:
        """The charge: decided at once (no task, no future: the path almost every call takes),
        or for `simulate=slow` a task that answers after `slow_delay`."""
        self.charges_made += 1
        mode = payment.request.metadata.get(SIMULATE_KEY)
        if mode == "decline":
            return DECLINED
        if mode == "slow":
            return asyncio.ensure_future(self._slow())
        return SUCCEEDED

    async def _slow(self) -> Outcome:
        await asyncio.sleep(self._slow_delay)
        return SUCCEEDED
