"""Settings, parsed once from the environment into a frozen object at startup.

Nothing reads the environment at import time. An invalid value raises `ConfigError` naming the
variable; the entry point turns it into one line on stderr and exit status 2.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "console")
_HOST_PORT = re.compile(r"(?P<host>\[[0-9a-fA-F:.]*\]|[A-Za-z0-9.-]*):(?P<port>\d{1,5})")


class ConfigError(ValueError):
    """An environment variable has an invalid value."""


@dataclass(frozen=True, slots=True)
class Settings:
    grpc_address: str = "[::]:50051"
    metrics_address: str | None = "0.0.0.0:9464"
    log_level: str = "info"
    log_format: str = "json"
    idempotency_ttl_seconds: float = 86_400.0
    shutdown_grace_seconds: float = 10.0
    processor_timeout_seconds: float = 1.0
    simulated_slow_seconds: float = 2.0
    access_log: bool = True
    observe_health_checks: bool = False
    memory_store_max_mib: int = 256

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        defaults = cls()

        def read(name: str, parse: Callable[[str], T], default: T) -> T:
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                return default
            try:
                return parse(raw.strip())
            except ValueError as exc:
                raise ConfigError(f"invalid {name}={raw!r}: {exc}") from None

        return cls(
            grpc_address=read("PAYMENTS_GRPC_ADDRESS", _address, defaults.grpc_address),
            metrics_address=read(
                "PAYMENTS_METRICS_ADDRESS", _optional_address, defaults.metrics_address
            ),
            log_level=read("PAYMENTS_LOG_LEVEL", _choice(LOG_LEVELS), defaults.log_level),
            log_format=read("PAYMENTS_LOG_FORMAT", _choice(LOG_FORMATS), defaults.log_format),
            idempotency_ttl_seconds=read(
                "PAYMENTS_IDEMPOTENCY_TTL_SECONDS",
                _positive_float,
                defaults.idempotency_ttl_seconds,
            ),
            shutdown_grace_seconds=read(
                "PAYMENTS_SHUTDOWN_GRACE_SECONDS",
                _non_negative_float,
                defaults.shutdown_grace_seconds,
            ),
            processor_timeout_seconds=read(
                "PAYMENTS_PROCESSOR_TIMEOUT_SECONDS",
                _positive_float,
                defaults.processor_timeout_seconds,
            ),
            simulated_slow_seconds=read(
                "PAYMENTS_SIMULATED_SLOW_SECONDS",
                _non_negative_float,
                defaults.simulated_slow_seconds,
            ),
            access_log=read("PAYMENTS_ACCESS_LOG", _switch, defaults.access_log),
            observe_health_checks=read(
                "PAYMENTS_OBSERVE_HEALTH_CHECKS", _switch, defaults.observe_health_checks
            ),
            memory_store_max_mib=read(
                "PAYMENTS_MEMORY_STORE_MAX_MIB", _positive_int, defaults.memory_store_max_mib
            ),
        )


def _address(raw: str) -> str:
    match = _HOST_PORT.fullmatch(raw)
    if match is None or int(match["port"]) > 65535:
        raise ValueError("expected HOST:PORT, e.g. [::]:50051 or 127.0.0.1:50051")
    return raw


def _optional_address(raw: str) -> str | None:
    return None if raw.lower() == "off" else _address(raw)


def _switch(raw: str) -> bool:
    value = raw.lower()
    if value in ("on", "true", "1", "yes"):
        return True
    if value in ("off", "false", "0", "no"):
        return False
    raise ValueError("expected on or off")


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def _positive_float(raw: str) -> float:
    value = _non_negative_float(raw)
    if value == 0:
        raise ValueError("expected a number of seconds greater than 0")
    return value


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("expected a whole number") from None
    if value <= 0:
        raise ValueError("expected a whole number greater than 0")
    return value


def _non_negative_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise ValueError("expected a finite, non-negative number of seconds")
    return value
