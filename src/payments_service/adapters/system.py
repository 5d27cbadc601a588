"""Production implementations of the Clock and IdGenerator ports."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class RandomPaymentIds:
    """`pay_` + a random UUID4 as 32 hex digits: unguessable, so ids leak nothing about volume."""

    def new_payment_id(self) -> str:
        return f"pay_{uuid.uuid4().hex}"
