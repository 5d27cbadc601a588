"""A fast OTLP span encoder, and the standard OTLP/gRPC exporter that uses it.

Why: the SDK's encoder (opentelemetry-exporter-otlp-proto-common) builds a protobuf object per
span, attribute, value, event and link in Python, which made it the single largest cost of the
`full` server after span creation: it runs on the BatchSpanProcessor's thread and holds the GIL
the event loop needs (measured in ARCHITECTURE.md, "Performance"). This encoder writes the same
`ExportTraceServiceRequest` straight to protobuf wire format: byte strings joined once per span,
with the encoding of each attribute key, span name, resource and scope computed once and reused.

It is proven equivalent to the SDK's encoder by `tests/unit/test_otlp_encoder.py`: both outputs are
decoded into `opentelemetry.proto` messages and compared, over spans with every attribute type,
events, links, statuses and local and remote parents.

`FastOTLPSpanExporter` is the SDK's `OTLPSpanExporter` (every OTEL_EXPORTER_OTLP_* setting, the
retries and the channel handling stay the library's); only its translation step is replaced.
The bytes are parsed into the request message by protobuf's C implementation, which is cheap.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import SpanKind

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link

_logger = logging.getLogger(__name__)
_CACHE_LIMIT = 1024  # distinct keys / span names remembered; more are encoded each time
_VALUES_PER_KEY = 32  # distinct string values cached per attribute key
_SMALL_VARINTS = [bytes([n]) for n in range(128)]
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_pack_double = struct.Struct("<d").pack

# span flags (opentelemetry.proto.trace.v1.SpanFlags), as the SDK's encoder sets them
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_LOCAL_PARENT_FLAGS = b"\x85\x01" + _pack_fixed32(_HAS_IS_REMOTE)  # field 16, fixed32
_REMOTE_PARENT_FLAGS = b"\x85\x01" + _pack_fixed32(_HAS_IS_REMOTE | _IS_REMOTE)
_KINDS = {  # field 6, varint: SpanKind -> proto SPAN_KIND_* (INTERNAL=1 ... CONSUMER=5)
    SpanKind.INTERNAL: b"\x30\x01",
    SpanKind.SERVER: b"\x30\x02",
    SpanKind.CLIENT: b"\x30\x03",
    SpanKind.PRODUCER: b"\x30\x04",
    SpanKind.CONSUMER: b"\x30\x05",
}


def _varint(value: int) -> bytes:
    if value < 128:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while value > 127:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + _varint(len(payload)) + payload


def _text(tag: bytes, value: str) -> bytes:
    return _field(tag, value.encode())


def _any_value(value: Any) -> bytes:  # noqa: PLR0911 - one return per oneof case
    """An AnyValue message body. A set oneof is always written, even at its default value."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _text(b"\x0a", value)
    if isinstance(value, int):
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)  # int64: two's complement
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any_value(v)) for v in value))
    if isinstance(value, Mapping):
        pairs = b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items())
        return _field(b"\x32", pairs)
    raise TypeError(f"cannot encode an attribute value of type {type(value).__name__}")


class SpanEncoder:
    """Caches what repeats across spans: attribute keys, span names, resource and scope."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._values: dict[tuple[bytes, str], dict[str, bytes]] = {}
        self._names: dict[str, bytes] = {}
        self._resources: dict[int, tuple[Resource, bytes]] = {}
        self._scopes: dict[int, tuple[InstrumentationScope | None, bytes]] = {}

    def key_value(self, key: str, value: Any) -> bytes:
        prefix = self._keys.get(key)
        if prefix is None:
            prefix = _text(b"\x0a", key)
            if len(self._keys) < _CACHE_LIMIT:
                self._keys[key] = prefix
        return prefix + _field(b"\x12", _any_value(value))

    def attributes(self, tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
        """Repeated KeyValue fields under `tag`. A string value's whole field is cached per key,
        up to `_VALUES_PER_KEY` distinct values (rpc.method, payment.currency, ...); keys with
        more distinct values (ids) stop being cached."""
        if not attributes:
            return b""
        fields = []
        cached_values = self._values
        try:
            for key, value in attributes.items():
                if type(value) is str:
                    per_key = cached_values.get((tag, key))
                    if per_key is None:
                        per_key = cached_values[(tag, key)] = {}
                    encoded = per_key.get(value)
                    if encoded is None:
                        encoded = _field(tag, self.key_value(key, value))
                        if len(per_key) < _VALUES_PER_KEY and len(cached_values) < _CACHE_LIMIT:
                            per_key[value] = encoded
                else:
                    encoded = _field(tag, self.key_value(key, value))
                fields.append(encoded)
        except TypeError:  # as the SDK's encoder: skip (and log) what cannot be encoded
            return b"".join(self._each_attribute(tag, attributes))
        return b"".join(fields)

    def _each_attribute(self, tag: bytes, attributes: Mapping[str, Any]) -> list[bytes]:
        encoded = []
        for key, value in attributes.items():
            try:
                encoded.append(_field(tag, self.key_value(key, value)))
            except TypeError:
                _logger.exception("cannot encode span attribute %r", key)
        return encoded

    def name(self, name: str) -> bytes:
        encoded = self._names.get(name)
        if encoded is None:
            encoded = _text(b"\x2a", name)  # Span.name, field 5
            if len(self._names) < _CACHE_LIMIT:
                self._names[name] = encoded
        return encoded

    def resource(self, resource: Resource) -> bytes:
        """ResourceSpans.resource (field 1), always present."""
        cached = self._resources.get(id(resource))
        if cached is None or cached[0] is not resource:
            body = self.attributes(b"\x0a", resource.attributes)
            cached = (resource, _field(b"\x0a", body))
            self._resources[id(resource)] = cached
        return cached[1]

    def scope(self, scope: InstrumentationScope | None) -> bytes:
        """ScopeSpans.scope (field 1), always present, plus ScopeSpans.schema_url (field 3)."""
        cached = self._scopes.get(id(scope))
        if cached is None or cached[0] is not scope:
            if scope is None:
                encoded = b"\x0a\x00"
            else:
                body = _text(b"\x0a", scope.name) if scope.name else b""
                if scope.version:
                    body += _text(b"\x12", scope.version)
                body += self.attributes(b"\x1a", scope.attributes)
                encoded = _field(b"\x0a", body)
                if scope.schema_url:
                    encoded += _text(b"\x1a", scope.schema_url)
            cached = (scope, encoded)
            self._scopes[id(scope)] = cached
        return cached[1]

    def span(self, span: ReadableSpan) -> bytes:
        context = span.context
        assert context is not None  # noqa: S101 - a finished SDK span always has a context
        parent = span.parent
        parts = [
            b"\x0a\x10",
            context.trace_id.to_bytes(16, "big"),
            b"\x12\x08",
            context.span_id.to_bytes(8, "big"),
        ]
        trace_state = context.trace_state
        if trace_state:
            parts.append(_text(b"\x1a", ",".join(f"{k}={v}" for k, v in trace_state.items())))
        if parent is not None:
            parts += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
        parts += (
            self.name(span.name),
            _KINDS[span.kind],
            b"\x39",
            _pack_fixed64(span.start_time or 0),
            b"\x41",
            _pack_fixed64(span.end_time or 0),
            self.attributes(b"\x4a", span.attributes),
        )
        if span.dropped_attributes:
            parts.append(b"\x50" + _varint(span.dropped_attributes))
        for event in span.events:
            body = b"\x09" + _pack_fixed64(event.timestamp) + _text(b"\x12", event.name)
            body += self.attributes(b"\x1a", event.attributes)
            if event.dropped_attributes:
                body += b"\x20" + _varint(event.dropped_attributes)
            parts.append(_field(b"\x5a", body))
        if span.dropped_events:
            parts.append(b"\x60" + _varint(span.dropped_events))
        for link in span.links:
            parts.append(_field(b"\x6a", self._link(link)))
        if span.dropped_links:
            parts.append(b"\x70" + _varint(span.dropped_links))
        status = span.status
        body = _text(b"\x12", status.description) if status.description else b""
        if status.status_code.value:
            body += b"\x18" + _varint(status.status_code.value)
        parts.append(_field(b"\x7a", body))  # Status, field 15: always present
        remote = parent is not None and parent.is_remote
        parts.append(_REMOTE_PARENT_FLAGS if remote else _LOCAL_PARENT_FLAGS)
        return b"".join(parts)

    def _link(self, link: Link) -> bytes:
        context = link.context
        flags = _HAS_IS_REMOTE | (_IS_REMOTE if context.is_remote else 0)
        body = b"\x0a\x10" + context.trace_id.to_bytes(16, "big")
        body += b"\x12\x08" + context.span_id.to_bytes(8, "big")
        body += self.attributes(b"\x22", link.attributes)
        if link.dropped_attributes:
            body += b"\x28" + _varint(link.dropped_attributes)
        return body + b"\x35" + _pack_fixed32(flags)  # Link.flags, field 6, fixed32

    def request(self, spans: Sequence[ReadableSpan]) -> bytes:
        """An ExportTraceServiceRequest: spans grouped by resource, then by scope, in first-seen
        order, as the SDK's encoder groups them."""
        # Keyed by the objects, as the SDK's encoder keys them (equal resources share a group).
        groups: dict[Resource, dict[InstrumentationScope | None, list[bytes]]] = {}
        for span in spans:
            by_scope = groups.get(span.resource)
            if by_scope is None:
                by_scope = groups[span.resource] = {}
            scope = span.instrumentation_scope
            encoded = by_scope.get(scope)
            if encoded is None:
                encoded = by_scope[scope] = []
            encoded.append(_field(b"\x12", self.span(span)))
        out = []
        for resource, by_scope in groups.items():
            body = [self.resource(resource)]
            for scope, spans_of_scope in by_scope.items():
                body.append(_field(b"\x12", self.scope(scope) + b"".join(spans_of_scope)))
            if resource.schema_url:
                body.append(_text(b"\x1a", resource.schema_url))
            out.append(_field(b"\x0a", b"".join(body)))
        return b"".join(out)


def _key_value(key: str, value: Any) -> bytes:
    return _text(b"\x0a", key) + _field(b"\x12", _any_value(value))


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialized ExportTraceServiceRequest for `spans` (a fresh encoder: no caches)."""
    return SpanEncoder().request(spans)


class FastOTLPSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/gRPC span exporter with the fast encoder as its translation step."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._encoder = SpanEncoder()

    def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        return ExportTraceServiceRequest.FromString(self._encoder.request(data))
