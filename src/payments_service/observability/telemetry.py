"""The observability bundle the composition root wires in: tracing, metrics, access logs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry import trace

from payments_service.observability.metrics import Metrics, new_registry
from payments_service.observability.tracing import build_tracer_provider

if TYPE_CHECKING:
    from collections.abc import Mapping

    from opentelemetry.sdk.trace import TracerProvider

    from payments_service.config import Settings

# Health checks: the standard service and the spec's own Health RPC.
HEALTH_CHECK_PREFIXES = ("/grpc.health.v1.Health/", "/payments.v1.PaymentService/Health")


@dataclass(slots=True)
class Telemetry:
    """None / False switches a signal off; the server then installs nothing for it."""

    tracer_provider: TracerProvider | None = None
    metrics: Metrics | None = None
    access_log: bool = False
    excluded_prefixes: tuple[str, ...] = HEALTH_CHECK_PREFIXES

    def tracer(self) -> trace.Tracer:
        if self.tracer_provider is None:
            return trace.NoOpTracer()
        return self.tracer_provider.get_tracer("payments_service")

    def shutdown(self) -> None:
        """Flush and stop exporters: no span of the last calls is lost."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()


def build_telemetry(settings: Settings, env: Mapping[str, str]) -> Telemetry:
    return Telemetry(
        tracer_provider=build_tracer_provider(env),
        metrics=Metrics(new_registry()) if settings.metrics_address is not None else None,
        access_log=settings.access_log,
        excluded_prefixes=() if settings.observe_health_checks else HEALTH_CHECK_PREFIXES,
    )
