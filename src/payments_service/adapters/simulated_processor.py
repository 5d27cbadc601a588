"""A simulated payment processor whose behaviour is chosen by the request's metadata.

Rules (metadata key `simulate`, validated in the domain):

- no `simulate`: SUCCEEDED at once ("payment succeeded");
- `simulate=decline`: FAILED at once ("card declined by issuer (simulated)");
- `simulate=slow`: SUCCEEDED after `slow_delay` seconds. The default (2 s) is longer than the
  service's processor deadline (1 s), so RequestPayment answers PENDING and the payment settles
  in the background.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING

from payments_service.domain.model import Outcome, PaymentStatus
from payments_service.domain.validation import SIMULATE_KEY

if TYPE_CHECKING:
    from payments_service.domain.model import Payment

SUCCEEDED = Outcome(PaymentStatus.SUCCEEDED, "payment succeeded")
DECLINED = Outcome(PaymentStatus.FAILED, "card declined by issuer (simulated)")


class SimulatedProcessor:
    """Honours the port's idempotency guarantee the way a PSP does with an idempotency key:
    the charge of a payment id runs once; charging it again returns (or awaits) that charge.
    It remembers the last `remember` payment ids (a real PSP keeps them for days)."""

    def __init__(self, *, slow_delay: float = 2.0, remember: int = 100_000) -> None:
        self._slow_delay = slow_delay
        self._remember = remember
        self._charges: OrderedDict[str, asyncio.Future[Outcome]] = OrderedDict()
        self.charges_made = 0

    async def charge(self, payment: Payment) -> Outcome:
        charge = self._charges.get(payment.payment_id)
        if charge is None:
            charge = asyncio.ensure_future(self._charge(payment))
            self._charges[payment.payment_id] = charge
            if len(self._charges) > self._remember:
                self._charges.popitem(last=False)
        return await asyncio.shield(charge)

    async def _charge(self, payment: Payment) -> Outcome:
        self.charges_made += 1
        mode = payment.request.metadata.get(SIMULATE_KEY)
        if mode == "decline":
            return DECLINED
        if mode == "slow":
            await asyncio.sleep(self._slow_delay)
        return SUCCEEDED
