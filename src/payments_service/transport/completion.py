"""What both observation points (gRPC's interceptor and the HTTP adapter) note on a call's record
when the call ends: the error table's answer to a failure, and what the others returned.

One function each, so the two transports cannot drift: a field the record gains for failures is
noted for both.
"""

from __future__ import annotations

import time

import structlog

from payments_service.observability.record import CallRecord, reported_payment
from payments_service.security.principal import current_principal
from payments_service.transport.error_table import Answer, answer_for

log = structlog.get_logger(__name__)


def complete(record: CallRecord) -> None:
    """Note what the others returned (the caller, the payment) and the duration."""
    principal = current_principal()
    record.merchant_id = None if principal is None else principal.merchant_id
    record.payment = reported_payment()
    record.duration = time.perf_counter() - record.started


def note_answer(record: CallRecord, error: Exception) -> Answer:
    """The error table's answer to `error`, noted on the record."""
    answer = answer_for(error)
    if answer.unexpected:
        log.error("unhandled_exception", rpc_method=record.method.full_method, exc_info=error)
        record.error = error
    record.code = answer.code
    record.log_level = answer.log_level
    record.invalid_fields = answer.invalid_fields
    record.error_kind = answer.error_kind
    record.signals = answer.signals
    record.log_every = answer.log_every
    return answer
