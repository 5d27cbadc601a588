"""The service's two extensions of the OpenTelemetry SDK, each on the SDK's public API only.

Each is here because `make bench-count` measured it at 5 % or more of the server's
instructions per call, and would be removed if it did not (benchmarks/README.md, "SDK
internals: each piece against the SDK's own way"):

- `FastOTLPSpanExporter`: a `SpanExporter` that writes the `ExportTraceServiceRequest` straight
  to protobuf wire format (`SpanEncoder`) and sends those bytes on its own grpc channel to the
  collector's `TraceService/Export`. The SDK's encoder builds a protobuf object per span,
  attribute, value, event and link in Python; on `full` it cost 16 % more instructions per
  call than this one.
- `LeafSpans`: spans that have no children and whose name and attributes are fixed (a database
  call), recorded in one step when they end as the SDK's own `ReadableSpan`, handed to the
  provider's span processors, instead of through the SDK's mutable `Span` (a lock, bounded
  attribute, event and link containers, a copy at `end`). On `full-sqlite` the SDK's way cost
  9 % more instructions per call.

Both reproduce what the SDK itself produces, and that is what their tests check: the encoder's
bytes decode to the message the SDK's encoder builds, the exporter's requests reach a receiver
equal to the SDK exporter's (headers, compression, TLS included), and a leaf span equals the
span the SDK's Tracer makes. `WRITTEN_FOR` names the versions they were compared against;
`tests/unit/test_sdk_extensions.py` fails on any other, so an upgrade re-runs the comparisons
before it moves the pin.

The exporter reads the OTLP exporter variables of the OpenTelemetry specification the way the
SDK's OTLP/gRPC span exporter does (`OtlpTarget.from_environ`: the `_TRACES_` variant first);
not supported: the Python SDK's own credential-provider entry points.
"""

from __future__ import annotations

import logging
import os
import random
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlparse

import grpc
from google.rpc import error_details_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import (
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    get_current_span,
)
from opentelemetry.util.re import parse_env_headers

from payments_service import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link
    from opentelemetry.util.types import AttributeValue

    from payments_service.observability.tracing import ServiceTracerProvider

# The distributions whose behaviour this module reproduces, at the versions it was compared with.
WRITTEN_FOR = {
    "opentelemetry-sdk": "1.45.2",  # Tracer.start_span / Span.end: LeafSpans
    "opentelemetry-exporter-otlp-proto-common": "1.45.2",  # encode_spans: SpanEncoder
    "opentelemetry-exporter-otlp-proto-grpc": "1.45.2",  # OTLPSpanExporter: the exporter
}

_logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- leaf spans

_UNSET = Status(StatusCode.UNSET)
_ERROR = Status(StatusCode.ERROR)
_ABSENT = object()


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


# --------------------------------------------------------------------------- the encoder

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


def _key_value(key: str, value: Any) -> bytes:
    return _text(b"\x0a", key) + _field(b"\x12", _any_value(value))


class SpanEncoder:
    """Encodes finished spans as an `ExportTraceServiceRequest`, in protobuf wire format.

    Caches what repeats across spans: attribute keys, span names, string values of keys with few
    distinct values, the resource and the scope."""

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
        order, as the SDK's encoder groups them (by equality: equal resources share a group).

        Grouped by identity first and merged by equality after, so a span costs no
        `Resource.__hash__` (which serialises every resource attribute to JSON); a process has
        one resource object, so the merge compares almost nothing."""
        by_object: dict[int, tuple[Resource, dict[Any, list[bytes]]]] = {}
        for span in spans:
            resource = span.resource
            group = by_object.get(id(resource))
            if group is None:
                group = by_object[id(resource)] = (resource, {})
            scope = span.instrumentation_scope
            encoded = group[1].get(scope)
            if encoded is None:
                encoded = group[1][scope] = []
            encoded.append(_field(b"\x12", self.span(span)))
        groups: list[tuple[Resource, dict[Any, list[bytes]]]] = []
        for resource, by_scope in by_object.values():
            equal = next((g for g in groups if g[0] == resource), None)
            if equal is None:
                groups.append((resource, by_scope))
                continue
            for scope, encoded in by_scope.items():
                equal[1].setdefault(scope, []).extend(encoded)
        out = []
        for resource, by_scope in groups:
            body = [self.resource(resource)]
            for scope, spans_of_scope in by_scope.items():
                body.append(_field(b"\x12", self.scope(scope) + b"".join(spans_of_scope)))
            if resource.schema_url:
                body.append(_text(b"\x1a", resource.schema_url))
            out.append(_field(b"\x0a", b"".join(body)))
        return b"".join(out)


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialized ExportTraceServiceRequest for `spans` (a fresh encoder: no caches)."""
    return SpanEncoder().request(spans)


# --------------------------------------------------------------------------- the exporter

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
DEFAULT_TIMEOUT_SECONDS = 10.0  # OTEL_EXPORTER_OTLP_TIMEOUT's default in the SDK
MAX_ATTEMPTS = 6
# The codes the SDK's OTLP/gRPC exporter retries (the specification's retryable codes).
RETRYABLE = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_RETRY_INFO_KEY = "google.rpc.retryinfo-bin"
_COMPRESSIONS = {"none": grpc.Compression.NoCompression, "gzip": grpc.Compression.Gzip}


@dataclass(frozen=True, slots=True)
class OtlpTarget:
    """Where and how spans are exported."""

    endpoint: str  # host:port
    insecure: bool
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    compression: grpc.Compression = grpc.Compression.NoCompression
    certificate: str | None = None  # PEM file of the CAs to trust; None: the system's
    client_key: str | None = None  # PEM files of a client certificate (mutual TLS)
    client_certificate: str | None = None

    @classmethod
    def from_environ(cls, url: str, environ: Mapping[str, str] | None = None) -> OtlpTarget:
        """The target at `url` (the endpoint setting, `config.Settings.otlp_endpoint`) that
        the other OTEL_EXPORTER_OTLP_[TRACES_]* variables describe, resolved as the SDK's
        OTLP/gRPC span exporter resolves them: the `_TRACES_` variable first; an `https`
        endpoint is TLS, an `http` one plaintext, unless `INSECURE` says otherwise."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            return env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or env.get(
                f"OTEL_EXPORTER_OTLP_{name}"
            )

        parsed = urlparse(url)
        insecure_flag = env.get("OTEL_EXPORTER_OTLP_TRACES_INSECURE") or env.get(
            "OTEL_EXPORTER_OTLP_INSECURE"
        )
        if parsed.scheme == "https":
            insecure = False
        elif insecure_flag is not None:
            insecure = insecure_flag.strip().lower() == "true"
        else:
            insecure = parsed.scheme == "http"
        # The client files come with the certificate variable they belong to, as in the SDK.
        prefix = (
            "OTEL_EXPORTER_OTLP_TRACES_"
            if env.get("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE")
            else "OTEL_EXPORTER_OTLP_"
        )
        compression = (get("COMPRESSION") or "none").strip().lower()
        if compression not in _COMPRESSIONS:
            raise ValueError(
                f"invalid OTLP compression {compression!r}: expected one of "
                f"{', '.join(_COMPRESSIONS)}"
            )
        headers = get("HEADERS")
        timeout = get("TIMEOUT")
        return cls(
            endpoint=parsed.netloc or url,
            insecure=insecure,
            headers=tuple(parse_env_headers(headers, liberal=True).items()) if headers else (),
            timeout=float(timeout) if timeout else DEFAULT_TIMEOUT_SECONDS,
            compression=_COMPRESSIONS[compression],
            certificate=env.get(f"{prefix}CERTIFICATE") or None,
            client_key=env.get(f"{prefix}CLIENT_KEY") or None,
            client_certificate=env.get(f"{prefix}CLIENT_CERTIFICATE") or None,
        )

    def channel(self) -> grpc.Channel:
        options = [("grpc.primary_user_agent", f"payments-service-otlp/{__version__}")]
        if self.insecure:
            return grpc.insecure_channel(
                self.endpoint, options=options, compression=self.compression
            )
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(self.certificate),
            private_key=_read(self.client_key),
            certificate_chain=_read(self.client_certificate),
        )
        return grpc.secure_channel(
            self.endpoint, credentials, options=options, compression=self.compression
        )


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as file:
        return file.read()


class FastOTLPSpanExporter(SpanExporter):
    """Exports spans over OTLP/gRPC, encoded by `SpanEncoder`, on its own channel.

    One `export` is one `TraceService/Export` call within `target.timeout` seconds, retried on
    the retryable codes up to `MAX_ATTEMPTS` times with the SDK's backoff (1, 2, 4, ... s,
    +/- 20 %, or what the collector's RetryInfo asks), as long as the next attempt still fits
    in the timeout. `shutdown` ends a backoff at once. Runs on the BatchSpanProcessor's thread.
    """

    def __init__(self, target: OtlpTarget) -> None:
        self._target = target
        self._encoder = SpanEncoder()
        self._channel = self._target.channel()
        self._export = self._channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=None,  # the request is already bytes
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        self._shutdown = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown.is_set():
            _logger.warning("span exporter already shut down: %d spans dropped", len(spans))
            return SpanExportResult.FAILURE
        request = self._encoder.request(spans)
        target = self._target
        deadline = time.monotonic() + target.timeout
        for attempt in range(MAX_ATTEMPTS):
            try:
                self._export(request, metadata=target.headers, timeout=deadline - time.monotonic())
            except grpc.RpcError as raised:
                error = cast("grpc.Call", raised)  # a unary call's error is also its Call
                code = error.code()
                backoff = _backoff(error, attempt)
                if (
                    code not in RETRYABLE
                    or attempt + 1 == MAX_ATTEMPTS
                    or backoff > deadline - time.monotonic()
                    or self._shutdown.is_set()
                ):
                    _logger.error(
                        "failed to export %d spans to %s: %s %s",
                        len(spans),
                        target.endpoint,
                        code,
                        error.details(),
                    )
                    return SpanExportResult.FAILURE
                _logger.warning(
                    "transient error %s exporting spans to %s, retrying in %.2f s",
                    code,
                    target.endpoint,
                    backoff,
                )
                if self._shutdown.wait(backoff):
                    return SpanExportResult.FAILURE
            else:
                return SpanExportResult.SUCCESS
        return SpanExportResult.FAILURE  # pragma: no cover - the loop always returns

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # nothing is buffered here: the BatchSpanProcessor owns the queue

    def shutdown(self) -> None:
        self._shutdown.set()
        self._channel.close()


def _backoff(error: grpc.Call, attempt: int) -> float:
    """The SDK's backoff: the collector's RetryInfo delay, else 2**attempt s +/- 20 %."""
    for key, value in error.trailing_metadata() or ():
        if key == _RETRY_INFO_KEY and isinstance(value, bytes):
            info = error_details_pb2.RetryInfo.FromString(value)
            return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return float(2**attempt) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret
