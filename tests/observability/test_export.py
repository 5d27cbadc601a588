"""Tracer provider set-up from OTEL_* variables, and real OTLP/gRPC export to a receiver."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from payments_service import __version__
from payments_service.observability.tracing import build_resource, build_tracer_provider
from tests.otlp_receiver import OtlpReceiver


@pytest.mark.parametrize(
    ("env", "name", "extra"),
    [
        ({}, "payments-service", {}),
        ({"OTEL_SERVICE_NAME": "payments-eu"}, "payments-eu", {}),
        (
            {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=staging,service.name=from-attrs"},
            "from-attrs",
            {"deployment.environment": "staging"},
        ),
    ],
)
def test_resource_names_the_service_and_its_version(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], name: str, extra: dict[str, str]
) -> None:
    for key in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    attributes = build_resource().attributes
    assert attributes["service.name"] == name
    assert attributes["service.version"] == __version__
    assert {k: attributes[k] for k in extra} == extra


def test_the_resource_hashes_and_compares_like_a_plain_resource() -> None:
    resource = build_resource()
    plain = Resource(resource.attributes, resource.schema_url)
    assert hash(resource) == hash(plain)
    assert resource == plain
    assert {resource: 1}[plain] == 1  # what the OTLP encoder's grouping relies on


def test_sdk_disabled_means_no_provider() -> None:
    assert build_tracer_provider({"OTEL_SDK_DISABLED": "true"}) is None
    assert build_tracer_provider({"OTEL_SDK_DISABLED": "false"}) is not None


def test_without_an_endpoint_nothing_is_exported() -> None:
    provider = build_tracer_provider({})
    assert isinstance(provider, TracerProvider)
    processors = provider._active_span_processor._span_processors
    assert processors == ()


def test_spans_reach_an_otlp_receiver_with_the_service_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "payments-under-test")
        provider = build_tracer_provider({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
        assert provider is not None
        with provider.get_tracer("t").start_as_current_span("exported-span"):
            pass
        provider.shutdown()  # flushes the batch processor
        ((resource, span),) = receiver.wait_for_spans(1)
    assert span.name == "exported-span"
    assert resource["service.name"] == "payments-under-test"
