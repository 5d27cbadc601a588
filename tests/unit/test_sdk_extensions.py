"""`sdk_extensions` was written for one version of the SDK, and its encoder is equivalent to
the SDK's: both outputs, decoded into `opentelemetry.proto` messages, are equal for spans with
every attribute type, events, links, statuses, trace state, and local and remote parents,
across resources and scopes. (Leaf spans: test_leaf_spans.py; the exporter against a real
receiver: tests/integration/observability/test_otlp_exporter.py.)"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from payments_service.observability.sdk_extensions import (
    WRITTEN_FOR,
    SpanEncoder,
    encode_spans,
)

REMOTE = SpanContext(
    trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
    span_id=0x00F067AA0BA902B7,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "value"), ("other", "x")]),
)
EVERY_TYPE: dict[str, Any] = {
    "str": "value",
    "empty_str": "",
    "unicode": "Zürich €",
    "true": True,
    "false": False,
    "int": 1250,
    "zero": 0,
    "negative": -42,
    "big": 2**62,
    "float": 1.5,
    "float_zero": 0.0,
    "strs": ("a", "b"),
    "ints": [1, -2, 3],
    "floats": [0.5, -1.25],
    "bools": [True, False],
    "empty_list": [],
}


def finished_spans(
    resource: Resource | None = None, limits: SpanLimits | None = None
) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=resource or Resource({"service.name": "svc", "n": 1}),
        span_limits=limits,
        shutdown_on_exit=False,
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("scope-a", "1.2.3", schema_url="https://schema/a")
    other = provider.get_tracer("scope-b")
    remote_parent = set_span_in_context(NonRecordingSpan(REMOTE))
    with tracer.start_as_current_span(
        "/payments.v1.PaymentService/RequestPayment",
        kind=SpanKind.SERVER,
        context=remote_parent,
        attributes=EVERY_TYPE,
        links=[Link(REMOTE, {"link.attr": "x"}), Link(REMOTE)],
    ) as server:
        server.add_event("validation.rejected", {"payment.invalid_fields": ("currency",)})
        server.add_event("bare")
        server.set_status(Status(StatusCode.ERROR, "INTERNAL"))
        with other.start_as_current_span("claim payments", kind=SpanKind.CLIENT) as c:
            c.set_status(Status(StatusCode.OK))
        with tracer.start_as_current_span("internal") as internal:
            internal.set_attribute("payment.id", "pay_1")
    for kind in (SpanKind.PRODUCER, SpanKind.CONSUMER):
        with tracer.start_as_current_span(f"root-{kind.name}", kind=kind):
            pass
    return list(exporter.get_finished_spans())


def assert_equivalent(spans: Sequence[ReadableSpan]) -> None:
    expected = sdk_encode(spans)
    actual = ExportTraceServiceRequest.FromString(encode_spans(spans))
    assert actual == expected


def test_the_installed_sdk_is_the_one_the_extensions_were_compared_with() -> None:
    """An upgrade fails here first: re-run the comparisons (this file, test_leaf_spans.py,
    test_otlp_exporter.py) against the new version, then move `WRITTEN_FOR`."""
    installed = {name: importlib.metadata.version(name) for name in WRITTEN_FOR}
    assert installed == WRITTEN_FOR


def test_every_attribute_type_event_link_status_and_parent_encodes_like_the_sdk() -> None:
    spans = finished_spans()
    assert len(spans) == 5
    assert_equivalent(spans)


def test_spans_of_several_resources_group_like_the_sdk() -> None:
    spans = finished_spans(Resource({"service.name": "one"})) + finished_spans(
        Resource({"service.name": "two"}, schema_url="https://schema/r")
    )
    assert_equivalent(spans)


def test_equal_resources_of_distinct_objects_share_a_group_like_the_sdk() -> None:
    spans = finished_spans(Resource({"service.name": "one"}))
    twin = finished_spans(Resource({"service.name": "one"}))
    assert spans[0].resource is not twin[0].resource
    assert_equivalent(spans + finished_spans(Resource({"service.name": "two"})) + twin)


def test_dropped_attributes_events_and_links_are_counted_like_the_sdk() -> None:
    limits = SpanLimits(max_span_attributes=3, max_events=1, max_links=1)
    assert_equivalent(finished_spans(limits=limits))


def test_a_reused_encoder_gives_the_same_bytes_as_a_fresh_one() -> None:
    """The caches (keys, names, string values, resource, scope) change nothing."""
    spans = finished_spans()
    encoder = SpanEncoder()
    first = encoder.request(spans)
    assert encoder.request(spans) == first
    assert encode_spans(spans) == first


def test_many_distinct_values_of_one_key_are_still_encoded_right() -> None:
    """Past the per-key cache limit, values are encoded each time, not served stale."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for n in range(100):
        with provider.get_tracer("t").start_as_current_span("s", attributes={"id": f"pay_{n}"}):
            pass
    spans = exporter.get_finished_spans()
    encoder = SpanEncoder()
    encoder.request(spans)
    assert ExportTraceServiceRequest.FromString(encoder.request(spans)) == sdk_encode(spans)


@pytest.mark.parametrize("value", [{"nested": 1, "list": [2]}, b"raw", None, object()])
def test_values_a_tracer_would_not_store_encode_or_are_skipped_like_the_sdk(
    value: object,
) -> None:
    """A ReadableSpan built by hand can hold anything: mappings and bytes are encoded, an
    unknown type is skipped (and logged), exactly as the SDK's encoder does."""
    span = ReadableSpan(
        name="hand-made",
        context=REMOTE,
        attributes={"before": 1, "odd": value, "after": "x"},  # type: ignore[dict-item]
        resource=Resource({"service.name": "svc"}),
    )
    assert_equivalent([span])
