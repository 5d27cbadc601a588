"""go-grpc-middleware server metrics for every unary RPC, measured around the behaviour."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from payments_service.transport.calls import begin_call
from payments_service.transport.interceptors.base import UnaryBehaviorInterceptor

if TYPE_CHECKING:
    import grpc

    from payments_service.observability.metrics import Metrics
    from payments_service.transport.interceptors.base import Behavior


class MetricsInterceptor(UnaryBehaviorInterceptor):
    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self._metrics = metrics

    def wrap(self, method: str, behavior: Behavior) -> Behavior:
        bound = self._metrics.for_method(method)

        async def measured(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            state = begin_call(method)
            bound.started.inc()
            try:
                return await behavior(request, context)
            finally:
                bound.handled[state.code].inc()
                span_context = trace.get_current_span().get_span_context()
                if span_context.trace_flags.sampled:
                    # An exemplar links this latency sample to its trace in Jaeger.
                    exemplar = {"trace_id": format(span_context.trace_id, "032x")}
                    bound.handling_seconds.observe(state.duration(), exemplar)
                else:
                    bound.handling_seconds.observe(state.duration())

        return measured
