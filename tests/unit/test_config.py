"""Settings come from the environment once; a bad value names its variable."""

from __future__ import annotations

import dataclasses

import pytest

from payments_service.config import ConfigError, ProbeSettings, Settings, all_variables, env_name
from payments_service.reference import effective_settings


def test_every_field_is_declared_with_its_variable_and_a_default_the_parser_accepts() -> None:
    declared = dict(Settings.variables())
    assert set(declared) == {f.name for f in dataclasses.fields(Settings)}
    for name, variable in declared.items():
        assert getattr(Settings(), name) == variable.default_value()
        assert variable.meaning, f"{variable.name} has no meaning"


def test_the_defaults_are_the_declared_ones() -> None:
    assert Settings.from_env({}) == Settings()
    assert ProbeSettings.from_env({}) == ProbeSettings()


def test_no_variable_is_declared_twice() -> None:
    names = [name for variable in all_variables() for name in variable.names]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("env", "limit"),
    [
        ({}, 256),
        ({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "64"}, 64),
        ({"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "32"}, 32),
        (
            {
                "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "64",
                "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "32",
            },
            32,
        ),
        (  # a blank value counts as unset
            {
                "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "64",
                "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": " ",
            },
            64,
        ),
    ],
)
def test_a_variable_falls_back_to_the_next_name(env: dict[str, str], limit: int) -> None:
    assert Settings.from_env(env).span_attribute_value_limit == limit


def test_an_invalid_fallback_value_names_the_variable_that_holds_it() -> None:
    env = {
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "lots",
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "",
    }
    with pytest.raises(ConfigError, match=r"^invalid OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT='lots': "):
        Settings.from_env(env)


def test_env_name_is_the_variable_behind_a_field() -> None:
    assert env_name("tls_key_file") == "PAYMENTS_TLS_KEY_FILE"
    assert env_name("ca_file", ProbeSettings) == "PAYMENTS_HEALTHCHECK_CA_FILE"
    assert env_name("span_attribute_value_limit") == "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"


@pytest.mark.parametrize(
    ("env", "endpoint", "tracing"),
    [
        ({}, None, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, "http://c:4317", True),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4317",
            },
            "http://t:4317",
            True,
        ),
        ({"OTEL_SDK_DISABLED": "TRUE"}, None, False),
        ({"OTEL_SDK_DISABLED": "yes"}, None, True),  # only "true" is true (OpenTelemetry)
    ],
)
def test_the_opentelemetry_switches(
    env: dict[str, str], endpoint: str | None, tracing: bool
) -> None:
    settings = Settings.from_env(env)
    assert (settings.otlp_endpoint, settings.otlp_export, settings.tracing) == (
        endpoint,
        endpoint is not None,
        tracing,
    )


def test_an_invalid_secret_is_named_but_never_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"PAYMENTS_STORE_URL": "mysql://u:hunter2@h/db"})
    assert str(caught.value).startswith("invalid PAYMENTS_STORE_URL: ")
    assert "hunter2" not in str(caught.value)


def test_the_effective_settings_say_where_each_value_came_from_and_hide_secrets() -> None:
    env = {
        "PAYMENTS_STORE_URL": "postgresql://app:hunter2@db:5432/payments?sslpassword=s3cret",
        "PGPASSWORD": "other-secret",
        "PAYMENTS_MAX_CONCURRENT_RPCS": "7",
    }
    rows = {line.split()[0]: line.split()[1:] for line in effective_settings(env).splitlines()[1:]}
    assert rows["PAYMENTS_MAX_CONCURRENT_RPCS"] == ["7", "set", "(PAYMENTS_MAX_CONCURRENT_RPCS)"]
    assert rows["PAYMENTS_GRPC_ADDRESS"] == ["[::]:50051", "default"]
    assert rows["PAYMENTS_STORE_URL"][0] == "postgresql://app:***@db:5432/payments?…"
    assert rows["PGPASSWORD"][0] == "***"
    assert len(rows) == len(list(all_variables()))
    rendered = effective_settings(env) + effective_settings(env, markdown=True)
    for secret in ("hunter2", "s3cret", "other-secret"):
        assert secret not in rendered


@pytest.mark.parametrize(
    ("env", "field", "value"),
    [
        ({"PAYMENTS_GRPC_ADDRESS": "127.0.0.1:0"}, "grpc_address", "127.0.0.1:0"),
        ({"PAYMENTS_GRPC_ADDRESS": "[::1]:6000"}, "grpc_address", "[::1]:6000"),
        ({"PAYMENTS_METRICS_ADDRESS": "off"}, "metrics_address", None),
        ({"PAYMENTS_METRICS_ADDRESS": "OFF"}, "metrics_address", None),
        ({"PAYMENTS_METRICS_ADDRESS": ":9000"}, "metrics_address", ":9000"),
        ({"PAYMENTS_LOG_LEVEL": "DEBUG"}, "log_level", "debug"),
        ({"PAYMENTS_LOG_FORMAT": "console"}, "log_format", "console"),
        ({"PAYMENTS_IDEMPOTENCY_TTL_SECONDS": "60"}, "idempotency_ttl_seconds", 60.0),
        ({"PAYMENTS_SHUTDOWN_GRACE_SECONDS": "0"}, "shutdown_grace_seconds", 0.0),
        ({"PAYMENTS_PROCESSOR_TIMEOUT_SECONDS": "0.5"}, "processor_timeout_seconds", 0.5),
        ({"PAYMENTS_SIMULATED_SLOW_SECONDS": "3"}, "simulated_slow_seconds", 3.0),
        ({"PAYMENTS_LOG_LEVEL": "  "}, "log_level", "info"),
        ({"PAYMENTS_ACCESS_LOG": "off"}, "access_log", False),
        ({"PAYMENTS_ACCESS_LOG": "TRUE"}, "access_log", True),
        ({"PAYMENTS_OBSERVE_HEALTH_CHECKS": "on"}, "observe_health_checks", True),
        ({"PAYMENTS_OBSERVE_HEALTH_CHECKS": "0"}, "observe_health_checks", False),
        ({"PAYMENTS_API_KEYS_FILE": "/run/secrets/keys"}, "api_keys_file", "/run/secrets/keys"),
        ({"PAYMENTS_SIMULATION": "off"}, "simulation", False),
        ({"PAYMENTS_SIMULATION": "on"}, "simulation", True),
        ({"PAYMENTS_MEMORY_STORE_MAX_MIB": "8"}, "memory_store_max_mib", 8),
        ({"PAYMENTS_MAX_CONCURRENT_RPCS": "50"}, "max_concurrent_rpcs", 50),
        ({"PAYMENTS_MAX_CONNECTION_IDLE_SECONDS": "30"}, "max_connection_idle_seconds", 30.0),
        ({"PAYMENTS_MAX_CONNECTION_AGE_SECONDS": "600"}, "max_connection_age_seconds", 600.0),
        (
            {"PAYMENTS_MAX_CONNECTION_AGE_GRACE_SECONDS": "5"},
            "max_connection_age_grace_seconds",
            5.0,
        ),
        ({"PAYMENTS_KEEPALIVE_TIME_SECONDS": "20"}, "keepalive_time_seconds", 20.0),
        ({"PAYMENTS_SHUTDOWN_DRAIN_SECONDS": "0"}, "shutdown_drain_seconds", 0.0),
        ({"PAYMENTS_SHUTDOWN_DRAIN_SECONDS": "7.5"}, "shutdown_drain_seconds", 7.5),
    ],
)
def test_each_variable_is_read(env: dict[str, str], field: str, value: object) -> None:
    assert getattr(Settings.from_env(env), field) == value


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("PAYMENTS_GRPC_ADDRESS", "50051"),
        ("PAYMENTS_GRPC_ADDRESS", "host:99999"),
        ("PAYMENTS_GRPC_ADDRESS", "host port"),
        ("PAYMENTS_METRICS_ADDRESS", "yes"),
        ("PAYMENTS_LOG_LEVEL", "verbose"),
        ("PAYMENTS_LOG_FORMAT", "xml"),
        ("PAYMENTS_IDEMPOTENCY_TTL_SECONDS", "0"),
        ("PAYMENTS_IDEMPOTENCY_TTL_SECONDS", "-5"),
        ("PAYMENTS_IDEMPOTENCY_TTL_SECONDS", "a day"),
        ("PAYMENTS_SHUTDOWN_GRACE_SECONDS", "inf"),
        ("PAYMENTS_SHUTDOWN_GRACE_SECONDS", "nan"),
        ("PAYMENTS_PROCESSOR_TIMEOUT_SECONDS", "0"),
        ("PAYMENTS_SIMULATED_SLOW_SECONDS", "-1"),
        ("PAYMENTS_ACCESS_LOG", "sometimes"),
        ("PAYMENTS_SIMULATION", "production"),
        ("PAYMENTS_MEMORY_STORE_MAX_MIB", "0"),
        ("PAYMENTS_MEMORY_STORE_MAX_MIB", "-1"),
        ("PAYMENTS_MEMORY_STORE_MAX_MIB", "1.5"),
        ("PAYMENTS_MEMORY_STORE_MAX_MIB", "256MiB"),
        ("PAYMENTS_MAX_CONCURRENT_RPCS", "0"),
        ("PAYMENTS_MAX_CONCURRENT_RPCS", "many"),
        ("PAYMENTS_MAX_CONNECTION_IDLE_SECONDS", "0"),
        ("PAYMENTS_MAX_CONNECTION_AGE_SECONDS", "-1"),
        ("PAYMENTS_MAX_CONNECTION_AGE_GRACE_SECONDS", "inf"),
        ("PAYMENTS_KEEPALIVE_TIME_SECONDS", "0"),
        ("PAYMENTS_SHUTDOWN_DRAIN_SECONDS", "-1"),
        ("PAYMENTS_SHUTDOWN_DRAIN_SECONDS", "soon"),
    ],
)
def test_an_invalid_value_names_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"^invalid {name}="):
        Settings.from_env({name: raw})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PAYMENTS_TLS_CERT_FILE": "cert.pem"}, "PAYMENTS_TLS_KEY_FILE"),
        ({"PAYMENTS_TLS_KEY_FILE": "key.pem"}, "PAYMENTS_TLS_CERT_FILE"),
        ({"PAYMENTS_TLS_CLIENT_CA_FILE": "ca.pem"}, "PAYMENTS_TLS_CLIENT_CA_FILE"),
        (
            {"PAYMENTS_TLS_KEY_FILE": "key.pem", "PAYMENTS_TLS_CLIENT_CA_FILE": "ca.pem"},
            "PAYMENTS_TLS_CERT_FILE",
        ),
    ],
)
def test_tls_files_that_do_not_go_together_name_the_missing_variable(
    env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=f"^invalid {named}="):
        Settings.from_env(env)


def test_an_export_batch_larger_than_the_export_queue_names_both_variables() -> None:
    with pytest.raises(ConfigError, match=r"^invalid OTEL_BSP_MAX_EXPORT_BATCH_SIZE=512: larger"):
        Settings.from_env(
            {"OTEL_BSP_MAX_QUEUE_SIZE": "64", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512"}
        )


def test_the_tls_files_are_read() -> None:
    settings = Settings.from_env(
        {
            "PAYMENTS_TLS_CERT_FILE": "c.pem",
            "PAYMENTS_TLS_KEY_FILE": "k.pem",
            "PAYMENTS_TLS_CLIENT_CA_FILE": "ca.pem",
        }
    )
    assert (settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file) == (
        "c.pem",
        "k.pem",
        "ca.pem",
    )
