"""Leaf spans (`ServiceTracerProvider.leaf_spans`): recorded in one step, yet the same span the
SDK's Tracer would have made: parent, sampling, limits, resource, scope, status."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    use_span,
)

from payments_service.observability.tracing import SCOPE_NAME, ServiceTracerProvider

ATTRIBUTES = {"db.system.name": "sqlite", "db.operation.name": "claim"}


def provider_with(
    exporter: InMemorySpanExporter,
    *,
    sampler: Sampler | None = None,
    limits: SpanLimits | None = None,
) -> ServiceTracerProvider:
    provider = ServiceTracerProvider(
        resource=Resource({"service.name": "leaf-test"}), span_limits=limits
    )
    if sampler is not None:
        provider.sampler = sampler
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


def test_a_leaf_span_is_a_child_of_the_current_span_like_an_sdk_span() -> None:
    exporter = InMemorySpanExporter()
    provider = provider_with(exporter)
    leaf = provider.leaf_spans("claim payments", SpanKind.CLIENT, ATTRIBUTES)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("server", kind=SpanKind.SERVER) as server:
        leaf.record(1_000, 5_000)
        with tracer.start_span("claim payments", kind=SpanKind.CLIENT, attributes=ATTRIBUTES):
            pass  # the SDK's own span, for comparison
    ours, sdk, parent = exporter.get_finished_spans()
    assert parent.context == server.get_span_context()
    for span in (ours, sdk):
        assert span.name == "claim payments"
        assert span.kind is SpanKind.CLIENT
        assert dict(span.attributes or {}) == ATTRIBUTES
        assert span.parent == parent.context
        assert span.context.trace_id == parent.context.trace_id
        assert span.context.trace_flags == sdk.context.trace_flags
        assert span.resource == provider.resource
        assert span.status.status_code is StatusCode.UNSET
    assert ours.context.span_id not in (sdk.context.span_id, parent.context.span_id)
    assert (ours.start_time, ours.end_time) == (1_000, 5_000)
    assert ours.instrumentation_scope is not None
    assert ours.instrumentation_scope.name == SCOPE_NAME


def test_without_a_current_span_it_is_the_root_of_a_new_trace() -> None:
    exporter = InMemorySpanExporter()
    provider_with(exporter).leaf_spans("purge_expired payments", SpanKind.CLIENT, {}).record(1, 2)
    span = only_span(exporter)
    assert span.parent is None
    assert span.context.is_valid
    assert span.context.trace_flags.sampled


@pytest.mark.parametrize("max_attributes", [128, 2])
def test_a_failure_is_an_error_span_like_the_sdks(max_attributes: int) -> None:
    exporter = InMemorySpanExporter()
    provider = provider_with(exporter, limits=SpanLimits(max_span_attributes=max_attributes))
    attributes = {**ATTRIBUTES, "db.collection.name": "payments"}
    provider.leaf_spans("get payments", SpanKind.CLIENT, attributes).record(
        1, 2, error_type="OperationalError"
    )
    with provider.get_tracer("t").start_span("get payments", attributes=attributes) as sdk_span:
        sdk_span.set_attribute("error.type", "OperationalError")  # as the SDK path did it
        sdk_span.set_status(Status(StatusCode.ERROR))
    ours, sdk = exporter.get_finished_spans()
    assert ours.status.status_code is sdk.status.status_code is StatusCode.ERROR
    assert dict(ours.attributes or {}) == dict(sdk.attributes or {})
    assert ours.dropped_attributes == sdk.dropped_attributes
    assert (ours.attributes or {})["error.type"] == "OperationalError"


def _parent(sampled: bool) -> NonRecordingSpan:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=flags))


@pytest.mark.parametrize(
    ("sampler", "parent_sampled", "exported"),
    [
        (ParentBased(ALWAYS_ON), True, True),
        (ParentBased(ALWAYS_ON), False, False),  # the caller's trace was not sampled
        (ALWAYS_OFF, True, False),
        (ALWAYS_ON, False, True),
        (TraceIdRatioBased(0.0), None, False),
        (TraceIdRatioBased(1.0), None, True),
    ],
)
def test_the_providers_sampler_decides_as_for_any_span(
    sampler: Sampler, parent_sampled: bool | None, exported: bool
) -> None:
    exporter = InMemorySpanExporter()
    leaf = provider_with(exporter, sampler=sampler).leaf_spans("x", SpanKind.CLIENT, ATTRIBUTES)
    if parent_sampled is None:
        leaf.record(1, 2)
    else:
        with use_span(_parent(parent_sampled)):
            leaf.record(1, 2)
    assert len(exporter.get_finished_spans()) == int(exported)


def test_the_span_limits_apply_to_its_attributes() -> None:
    exporter = InMemorySpanExporter()
    limits = SpanLimits(max_span_attributes=2, max_attribute_length=5)
    provider = provider_with(exporter, limits=limits)
    attributes = {"a": "0123456789", "b": "short", "c": "over the count"}
    provider.leaf_spans("x", SpanKind.CLIENT, attributes).record(1, 2)
    provider.get_tracer("t").start_span("x", attributes=attributes).end()  # the SDK's way
    ours, sdk = exporter.get_finished_spans()
    assert dict(ours.attributes or {}) == dict(sdk.attributes or {}) == {"b": "short", "c": "over "}


class _EditingSampler(Sampler):
    """Samples everything and returns the attributes it was asked with, updated by `changes`
    (adding or replacing values, as a custom sampler may); remembers what it was asked with."""

    def __init__(self, changes: dict[str, str]) -> None:
        self.changes = changes
        self.asked: list[dict[str, Any]] = []

    def should_sample(  # noqa: PLR0917 - the SDK's signature
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Any] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        self.asked.append(dict(attributes or {}))
        return SamplingResult(Decision.RECORD_AND_SAMPLE, {**(attributes or {}), **self.changes})

    def get_description(self) -> str:
        return "editing"


@pytest.mark.parametrize(
    "changes", [{"sampled.by": "x"}, {"db.system.name": "hidden"}], ids=["adds", "replaces"]
)
def test_the_span_has_the_attributes_the_sampler_returns(changes: dict[str, str]) -> None:
    exporter = InMemorySpanExporter()
    provider = provider_with(exporter, sampler=_EditingSampler(changes))
    provider.leaf_spans("x", SpanKind.CLIENT, ATTRIBUTES).record(1, 2)
    assert dict(only_span(exporter).attributes or {}) == {**ATTRIBUTES, **changes}


def test_the_sampler_is_asked_with_the_spans_attributes_not_its_outcome() -> None:
    sampler = _EditingSampler({"db.system.name": "hidden"})
    exporter = InMemorySpanExporter()
    provider = provider_with(exporter, sampler=sampler)
    provider.leaf_spans("x", SpanKind.CLIENT, ATTRIBUTES).record(1, 2, error_type="Boom")
    assert sampler.asked == [ATTRIBUTES]  # as at the start of an SDK span: no error.type yet
    assert (only_span(exporter).attributes or {})["error.type"] == "Boom"
