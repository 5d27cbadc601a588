"""Settings come from the environment once; a bad value names its variable."""

from __future__ import annotations

import pytest

from payments_service.config import ConfigError, Settings


def test_defaults_match_the_documented_table() -> None:
    assert Settings.from_env({}) == Settings(
        grpc_address="[::]:50051",
        metrics_address="0.0.0.0:9464",
        log_level="info",
        log_format="json",
        idempotency_ttl_seconds=86_400,
        shutdown_grace_seconds=10,
        processor_timeout_seconds=1.0,
        simulated_slow_seconds=2.0,
        access_log=True,
        observe_health_checks=False,
        memory_store_max_mib=256,
    )


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
