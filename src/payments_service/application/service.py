"""The payments use cases: request a payment (idempotently) and read one back.

Processing model. The call that creates a payment starts one *settlement task* per payment and
waits for its first answer for at most `processor_timeout` seconds:

- the processor answers in time: the payment is SUCCEEDED or FAILED and that is the response;
- it does not: the response is PENDING and the task keeps going in the background until the
  processor answers or `settlement_timeout` passes (then FAILED), so no payment stays PENDING
  forever. A processor exception also ends in FAILED, with the stack logged.

The task, not the RPC handler, records the first response and the outcome, so a client that
cancels its call cannot leave a payment half-done. Replays of a key whose first call is still
deciding wait for that answer (bounded), then return it field for field.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog
from opentelemetry import trace

from payments_service.application.observer import NullObserver
from payments_service.domain.errors import (
    IdempotencyKeyReusedError,
    PaymentNotFoundError,
    ResponsePendingError,
    ValidationError,
)
from payments_service.domain.model import Outcome, Payment, PaymentStatus
from payments_service.domain.validation import validate_payment_id, validate_payment_request

if TYPE_CHECKING:
    from collections.abc import Coroutine, Mapping
    from typing import Any

    from payments_service.application.observer import PaymentObserver
    from payments_service.domain.ports import (
        Clock,
        IdGenerator,
        PaymentProcessor,
        PaymentRepository,
    )

log = structlog.get_logger(__name__)

PROCESSING = Outcome(PaymentStatus.PENDING, "payment is being processed")
ACCEPTED_PENDING = Outcome(
    PaymentStatus.PENDING, "payment accepted; the processor is still working, poll GetPayment"
)
PROCESSOR_ERROR = Outcome(PaymentStatus.FAILED, "payment processor error; nothing was charged")
PROCESSOR_TIMEOUT = Outcome(
    PaymentStatus.FAILED, "payment processor timed out; nothing was charged"
)


@dataclass(frozen=True, slots=True)
class RequestPaymentResult:
    """What RequestPayment answers: the payment, the response it gave first, and whether this
    call was an idempotent replay of an earlier one."""

    payment: Payment
    response: Outcome
    replayed: bool


class PaymentService:
    def __init__(
        self,
        *,
        repository: PaymentRepository,
        processor: PaymentProcessor,
        clock: Clock,
        ids: IdGenerator,
        processor_timeout: float = 1.0,
        settlement_timeout: float = 30.0,
        observer: PaymentObserver | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self._repository = repository
        self._processor = processor
        self._clock = clock
        self._ids = ids
        self._processor_timeout = processor_timeout
        self._settlement_timeout = settlement_timeout
        self._observer: PaymentObserver = observer or NullObserver()
        self._tracer = tracer or trace.NoOpTracer()
        self._first_answers: dict[str, asyncio.Future[Payment]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def request_payment(
        self,
        *,
        amount_minor: int,
        currency: str,
        order_id: str,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> RequestPaymentResult:
        try:
            request = validate_payment_request(
                amount_minor=amount_minor,
                currency=currency,
                order_id=order_id,
                idempotency_key=idempotency_key,
                metadata=metadata,
            )
        except ValidationError as error:
            self._observer.rejected(error.violations)
            raise
        now = self._clock.now()
        candidate = Payment(
            payment_id=self._ids.new_payment_id(),
            request=request,
            fingerprint=request.fingerprint(),
            created_at=now,
            updated_at=now,
            outcome=PROCESSING,
        )
        claim = await self._repository.claim(candidate)
        if not claim.created:
            return await self._replay(claim.payment, candidate.fingerprint)
        self._observer.created(candidate)
        # debug: the access line already carries payment_id; one info line per call is enough.
        log.debug("payment_created", payment_id=candidate.payment_id)
        answer: asyncio.Future[Payment] = asyncio.get_running_loop().create_future()
        self._first_answers[candidate.payment_id] = answer
        self._spawn(self._settle(candidate, answer))
        # shield: if this call is cancelled, the settlement task still records the answer.
        payment = await asyncio.shield(answer)
        assert payment.first_response is not None  # noqa: S101 - set by _settle before resolving
        self._observer.answered(payment, payment.first_response)
        return RequestPaymentResult(payment, payment.first_response, replayed=False)

    async def get_payment(self, payment_id: str) -> Payment:
        payment = await self._repository.get(validate_payment_id(payment_id))
        if payment is None:
            raise PaymentNotFoundError(payment_id)
        self._observer.looked_up(payment)
        return payment

    async def purge_expired(self, *, limit: int) -> int:
        """Forget up to `limit` payments whose retention has passed (the expiry timer's step)."""
        return await self._repository.purge_expired(limit=limit)

    async def drain(self, timeout: float) -> int:  # noqa: ASYNC109 - a budget, not a cancel
        """Wait up to `timeout` seconds for background settlements; return how many are left."""
        if not self._tasks:
            return 0
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        return len(pending)

    async def _replay(self, payment: Payment, fingerprint: str) -> RequestPaymentResult:
        if payment.fingerprint != fingerprint:
            self._observer.conflicted(payment)
            raise IdempotencyKeyReusedError(payment.idempotency_key, payment.payment_id)
        if payment.first_response is None:
            payment = await self._await_first_answer(payment)
        assert payment.first_response is not None  # noqa: S101 - _await_first_answer ensures it
        self._observer.replayed(payment)
        log.debug("payment_replayed", payment_id=payment.payment_id)
        return RequestPaymentResult(payment, payment.first_response, replayed=True)

    async def _await_first_answer(self, payment: Payment) -> Payment:
        answer = self._first_answers.get(payment.payment_id)
        if answer is not None:
            # The first answer comes within processor_timeout; the margin covers scheduling.
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(
                    asyncio.shield(answer), timeout=self._processor_timeout + 1.0
                )
        # Answered meanwhile (or by another process sharing the store)?
        latest = await self._repository.get(payment.payment_id)
        if latest is not None and latest.first_response is not None:
            return latest
        raise ResponsePendingError(payment.idempotency_key)

    async def _settle(self, payment: Payment, answer: asyncio.Future[Payment]) -> None:
        payment_id = payment.payment_id
        charge = asyncio.ensure_future(self._charge(payment))
        try:
            done, _ = await asyncio.wait({charge}, timeout=self._processor_timeout)
            if done:
                outcome = charge.result()
                answered = await self._repository.record(
                    payment_id, at=self._clock.now(), outcome=outcome, first_response=outcome
                )
            else:
                answered = await self._repository.record(
                    payment_id, at=self._clock.now(), first_response=ACCEPTED_PENDING
                )
            answer.set_result(answered)
            if done:
                self._observer.settled(answered)
                return
            with self._tracer.start_as_current_span(
                "payment.settle_in_background", attributes={"payment.id": payment_id}
            ) as span:
                outcome = await charge
                settled = await self._repository.record(
                    payment_id, at=self._clock.now(), outcome=outcome
                )
                span.set_attribute("payment.status", settled.status.value)
            self._observer.settled(settled)
            log.info("payment_settled", payment_id=payment_id, status=settled.status.value)
        except asyncio.CancelledError:
            answer.cancel()
            charge.cancel()
            raise
        except Exception as exc:
            if answer.done():
                raise  # a background failure: _task_done logs it
            # The waiting call receives it, and the error mapping logs it once.
            answer.set_exception(exc)
        finally:
            self._first_answers.pop(payment_id, None)

    async def _charge(self, payment: Payment) -> Outcome:
        """The processor's final outcome; errors and hangs become FAILED, never an exception."""
        try:
            outcome = await asyncio.wait_for(
                self._processor.charge(payment), timeout=self._settlement_timeout
            )
        except TimeoutError:
            log.error("processor_timeout", payment_id=payment.payment_id)
            return PROCESSOR_TIMEOUT
        except Exception:
            log.exception("processor_error", payment_id=payment.payment_id)
            return PROCESSOR_ERROR
        if not outcome.status.is_terminal:
            log.error("processor_non_final_outcome", payment_id=payment.payment_id)
            return PROCESSOR_ERROR
        return outcome

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("settlement_failed", exc_info=exc)
