"""The reporter protocol: how a completed call becomes signals.

This is go-grpc-middleware v2's `Reporter` idea. One observation point per transport observes
each call (creates its `CallRecord`, times it once, fixes its final code) and hands the record
to small reporters, each turning it into one signal: the span (`tracing.SpanReporter`), the
access-log line (`logs.AccessLogReporter`) and the metrics (`metrics.MetricsReporter`). A
reporter cannot read a wrong code or a different duration: there is one record, completed before
any reporter sees it, and reporters only read it.

Reporters run on the event loop, inside the call: they must be cheap. `Reporters` runs them and
contains a failing one (logged, never raised into the call), so the others still report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import structlog

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from payments_service.observability.record import CallRecord

log = structlog.get_logger(__name__)


class Reporter(Protocol):
    def call_started(self, record: CallRecord) -> None:
        """The call entered the server's handler (its request id and peer are known)."""

    def call_finished(self, record: CallRecord) -> None:
        """The call is complete: code, duration and payment fields are final."""


class Reporters:
    """A fixed set of reporters, run in order for every call of one method."""

    __slots__ = ("_finished", "_started")

    def __init__(self, reporters: Sequence[Reporter]) -> None:
        self._started = tuple(reporter.call_started for reporter in reporters)
        self._finished = tuple(reporter.call_finished for reporter in reporters)

    def started(self, record: CallRecord) -> None:
        _run(self._started, record)

    def finished(self, record: CallRecord) -> None:
        _run(self._finished, record)


def _run(callbacks: tuple[Callable[[CallRecord], None], ...], record: CallRecord) -> None:
    for callback in callbacks:
        try:
            callback(record)
        except Exception:
            log.exception("reporter_failed", reporter=getattr(callback, "__qualname__", "?"))
