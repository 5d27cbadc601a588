"""The reporter protocol: how a completed call becomes signals.

This is go-grpc-middleware v2's `Reporter` idea. One interceptor observes each call (creates its
`CallRecord`, times it once, fixes its final code) and hands the record to small reporters, each
turning it into one signal: the span (`tracing.SpanReporter`), the access-log line
(`logs.AccessLogReporter`) and the metrics (`metrics.MetricsReporter`). A reporter cannot read a
wrong code or a different duration: there is one record, completed before any reporter sees it.

Reporters run on the event loop, inside the call: they must be cheap and must never raise (the
interceptor contains a failure, logs it and carries on with the other reporters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from payments_service.calls import CallRecord


class Reporter(Protocol):
    def call_started(self, record: CallRecord) -> None:
        """The call entered the server's handler (its request id and peer are known)."""

    def call_finished(self, record: CallRecord) -> None:
        """The call is complete: code, duration and payment fields are final."""
