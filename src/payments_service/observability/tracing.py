"""Traces: the TracerProvider, the library's SERVER-span interceptor, and the span reporter.

- Resource: `service.name` from OTEL_SERVICE_NAME (default `payments-service`),
  `service.version` from the package, plus OTEL_RESOURCE_ATTRIBUTES.
- Sampler: OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (the SDK reads them).
- Limits: attribute values are truncated to `Settings.span_attribute_value_limit` characters
  (OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT, default 256 here): a client's 6 KB user-agent must not be
  copied into every span. The SDK's warning for each truncation is dropped
  (`TruncationNotices`): a caller chooses such values, so it would be a log line per call.
- Export: OTLP/gRPC through the SDK's BatchSpanProcessor (OTEL_BSP_* apply; the batch size
  defaults to 128 here, not 512) to `sdk_extensions.FastOTLPSpanExporter`, only when an OTLP
  endpoint is configured. Otherwise nothing is exported, so a fresh `make run` prints no export
  errors.
- Tracing off (OTEL_SDK_DISABLED=true): no provider; no tracing interceptor is installed.
- Leaf spans (`ServiceTracerProvider.leaf_spans`): database calls are recorded in one step
  when they end (`sdk_extensions.LeafSpans`).
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.propagate import extract
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import (
    SpanLimits,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, Status, StatusCode, get_current_span

from payments_service import __version__
from payments_service.observability.record import SERVER_FAULT_CODES

# Re-exported: the stores' spans are typed as `tracing.LeafSpans`.
from payments_service.observability.sdk_extensions import LeafSpans as LeafSpans  # noqa: PLC0414

if TYPE_CHECKING:
    from collections.abc import Mapping

    import grpc
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.util.types import AttributeValue

    from payments_service.config import Settings
    from payments_service.observability.record import CallRecord
    from payments_service.observability.span_drops import ExportQueue

DEFAULT_SERVICE_NAME = "payments-service"
SCOPE_NAME = "payments_service"


class TruncationNotices(logging.Filter):
    """Drops the SDK's "String attribute value exceeds max length" warning. The values are the
    caller's (a `user-agent`, a method name), so the warning is a log line any caller can add
    per call; the truncation it announces is the documented limit (docs/limits.md). The SDK's
    other attribute warnings (a wrong type: a bug of ours) still pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("String attribute value exceeds max length")


_TRUNCATION_NOTICES = TruncationNotices()
ATTRIBUTES_LOGGER = "opentelemetry.attributes"  # where the SDK logs attribute cleaning


class ServiceTracerProvider(TracerProvider):
    """The SDK's TracerProvider, plus `leaf_spans`: finished leaf spans recorded in one step."""

    def __init__(
        self,
        *,
        resource: Resource | None = None,
        span_limits: SpanLimits | None = None,
        shutdown_on_exit: bool = True,
    ) -> None:
        self.span_limits = span_limits or SpanLimits()
        # Values past the limits are cut without a warning each (`TruncationNotices`); added
        # once, however many providers: it is one object.
        logging.getLogger(ATTRIBUTES_LOGGER).addFilter(_TRUNCATION_NOTICES)
        self.span_processors = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
        super().__init__(
            resource=resource,
            span_limits=self.span_limits,
            shutdown_on_exit=shutdown_on_exit,
            active_span_processor=self.span_processors,
        )
        self.scope = InstrumentationScope(SCOPE_NAME, __version__)
        self.export_queue: ExportQueue | None = None  # the OTLP export's, when there is one

    def leaf_spans(
        self, name: str, kind: SpanKind, attributes: Mapping[str, AttributeValue]
    ) -> LeafSpans:
        return LeafSpans(self, name, kind, attributes)

    def limited(
        self, attributes: Mapping[str, AttributeValue], *, immutable: bool = True
    ) -> BoundedAttributes:
        """`attributes` under this provider's span limits (count and value length)."""
        return BoundedAttributes(
            self.span_limits.max_span_attributes,
            attributes,
            immutable=immutable,
            max_value_len=self.span_limits.max_span_attribute_length,
        )


def build_resource() -> Resource:
    resource = Resource.create({SERVICE_VERSION: __version__})
    name = str(resource.attributes.get(SERVICE_NAME, ""))
    if name.startswith("unknown_service"):  # neither OTEL_SERVICE_NAME nor the attributes set it
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def build_tracer_provider(
    settings: Settings, processors: tuple[SpanProcessor, ...] = ()
) -> ServiceTracerProvider | None:
    """The provider, or None when tracing is off. `processors` are added before the OTLP one
    (tests pass an in-memory exporter's processor).

    `shutdown_on_exit=False`: the SDK's own atexit hook would flush with a 30 s timeout after
    the lifecycle has already flushed within the shutdown grace; `Telemetry.shutdown` owns it.
    """
    if not settings.tracing:
        return None
    provider = ServiceTracerProvider(
        resource=build_resource(),
        span_limits=SpanLimits(max_attribute_length=settings.span_attribute_value_limit),
        shutdown_on_exit=False,
    )
    for processor in processors:
        provider.add_span_processor(processor)
    if settings.otlp_export:
        from payments_service.observability.sdk_extensions import (  # noqa: PLC0415
            FastOTLPSpanExporter,
            OtlpTarget,
        )
        from payments_service.observability.span_drops import ExportQueue  # noqa: PLC0415

        assert settings.otlp_endpoint is not None  # noqa: S101 - what otlp_export means
        # The SDK's BatchSpanProcessor, behind a bound that counts the spans it drops
        # (span_drops.py). The other OTEL_BSP_* settings are read by the SDK itself; the batch
        # size is passed because this service's default differs (ARCHITECTURE.md, "Export and
        # logs off the request path").
        provider.export_queue = ExportQueue(
            FastOTLPSpanExporter(OtlpTarget.from_environ(settings.otlp_endpoint)),
            max_queue_size=settings.span_export_queue_size,
            max_export_batch_size=settings.span_export_batch_size,
        )
        provider.add_span_processor(provider.export_queue)
    return provider


def recording_span() -> Span | None:
    """The span the current call runs in, if one is recording (None with tracing off, or for
    a call the sampler dropped): what the call's record keeps for its reporters."""
    span = get_current_span()
    return span if span.is_recording() else None


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


def start_http_server_span(
    tracer: Tracer, name: str, headers: Mapping[str, str], attributes: Mapping[str, AttributeValue]
) -> contextlib.AbstractContextManager[Span]:
    """The SERVER span of one JSON/HTTP request, current until the block ends, continuing the
    caller's W3C `traceparent` (the global propagator, as the gRPC library uses). The HTTP
    transport's twin of the library's gRPC interceptor; `SpanReporter` finishes both. Nothing
    is recorded on an exception: the observation point answers every one itself."""
    return tracer.start_as_current_span(
        name,
        context=extract(headers),
        kind=SpanKind.SERVER,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    )


class SpanReporter:
    """Finishes the library's SERVER span from the call record.

    On its own (0.66b2) the library leaves a handler's exception with status UNSET and
    `rpc.grpc.status_code = 0`, and records `AbortError` as an exception. No exception reaches it
    here (the observation interceptor answers errors by setting the code), and this reporter
    writes the final code, the status from the one fault table, the unexpected exception exactly
    once, the request id and the payment attributes in one `set_attributes` call.
    """

    def call_started(self, record: CallRecord) -> None:
        pass

    def call_finished(self, record: CallRecord) -> None:
        span = record.span
        if span is None:
            return
        attributes: dict[str, AttributeValue] = {
            "rpc.grpc.status_code": record.code.value[0],
            "request.id": record.request_id,
        }
        if record.merchant_id is not None:
            attributes["merchant.id"] = record.merchant_id
        if record.error_kind is not None:
            attributes["error.type"] = record.error_kind
        if record.http is not None:
            attributes["http.response.status_code"] = record.http.status
        payment = record.payment
        if payment is not None:
            attributes["payment.id"] = payment.payment_id
            attributes["payment.currency"] = payment.currency
            attributes["payment.amount_minor"] = payment.amount_minor
            if payment.status is not None:
                attributes["payment.status"] = payment.status
            if payment.replayed is not None:
                attributes["payment.idempotent_replay"] = payment.replayed
        attributes.update(record.signals)
        span.set_attributes(attributes)
        if record.invalid_fields:
            span.add_event("validation.rejected", {"payment.invalid_fields": record.invalid_fields})
        if record.error is not None:
            span.record_exception(record.error)
        if record.code in SERVER_FAULT_CODES:
            span.set_status(Status(StatusCode.ERROR, record.code.name))
