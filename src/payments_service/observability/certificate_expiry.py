"""When the TLS certificates the gRPC port serves expire:
`payments_tls_certificate_not_after_timestamp_seconds{certificate="server"|"client_ca"}`.

Read at scrape time from `security.tls.ServerTls.not_after`, so a SIGHUP that installs renewed
files moves it at the next scrape. `server` is the earliest notAfter of PAYMENTS_TLS_CERT_FILE's
chain, `client_ca` that of PAYMENTS_TLS_CLIENT_CA_FILE (mutual TLS only). Plaintext: no series.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

NAME = "payments_tls_certificate_not_after_timestamp_seconds"
HELP = (
    "When the served TLS certificates expire (the earliest notAfter of the file, Unix time): "
    "server = PAYMENTS_TLS_CERT_FILE, client_ca = PAYMENTS_TLS_CLIENT_CA_FILE. Re-read on SIGHUP."
)


class CertificateExpiry(Collector):
    def __init__(self, not_after: Callable[[], Mapping[str, float]]) -> None:
        self._not_after = not_after

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(NAME, HELP, labels=("certificate",))
        for certificate, at in sorted(self._not_after().items()):
            family.add_metric((certificate,), at)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(NAME, HELP, labels=("certificate",))


def register_certificate_expiry(
    registry: CollectorRegistry, not_after: Callable[[], Mapping[str, float]]
) -> CertificateExpiry:
    collector = CertificateExpiry(not_after)
    registry.register(collector)
    return collector
