"""A repository that stands in for a durable store while the server connects to it.

The server listens (health NOT_SERVING) before the store is open, so probes and clients get an
answer instead of a refused connection; until `attach`, every operation raises
`StoreNotReadyError` (UNAVAILABLE, which clients retry). Every store goes through it, the memory
store too: that one is attached as soon as it is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from payments_service.domain.errors import StoreNotReadyError

if TYPE_CHECKING:
    from datetime import datetime

    from payments_service.domain.model import Outcome, Payment
    from payments_service.domain.ports import Claim, PaymentRepository


class PendingRepository:
    def __init__(self) -> None:
        self._store: PaymentRepository | None = None

    def attach(self, store: PaymentRepository) -> None:
        self._store = store

    def _ready(self) -> PaymentRepository:
        if self._store is None:
            raise StoreNotReadyError
        return self._store

    async def claim(self, candidate: Payment) -> Claim:
        return await self._ready().claim(candidate)

    async def get(self, merchant_id: str, payment_id: str) -> Payment | None:
        return await self._ready().get(merchant_id, payment_id)

    async def record(
        self,
        payment_id: str,
        *,
        at: datetime,
        outcome: Outcome | None = None,
        first_response: Outcome | None = None,
    ) -> Payment:
        return await self._ready().record(
            payment_id, at=at, outcome=outcome, first_response=first_response
        )

    async def purge_expired(self, *, limit: int) -> int:
        return await self._ready().purge_expired(limit=limit) if self._store is not None else 0
