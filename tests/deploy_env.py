"""The PAYMENTS_* variables the deployment files (compose, Kubernetes) may set: exactly those the
settings spec declares (`config.all_variables`); a name it does not declare is a typo."""

from __future__ import annotations

from payments_service.config import all_variables


def service_reads() -> set[str]:
    """Every PAYMENTS_* variable the server or its healthcheck reads."""
    return {
        name
        for variable in all_variables()
        for name in variable.names
        if name.startswith("PAYMENTS_")
    }


def known_variables() -> set[str]:
    return service_reads()
