"""The PAYMENTS_* variables the deployment files (compose, Kubernetes) may set."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Variables the manifests and compose set that config.py does not parse yet: other branches are
# adding them (stores, API keys, TLS, simulator switch). Once they land, config.py
# provides them and this set may shrink; a name in neither place is a typo and fails the tests.
NOT_YET_IN_CONFIG = frozenset(
    {
        "PAYMENTS_STORE_URL",
        "PAYMENTS_STORE_PASSWORD_FILE",
        "PAYMENTS_STORE_CONNECT_TIMEOUT_SECONDS",
        "PAYMENTS_API_KEYS_FILE",
        "PAYMENTS_TLS_CERT_FILE",
        "PAYMENTS_TLS_KEY_FILE",
        "PAYMENTS_TLS_CLIENT_CA_FILE",
        "PAYMENTS_SIMULATION",
    }
)


def service_reads() -> set[str]:
    """Every PAYMENTS_* name the service's settings and healthcheck read (as a string literal)."""
    package = ROOT / "src" / "payments_service"
    code = "".join((package / f).read_text() for f in ("config.py", "healthcheck.py"))
    return set(re.findall(r'"(PAYMENTS_[A-Z_]+)"', code))


def known_variables() -> set[str]:
    return service_reads() | NOT_YET_IN_CONFIG
