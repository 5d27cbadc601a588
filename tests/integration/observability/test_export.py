"""Tracer provider set-up from OTEL_* variables, and real OTLP/gRPC export to a receiver."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from payments_service import __version__
from payments_service.config import Settings
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


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


@pytest.mark.parametrize(
    ("value", "provider"), [("true", False), ("TRUE", False), ("false", True), ("", True)]
)
def test_otel_sdk_disabled_true_means_no_provider(value: str, provider: bool) -> None:
    assert (build_tracer_provider(settings(OTEL_SDK_DISABLED=value)) is not None) is provider


def test_without_an_endpoint_spans_go_only_to_the_processors_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No OTLP endpoint: no exporter is installed (nothing is sent anywhere), yet the spans
    are made, so an in-process processor still sees them."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider(settings(), (SimpleSpanProcessor(exporter),))
    assert isinstance(provider, TracerProvider)
    with provider.get_tracer("t").start_as_current_span("kept"):
        pass
    assert [s.name for s in exporter.get_finished_spans()] == ["kept"]
    assert settings().otlp_export is False
    assert settings(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://c:4317").otlp_export is True


@pytest.mark.parametrize(
    ("env", "limit"),
    [
        ({}, 256),
        ({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "40"}, 40),
        (
            {
                "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "30",
                "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "40",
            },
            30,
        ),
    ],
)
def test_span_attribute_values_are_truncated_to_the_limit(env: dict[str, str], limit: int) -> None:
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider(settings(**env), (SimpleSpanProcessor(exporter),))
    assert provider is not None
    with provider.get_tracer("t").start_as_current_span("s", attributes={"ua": "x" * 6000}):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["ua"] == "x" * limit


def test_spans_reach_an_otlp_receiver_with_the_service_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "payments-under-test")
        provider = build_tracer_provider(settings(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint))
        assert provider is not None
        with provider.get_tracer("t").start_as_current_span("exported-span"):
            pass
        provider.shutdown()  # flushes the batch processor
        ((resource, span),) = receiver.wait_for_spans(1)
    assert span.name == "exported-span"
    assert resource["service.name"] == "payments-under-test"


@pytest.mark.parametrize(
    ("env", "batch"), [({}, 128), ({"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512"}, 512)]
)
def test_the_export_batch_defaults_to_128_and_the_standard_variable_still_sets_it(
    env: dict[str, str], batch: int
) -> None:
    assert settings(**env).span_export_batch_size == batch
