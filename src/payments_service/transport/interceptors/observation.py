"""The one observation point of every unary call.

For each call this interceptor, placed directly inside opentelemetry-instrumentation-grpc's
interceptor (which starts the SERVER span and continues a caller's `traceparent`):

1. creates the call's `CallRecord` (observability's; this interceptor is its one writer) and
   starts its clock: once;
2. accepts the caller's `x-request-id` when it is safe, else makes one, and returns it in the
   response *trailers* (answers and errors alike): an error is then a trailers-only response,
   the one a gRPC client may retry transparently, and no separate header batch is paid (a
   header needs `send_initial_metadata`, a batch of its own before the response;
   ARCHITECTURE.md, "Where the request id travels");
3. decodes the request itself, so bytes that do not parse are answered INVALID_ARGUMENT (with a
   fixed message) inside the observed path, with a request id, an access line, metrics and a
   span, instead of UNKNOWN from grpc before any interceptor ran;
4. sheds the call with RESOURCE_EXHAUSTED when the process is at its concurrency limit
   (`transport.admission`; never health checks), and parks then refuses new calls while
   the server is stopping (`ShutdownGate`);
5. runs the handler (authentication included: the `AuthInterceptor` runs inside) and answers
   any exception through the one error table (`transport.error_table.answer_for`); a
   cancelled call is CANCELLED, or DEADLINE_EXCEEDED when the client's deadline had passed;
6. collects what the others *returned* rather than wrote: the caller's principal
   (`security.principal`) and the payment the application reported
   (`observability.record.report_payment`); fixes the final code, level and duration; then
   hands the record to each reporter (span, access log, metrics). A failing reporter is logged
   and never reaches the call.

Which reporters a method gets is decided once per method (the health-check selector): health
checks are counted by the metrics but neither traced nor logged, unless asked for.
Streaming methods (health Watch, reflection) pass through untouched.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

import grpc

from payments_service.observability.record import (
    CallRecord,
    MethodInfo,
    default_log_level,
    enter_call,
)
from payments_service.observability.reporting import Reporters
from payments_service.observability.tracing import recording_span
from payments_service.transport.completion import complete, note_answer
from payments_service.transport.error_table import Answer, send_answer
from payments_service.transport.errors import (
    ServerOverloadedError,
    ServerShuttingDownError,
    UndecodableRequestError,
)
from payments_service.transport.interceptors.base import UnaryBehaviorInterceptor

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from payments_service.observability.reporting import Reporter
    from payments_service.transport.admission import ConcurrencyLimit, ShutdownGate
    from payments_service.transport.interceptors.base import Behavior, Handler


REQUEST_ID_HEADER = "x-request-id"
# 1..128 characters that are safe in logs, headers and URLs: no spaces, quotes or control chars.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@=+/-]{1,128}")
HEALTH_CHECK_PREFIXES = ("/grpc.health.v1.Health/", "/payments.v1.PaymentService/Health")


def accepted_request_id(metadata: Any) -> str | None:
    """The caller's request id if it is present and safe, else None."""
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str):
            return value if _SAFE_REQUEST_ID.fullmatch(value) else None
    return None


def new_request_id() -> str:
    """32 random hex digits. Not `uuid.uuid4().hex`: nothing parses a request id as a UUID, and
    building the UUID object cost four times the instructions (`make bench-count`)."""
    return secrets.token_hex(16)


class ObservationInterceptor(UnaryBehaviorInterceptor):
    """See the module docstring. `reporters` observe every call; `health_reporters` (a subset,
    by default none) observe health checks. `limit`, when given, sheds calls past it with
    RESOURCE_EXHAUSTED; `gate`, once closed, parks new calls and then answers them UNAVAILABLE
    (`transport.admission.ShutdownGate`). Neither applies to health checks."""

    def __init__(
        self,
        reporters: Sequence[Reporter] = (),
        *,
        health_reporters: Sequence[Reporter] = (),
        health_prefixes: tuple[str, ...] = HEALTH_CHECK_PREFIXES,
        limit: ConcurrencyLimit | None = None,
        gate: ShutdownGate | None = None,
    ) -> None:
        self._limit = limit
        self._gate = gate
        self._reporters = Reporters(reporters)
        self._health_reporters = Reporters(health_reporters)
        self._health_prefixes = health_prefixes
        super().__init__()

    def wrap_handler(self, method: str, handler: Handler) -> Handler:
        return grpc.unary_unary_rpc_method_handler(
            self._observe(method, handler),
            request_deserializer=None,  # decoded inside the observed path, see `_observe`
            response_serializer=handler.response_serializer,
        )

    def _observe(self, full_method: str, handler: Handler) -> Behavior:
        info = MethodInfo.parse(full_method)
        behavior: Behavior = handler.unary_unary  # type: ignore[assignment]
        decode = handler.request_deserializer
        health_check = full_method.startswith(self._health_prefixes)
        reporters = self._health_reporters if health_check else self._reporters
        limit = None if health_check else self._limit
        gate = None if health_check else self._gate
        message_type = _request_type_name(decode)

        async def observed(raw: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            record = CallRecord(info, time.perf_counter())
            enter_call(record)
            record.request_id = (
                accepted_request_id(context.invocation_metadata()) or new_request_id()
            )
            record.peer = context.peer()
            record.span = recording_span()
            reporters.started(record)
            admitted = False
            answer: Answer | None = None
            try:
                if gate is not None and gate.closed:
                    await gate.wait()
                    raise ServerShuttingDownError
                if limit is not None:
                    admitted = limit.try_enter()
                    if not admitted:
                        raise ServerOverloadedError(limit.limit)
                try:
                    request = decode(raw) if decode is not None else raw
                except Exception:
                    raise UndecodableRequestError(message_type) from None
                response = await behavior(request, context)
                context.set_trailing_metadata(((REQUEST_ID_HEADER, record.request_id),))
                return response
            except asyncio.CancelledError:
                record.code = _cancelled_code(context)
                record.log_level = default_log_level(record.code)
                raise
            except grpc.aio.AbortError:
                record.code = context.code() or grpc.StatusCode.UNKNOWN
                record.log_level = default_log_level(record.code)
                raise
            except Exception as error:
                answer = note_answer(record, error)
            finally:
                if admitted and limit is not None:
                    limit.leave()
                complete(record)
                reporters.finished(record)
            # A failure is sent once its access line and metrics are written.
            await send_answer(context, answer, ((REQUEST_ID_HEADER, record.request_id),))
            return None

        return observed


def _cancelled_code(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    """What the client saw: DEADLINE_EXCEEDED when its deadline had passed, else CANCELLED."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


def _request_type_name(decode: Callable[[bytes], Any] | None) -> str:
    """`payments.v1.RequestPaymentRequest` for a generated message's FromString."""
    owner = getattr(decode, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "request message"))
