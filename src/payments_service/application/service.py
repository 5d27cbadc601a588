"""The payments use cases: request a payment (idempotently) and read one back.

Processing model. The call that creates a payment asks the processor to charge it:

- the processor decided at once (an in-process processor: the port lets it return the
  `Outcome` itself): the call records it as the payment's first response and answers it. No
  task, future, wait or timer is involved: this is the path almost every payment takes, so it
  schedules no event-loop callback at all;
- the charge is pending (a processor that waits for a network, `simulate=slow`): it runs as a
  task, bounded by `settlement_timeout`, and the call waits for it for at most
  `processor_timeout` seconds. In time: the call records and answers the outcome (SUCCEEDED or
  FAILED). Not in time: the call records and answers PENDING, and a background settlement task
  records the outcome when the processor answers or `settlement_timeout` passes (then FAILED),
  so no payment stays PENDING forever. A processor exception also ends in FAILED, with the
  stack logged.

A client that cancels its call cannot leave a payment half-done: the cancelled call hands the
unfinished work to a settlement task, and recording is first-write-wins, so redoing a step
cannot change an answer already given. Replays of a key whose first call is still deciding wait
for that answer (bounded), then return it field for field.

A replay that finds a payment without a first answer whose creating call can no longer give
one (its store write failed during an outage, or its process died: `_orphaned`) finishes that
answer itself (`_take_over`), so a retry converges on the first call's payment within seconds
of the store's return, instead of waiting for the settlement lease and crash recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog
from opentelemetry import trace

from payments_service.application.null_observer import NullObserver
from payments_service.application.settlement import SettlementSupervisor, within
from payments_service.domain.errors import (
    IdempotencyKeyReusedError,
    PaymentNotFoundError,
    ResponsePendingError,
    ValidationError,
)
from payments_service.domain.model import Outcome, Payment, PaymentStatus
from payments_service.domain.validation import validate_payment_id, validate_payment_request

if TYPE_CHECKING:
    from collections.abc import Awaitable, Mapping

    from payments_service.application.order_limit import OrderAttempts
    from payments_service.domain.ports import (
        Clock,
        IdGenerator,
        PaymentObserver,
        PaymentProcessor,
        PaymentRepository,
    )

log = structlog.get_logger(__name__)

# A replay on another replica polls the shared store for the first answer, from 5 ms up to 100 ms.
FIRST_ANSWER_POLL_SECONDS = 0.005
# The creating call records its first answer within the processor deadline plus this margin.
FIRST_ANSWER_MARGIN_SECONDS = 1.0
SETTLE_SPAN = "payment.settle_in_background"  # the span of a settlement that outlived its call
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
        simulation: bool = True,
        order_attempts: OrderAttempts | None = None,
    ) -> None:
        self._repository = repository
        self._processor = processor
        self._clock = clock
        self._ids = ids
        self._processor_timeout = processor_timeout
        self._settlement_timeout = settlement_timeout
        self._observer: PaymentObserver = observer or NullObserver()
        self._tracer = tracer or trace.NoOpTracer()
        self._simulation = simulation  # off: the `simulate` metadata key is refused
        self._order_attempts = order_attempts  # None: new payments per order are not limited
        self._settlements = SettlementSupervisor()

    async def request_payment(
        self,
        *,
        merchant_id: str,
        amount_minor: int,
        currency: str,
        order_id: str,
        idempotency_key: str,
        metadata: Mapping[str, str],
    ) -> RequestPaymentResult:
        """Create a payment for `merchant_id`, or replay the one that merchant created with
        this idempotency key. Keys are scoped by merchant: another merchant's key is unrelated,
        so it neither replays nor conflicts (ALREADY_EXISTS only within one merchant)."""
        try:
            request = validate_payment_request(
                merchant_id=merchant_id,
                amount_minor=amount_minor,
                currency=currency,
                order_id=order_id,
                idempotency_key=idempotency_key,
                metadata=metadata,
                simulation=self._simulation,
            )
        except ValidationError as error:
            self._observer.rejected(merchant_id, error.violations)
            raise
        reservation = None
        if self._order_attempts is not None:  # RateLimitedError: nothing stored
            reservation = self._order_attempts.admit(
                merchant_id, order_id, idempotency_key, self._clock.monotonic()
            )
        now = self._clock.now()
        candidate = Payment(
            payment_id=self._ids.new_payment_id(),
            request=request,
            fingerprint=request.fingerprint(),
            created_at=now,
            updated_at=now,
            outcome=PROCESSING,
        )
        try:
            claim = await self._repository.claim(candidate)
        except asyncio.CancelledError:
            # A durable store may have committed the claim before the caller went away: finish
            # in the background (claiming the same candidate again is idempotent). It counts.
            if reservation is not None:
                reservation.commit()
            self._settlements.spawn(self._settle_after_cancelled_claim(candidate))
            raise
        except BaseException:
            if reservation is not None:
                reservation.release()
            raise
        if reservation is not None:
            if claim.created:
                reservation.commit()
            else:
                reservation.release()
        if not claim.created:
            return await self._replay(claim.payment, candidate.fingerprint)
        self._observer.created(candidate)
        # debug: the access line already carries payment_id; one info line per call is enough.
        log.debug("payment_created", payment_id=candidate.payment_id)
        payment = await self._decide_first_answer(candidate)
        assert payment.first_response is not None  # noqa: S101 - set by _first_answer
        self._observer.answered(payment, payment.first_response)
        return RequestPaymentResult(payment, payment.first_response, replayed=False)

    async def get_payment(self, merchant_id: str, payment_id: str) -> Payment:
        """The payment `payment_id` of `merchant_id`. Another merchant's payment is not found,
        exactly like an id nobody has: the answer must not reveal that it exists."""
        payment = await self._repository.get(merchant_id, validate_payment_id(payment_id))
        if payment is None:
            raise PaymentNotFoundError(payment_id)
        self._observer.looked_up(payment)
        return payment

    async def purge_expired(self, *, limit: int) -> int:
        """Forget up to `limit` payments whose retention has passed (the expiry timer's step)."""
        return await self._repository.purge_expired(limit=limit)

    async def drain(self, timeout: float) -> int:  # noqa: ASYNC109 - a budget, not a cancel
        """Wait up to `timeout` seconds for background settlements; return how many are left."""
        return await self._settlements.drain(timeout)

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
        # The first answer comes within processor_timeout; the margin covers scheduling.
        loop = asyncio.get_running_loop()
        wait = self._processor_timeout + FIRST_ANSWER_MARGIN_SECONDS
        deadline = loop.time() + wait
        answer = self._settlements.awaited_answer(payment.payment_id)
        if answer is not None:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(answer), timeout=wait)
        # Another process sharing the store owns the key: poll the store for its answer, scoped
        # by the payment's merchant like every read; or nobody can answer any more: take over.
        delay = FIRST_ANSWER_POLL_SECONDS
        latest: Payment | None = payment
        while True:
            if latest is not None and latest.first_response is not None:
                return latest
            if latest is not None and self._orphaned(latest):
                return await self._take_over(latest)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ResponsePendingError(payment.idempotency_key)
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.1)
            latest = await self._repository.get(payment.merchant_id, payment.payment_id)

    def _orphaned(self, payment: Payment) -> bool:
        """Whether the call that created `payment` can no longer record its first answer: no
        call of this process is deciding it, and the time that call had (the processor deadline
        plus the margin, from `created_at`) has passed. Its store write failed, or its process
        died."""
        if self._settlements.deciding(payment.payment_id):
            return False
        answered_by = payment.created_at + timedelta(
            seconds=self._processor_timeout + FIRST_ANSWER_MARGIN_SECONDS
        )
        return self._clock.now() >= answered_by

    async def _take_over(self, payment: Payment) -> Payment:
        """Give an orphaned payment (`_orphaned`) its first answer as its creating call would
        have: charge it and record the answer (first write wins). The processor charges once
        per payment id, so a charge the first call made is answered again, never repeated."""
        log.info("payment_first_answer_taken_over", payment_id=payment.payment_id)
        return await self._decide_first_answer(payment)

    async def _decide_first_answer(self, payment: Payment) -> Payment:
        """Charge `payment` and record its first answer in this call, while replays of its key
        in this process wait for it. If the caller goes away, a settlement task finishes what
        this call started, so the payment still gets its first response and its outcome."""
        payment_id = payment.payment_id
        self._settlements.expect_answer(payment_id)
        charge = self._start_charge(payment)
        deadline = asyncio.get_running_loop().time() + self._processor_timeout
        try:
            answered = await self._first_answer(payment, charge, deadline)
        except asyncio.CancelledError:
            self._settlements.spawn(self._finish_first_answer(payment, charge, deadline))
            raise
        except Exception as error:
            self._settlements.failed(payment_id, error)
            raise  # the error mapping logs it once
        self._settlements.answered(payment_id, answered)
        return answered

    async def _settle_after_cancelled_claim(self, candidate: Payment) -> None:
        claim = await self._repository.claim(candidate)
        if claim.payment.payment_id != candidate.payment_id or claim.payment.first_response:
            return  # another call's payment, or already answered
        self._settlements.expect_answer(candidate.payment_id)
        charge = self._start_charge(candidate)
        deadline = asyncio.get_running_loop().time() + self._processor_timeout
        await self._finish_first_answer(candidate, charge, deadline)

    async def _first_answer(self, payment: Payment, charge: Charge, deadline: float) -> Payment:
        """Record the first response: the outcome when the processor decided at once or a
        pending charge finished by `deadline` (loop time), else PENDING, with a background task
        to record the outcome later. Recording is first-write-wins, so running this again after
        a cancellation (`_finish_first_answer`) cannot change an answer already given."""
        payment_id = payment.payment_id
        if isinstance(charge, Outcome):
            return await self._record_first(payment_id, charge)
        outcome = await within(charge, deadline - asyncio.get_running_loop().time())
        if outcome is not None:
            return await self._record_first(payment_id, outcome)
        answered = await self._repository.record(
            payment_id, at=self._clock.now(), first_response=ACCEPTED_PENDING
        )
        self._settlements.spawn(self._settle_in_background(payment_id, charge))
        return answered

    async def _record_first(self, payment_id: str, outcome: Outcome) -> Payment:
        """Record `outcome` as the payment's outcome and its first response."""
        answered = await self._repository.record(
            payment_id, at=self._clock.now(), outcome=outcome, first_response=outcome
        )
        self._observer.settled(answered)
        return answered

    async def _finish_first_answer(self, payment: Payment, charge: Charge, deadline: float) -> None:
        payment_id = payment.payment_id
        try:
            answered = await self._first_answer(payment, charge, deadline)
        except asyncio.CancelledError:
            if not isinstance(charge, Outcome):
                charge.cancel()
            self._settlements.abandoned(payment_id)
            raise
        except Exception as error:
            self._settlements.failed(payment_id, error)
            raise  # the supervisor logs a failed task once
        self._settlements.answered(payment_id, answered)

    async def _settle_in_background(self, payment_id: str, charge: asyncio.Future[Outcome]) -> None:
        try:
            with self._tracer.start_as_current_span(
                SETTLE_SPAN, attributes={"payment.id": payment_id}
            ) as span:
                outcome = await charge
                settled = await self._repository.record(
                    payment_id, at=self._clock.now(), outcome=outcome
                )
                span.set_attribute("payment.status", settled.status.value)
        except asyncio.CancelledError:
            charge.cancel()
            raise
        self._observer.settled(settled)
        log.info("payment_settled", payment_id=payment_id, status=settled.status.value)

    def _start_charge(self, payment: Payment) -> Charge:
        """The processor's outcome when it decided at once, else its pending charge as a task
        bounded by `settlement_timeout` (`_charge`)."""
        try:
            charge = self._processor.charge(payment)
        except Exception:
            log.exception("processor_error", payment_id=payment.payment_id)
            return PROCESSOR_ERROR
        if isinstance(charge, Outcome):
            return _final(charge, payment)
        return asyncio.ensure_future(self._charge(payment, charge))

    async def _charge(self, payment: Payment, charge: Awaitable[Outcome]) -> Outcome:
        """A pending charge's final outcome; errors and hangs become FAILED, never an exception."""
        try:
            # asyncio.timeout, not wait_for: wait_for (3.11) wraps the call in another task.
            async with asyncio.timeout(self._settlement_timeout):
                outcome = await charge
        except TimeoutError:
            log.error("processor_timeout", payment_id=payment.payment_id)
            return PROCESSOR_TIMEOUT
        except Exception:
            log.exception("processor_error", payment_id=payment.payment_id)
            return PROCESSOR_ERROR
        return _final(outcome, payment)


# What the creating call waits on: the outcome itself, or the task of a pending charge.
Charge = Outcome | asyncio.Future[Outcome]


def _final(outcome: Outcome, payment: Payment) -> Outcome:
    """The processor's outcome if it is final; a processor that breaks the port's contract by
    answering PENDING is a processor error."""
    if not outcome.status.is_terminal:
        log.error("processor_non_final_outcome", payment_id=payment.payment_id)
        return PROCESSOR_ERROR
    return outcome
