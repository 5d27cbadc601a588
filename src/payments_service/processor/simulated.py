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
from typing import TYPE_CHECKING

from payments_service.domain.model import Outcome, PaymentStatus
from payments_service.domain.validation import SIMULATE_KEY

if TYPE_CHECKING:
    from payments_service.domain.model import Payment

SUCCEEDED = Outcome(PaymentStatus.SUCCEEDED, "payment succeeded")
DECLINED = Outcome(PaymentStatus.FAILED, "card declined by issuer (simulated)")


class SimulatedProcessor:
    def __init__(self, *, slow_delay: float = 2.0) -> None:
        self._slow_delay = slow_delay

    async def charge(self, payment: Payment) -> Outcome:
        mode = payment.request.metadata.get(SIMULATE_KEY)
        if mode == "decline":
            return DECLINED
        if mode == "slow":
            await asyncio.sleep(self._slow_delay)
        return SUCCEEDED
