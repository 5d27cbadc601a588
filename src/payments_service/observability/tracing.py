"""Traces: the TracerProvider, the library's SERVER-span interceptor, and the span reporter.

- Resource: `service.name` from OTEL_SERVICE_NAME (default `payments-service`),
  `service.version` from the package, plus OTEL_RESOURCE_ATTRIBUTES.
- Sampler: OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (the SDK reads them).
- Limits: attribute values are truncated to `Settings.span_attribute_value_limit` characters
  (OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT, default 256 here): a client's 6 KB user-agent must not be
  copied into every span.
- Export: OTLP/gRPC through the SDK's BatchSpanProcessor (OTEL_BSP_* apply; the batch size
  defaults to 128 here, not 512), with the fast encoder of `otlp.py`, only when an OTLP endpoint
  is configured. Otherwise nothing is exported,
  so a fresh `make run` prints no export errors.
- Tracing off (OTEL_SDK_DISABLED=true): no provider; no tracing interceptor is installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.trace import Status, StatusCode, get_current_span

from payments_service import __version__
from payments_service.calls import SERVER_FAULT_CODES

if TYPE_CHECKING:
    import grpc
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.util.types import AttributeValue

    from payments_service.calls import CallRecord
    from payments_service.config import Settings

DEFAULT_SERVICE_NAME = "payments-service"


class _HashOnceResource(Resource):
    """A Resource whose hash is computed once.

    The SDK groups spans by resource on export, and `Resource.__hash__` serialises every
    attribute with `json.dumps` each time (opentelemetry-sdk 1.45). A Resource is immutable, so
    its hash can be cached.
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


def build_tracer_provider(
    settings: Settings, processors: tuple[SpanProcessor, ...] = ()
) -> TracerProvider | None:
    """The provider, or None when tracing is off. `processors` are added before the OTLP one
    (tests pass an in-memory exporter's processor).

    `shutdown_on_exit=False`: the SDK's own atexit hook would flush with a 30 s timeout after
    the lifecycle has already flushed within the shutdown grace; `Telemetry.shutdown` owns it.
    """
    if not settings.tracing:
        return None
    provider = TracerProvider(
        resource=build_resource(),
        span_limits=SpanLimits(max_attribute_length=settings.span_attribute_value_limit),
        shutdown_on_exit=False,
    )
    for processor in processors:
        provider.add_span_processor(processor)
    if settings.otlp_export:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

        from payments_service.observability.otlp import FastOTLPSpanExporter  # noqa: PLC0415

        # The other OTEL_BSP_* settings are read by the SDK itself; the batch size is passed
        # because this service's default differs (ARCHITECTURE.md, "Export off the request path").
        batch = BatchSpanProcessor(
            FastOTLPSpanExporter(), max_export_batch_size=settings.span_export_batch_size
        )
        provider.add_span_processor(batch)
    return provider


def library_server_interceptor(
    provider: TracerProvider, untraced_prefixes: tuple[str, ...] = ()
) -> grpc.aio.ServerInterceptor[Any, Any]:
    """opentelemetry-instrumentation-grpc's aio interceptor: it starts the SERVER span,
    continues a caller's W3C `traceparent` and sets the rpc.* semantic-convention attributes.
    Methods under `untraced_prefixes` (health checks) get no span."""

    def traced(details: grpc.HandlerCallDetails) -> bool:
        return not details.method.startswith(untraced_prefixes)

    interceptor: grpc.aio.ServerInterceptor[Any, Any] = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=provider, filter_=traced if untraced_prefixes else None
    )
    return interceptor


class SpanReporter:
    """Finishes the library's SERVER span from the call record.

    On its own (0.66b2) the library leaves a handler's exception with status UNSET and
    `rpc.grpc.status_code = 0`, and records `AbortError` as an exception. No exception reaches it
    here (the observation interceptor answers errors by setting the code), and this reporter
    writes the final code, the status from the one fault table, the unexpected exception exactly
    once, the request id and the payment attributes in one `set_attributes` call.
    """

    def call_started(self, record: CallRecord) -> None:
        span = get_current_span()
        if span.is_recording():
            record.span = span

    def call_finished(self, record: CallRecord) -> None:
        span = record.span
        if span is None:
            return
        attributes: dict[str, AttributeValue] = {
            "rpc.grpc.status_code": record.code.value[0],
            "request.id": record.request_id,
        }
        optional = (
            ("merchant.id", record.merchant_id),
            ("payment.id", record.payment_id),
            ("payment.currency", record.currency),
            ("payment.amount_minor", record.amount_minor),
            ("payment.status", record.payment_status),
            ("payment.idempotent_replay", record.replayed),
        )
        attributes.update((key, value) for key, value in optional if value is not None)
        span.set_attributes(attributes)
        if record.violations:
            span.add_event("validation.rejected", {"payment.invalid_fields": record.violations})
        if record.error is not None:
            span.record_exception(record.error)
        if record.code in SERVER_FAULT_CODES:
            span.set_status(Status(StatusCode.ERROR, record.code.name))
