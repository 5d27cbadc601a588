"""TracerProvider set-up from the standard OTEL_* environment variables.

- Resource: `service.name` from OTEL_SERVICE_NAME (default `payments-service`),
  `service.version` from the package, plus OTEL_RESOURCE_ATTRIBUTES.
- Sampler: OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (the SDK reads them).
- Export: OTLP/gRPC through a BatchSpanProcessor (OTEL_BSP_* apply) only when
  OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set. Otherwise nothing is
  exported, so a fresh `make run` prints no export errors.
- OTEL_SDK_DISABLED=true: no provider at all; the server then installs no tracing interceptor.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider

from payments_service import __version__

DEFAULT_SERVICE_NAME = "payments-service"
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_disabled(env: Mapping[str, str]) -> bool:
    return env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


class _HashOnceResource(Resource):
    """A Resource whose hash is computed once.

    The OTLP encoder groups every exported span by resource, and `Resource.__hash__` serialises
    all attributes with `json.dumps` each time (opentelemetry-sdk 1.45): a measurable share of
    the export thread's time under load. A Resource is immutable, so its hash can be cached.
    """

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


def build_resource() -> Resource:
    resource = Resource.create({SERVICE_VERSION: __version__})
    name = str(resource.attributes.get(SERVICE_NAME, ""))
    if name.startswith("unknown_service"):  # neither OTEL_SERVICE_NAME nor the attributes set it
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return _HashOnceResource(resource)


def build_tracer_provider(env: Mapping[str, str]) -> TracerProvider | None:
    if tracing_disabled(env):
        return None
    provider = TracerProvider(resource=build_resource())
    if any(env.get(name) for name in _ENDPOINT_VARIABLES):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider
