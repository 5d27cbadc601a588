"""Server spans: opentelemetry-instrumentation-grpc's aio interceptor, made correct.

The library interceptor starts the SERVER span, continues a caller's W3C `traceparent` and sets
the standard rpc.* attributes. On its own (0.66b2) it leaves a handler's exception with status
UNSET and `rpc.grpc.status_code = 0`, ignores codes set through `abort_with_status`, and records
`AbortError` as an exception. Here no exception ever reaches it: the error mapping sets the code
on the (wrapped) context, which the library does record, and `SpanFinisher`, placed right inside
it, finishes the span from the call state: final code, status from the one fault table, the
unexpected exception recorded exactly once, the request id and the payment attributes, all in
one `set_attributes` call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.trace import Status, StatusCode

from payments_service.transport.calls import SERVER_FAULT_CODES, begin_call
from payments_service.transport.interceptors.base import UnaryBehaviorInterceptor

if TYPE_CHECKING:
    import grpc
    from opentelemetry.trace import TracerProvider
    from opentelemetry.util.types import AttributeValue

    from payments_service.transport.calls import CallState
    from payments_service.transport.interceptors.base import Behavior


def library_server_interceptor(
    provider: TracerProvider, excluded_prefixes: tuple[str, ...] = ()
) -> grpc.aio.ServerInterceptor[Any, Any]:
    """The library's interceptor; methods under `excluded_prefixes` (health checks) are left
    untraced."""

    def traced(details: grpc.HandlerCallDetails) -> bool:
        return not details.method.startswith(excluded_prefixes)

    interceptor: grpc.aio.ServerInterceptor[Any, Any] = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=provider, filter_=traced if excluded_prefixes else None
    )
    return interceptor


class SpanFinisher(UnaryBehaviorInterceptor):
    def wrap(self, method: str, behavior: Behavior) -> Behavior:
        async def finished(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            state = begin_call(method)
            try:
                return await behavior(request, context)
            finally:
                span = trace.get_current_span()
                if span.is_recording():
                    finish_span(span, state)

        return finished


def finish_span(span: trace.Span, state: CallState) -> None:
    attributes: dict[str, AttributeValue] = {"rpc.grpc.status_code": state.code.value[0]}
    known = (
        ("request.id", state.request_id),
        ("merchant.id", state.merchant_id),
        ("payment.id", state.payment_id),
        ("payment.currency", state.currency),
        ("payment.amount_minor", state.amount_minor),
        ("payment.status", state.payment_status),
        ("payment.idempotent_replay", state.replayed),
    )
    attributes.update((key, value) for key, value in known if value is not None)
    span.set_attributes(attributes)
    if state.violations:
        span.add_event("validation.rejected", {"payment.invalid_fields": state.violations})
    if state.error is not None:
        span.record_exception(state.error)
    if state.code in SERVER_FAULT_CODES:
        span.set_status(Status(StatusCode.ERROR, state.code.name))
