"""Traces: the TracerProvider, the library's SERVER-span interceptor, and the span reporter.

- Resource: `service.name` from OTEL_SERVICE_NAME (default `payments-service`),
  `service.version` from the package, plus OTEL_RESOURCE_ATTRIBUTES.
- Sampler: OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (the SDK reads them).
- Limits: attribute values are truncated to `Settings.span_attribute_value_limit` characters
  (OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT, default 256 here): a client's 6 KB user-agent must not be
  copied into every span. The SDK's warning for each truncation is dropped
  (`TruncationNotices`): a caller chooses such values, so it would be a log line per call.
- Export: OTLP/gRPC through the SDK's BatchSpanProcessor (OTEL_BSP_* apply; the batch size
  defaults to 128 here, not 512), with the fast encoder of `otlp.py`, only when an OTLP endpoint
  is configured. Otherwise nothing is exported,
  so a fresh `make run` prints no export errors.
- Tracing off (OTEL_SDK_DISABLED=true): no provider; no tracing interceptor is installed.
- Leaf spans (`ServiceTracerProvider.leaf_spans`): a span that has no children and whose name
  and attributes are fixed (a database call) is recorded in one step when it ends, as the
  SDK's own `ReadableSpan` handed to the provider's span processors, instead of through the
  SDK's mutable `Span` (a lock, bounded attribute, event and link containers, then a copy at
  `end`). Same sampler, ids, trace flags, resource, scope and attribute limits; the processors'
  `on_start` is not called (none of this service's needs it). `make bench` measured it
  (ARCHITECTURE.md, "Performance").
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
    ReadableSpan,
    SpanLimits,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    get_current_span,
)

from payments_service import __version__
from payments_service.observability.record import SERVER_FAULT_CODES

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
_UNSET = Status(StatusCode.UNSET)
_ERROR = Status(StatusCode.ERROR)


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


class LeafSpans:
    """Spans of one name, kind and attribute set that never have children (a database call).

    `record` makes one finished span, a child of the current span (or a root), as the SDK's
    Tracer would: the provider's sampler (asked with the span's attributes, which become the
    sampler's result), id generator, trace flags, resource and limits; on failure `error.type`
    set after creation and status ERROR. Limited once, here, while a sampler hands the
    attributes back unchanged (the SDK's built-in samplers do). Not done: the processors'
    `on_start`, the SDK's experimental per-tracer configurator and its own span metrics.
    """

    __slots__ = ("_attributes", "_kind", "_name", "_provider", "_raw")

    def __init__(
        self,
        provider: ServiceTracerProvider,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, AttributeValue],
    ) -> None:
        self._provider = provider
        self._name = name
        self._kind = kind
        self._raw = dict(attributes)
        self._attributes = provider.limited(self._raw)

    def record(self, start_ns: int, end_ns: int, error_type: str | None = None) -> None:
        """One span from `start_ns` to `end_ns` (time.time_ns()); `error_type`: it failed."""
        provider = self._provider
        ids = provider.id_generator
        parent: SpanContext | None = get_current_span().get_span_context()
        if parent is not None and parent.is_valid:
            trace_id = parent.trace_id
            random_trace_id = parent.trace_flags.random_trace_id
        else:
            parent = None
            trace_id = ids.generate_trace_id()
            random_trace_id = ids.is_trace_id_random()
        raw = self._raw
        sampling = provider.sampler.should_sample(None, trace_id, self._name, self._kind, raw)
        if not sampling.decision.is_recording():  # type: ignore[no-untyped-call]
            return
        given = sampling.attributes
        attributes: Mapping[str, AttributeValue] = self._attributes
        if error_type is not None or not _same(given, raw):
            bounded = provider.limited(given, immutable=False)
            if error_type is not None:
                bounded["error.type"] = error_type  # after creation, as an SDK span sets it
            attributes = bounded
        sampled = sampling.decision.is_sampled()  # type: ignore[no-untyped-call]
        flags = TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT
        if random_trace_id:
            flags |= TraceFlags.RANDOM_TRACE_ID
        context = SpanContext(
            trace_id,
            ids.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(flags),
            trace_state=sampling.trace_state,
        )
        span = ReadableSpan(
            name=self._name,
            context=context,
            parent=parent,
            resource=provider.resource,
            attributes=attributes,
            kind=self._kind,
            status=_UNSET if error_type is None else _ERROR,
            start_time=start_ns,
            end_time=end_ns,
            instrumentation_scope=provider.scope,
        )
        provider.span_processors.on_end(span)


def _same(given: Mapping[str, Any], raw: Mapping[str, Any]) -> bool:
    """Whether a sampler handed back exactly the attributes it was asked with."""
    return len(given) == len(raw) and all(
        raw.get(key, _ABSENT) is value for key, value in given.items()
    )


_ABSENT = object()


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
        from payments_service.observability.otlp import FastOTLPSpanExporter  # noqa: PLC0415
        from payments_service.observability.span_drops import ExportQueue  # noqa: PLC0415

        # The SDK's BatchSpanProcessor, behind a bound that counts the spans it drops
        # (span_drops.py). The other OTEL_BSP_* settings are read by the SDK itself; the batch
        # size is passed because this service's default differs (ARCHITECTURE.md, "Export and
        # logs off the request path").
        provider.export_queue = ExportQueue(
            FastOTLPSpanExporter(),
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
