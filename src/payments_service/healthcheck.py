"""Container healthcheck: ask grpc.health.v1 whether the service is SERVING.

`payments-healthcheck` (or `python -m payments_service.healthcheck`) exits 0 when the server at
PAYMENTS_HEALTHCHECK_TARGET (default 127.0.0.1:<port of PAYMENTS_GRPC_ADDRESS>) answers SERVING
for payments.v1.PaymentService within PAYMENTS_HEALTHCHECK_TIMEOUT_SECONDS, and 1 otherwise: a
readiness probe. A bare TCP connect would pass while the server drains or before the servicer is
registered; this does not. `payments-healthcheck --liveness` asks for the server as a whole
(service ""), which stays SERVING while the store is unreachable: a liveness probe that must not
restart a process waiting for its database (transport.grpc_server.RunningServer).

With TLS on (PAYMENTS_TLS_CERT_FILE set) the probe needs PAYMENTS_HEALTHCHECK_CA_FILE, the CA
that signed the server's certificate, and PAYMENTS_HEALTHCHECK_SERVER_NAME when the certificate
does not name 127.0.0.1; under mutual TLS also PAYMENTS_HEALTHCHECK_CERT_FILE and
PAYMENTS_HEALTHCHECK_KEY_FILE, a client certificate signed by PAYMENTS_TLS_CLIENT_CA_FILE.
A missing or unreadable file exits 2 naming its variable.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments_service.config import ConfigError, ProbeSettings, Settings, env_name
from payments_service.security.tls import read_pem

SERVICE = "payments.v1.PaymentService"
LIVENESS = "--liveness"  # ask for the server as a whole ("")


def target_of(server: Settings, probe: ProbeSettings) -> str:
    """The probe's target: `PAYMENTS_HEALTHCHECK_TARGET`, else 127.0.0.1 and the server's port."""
    if probe.target is not None:
        return probe.target
    return f"127.0.0.1:{server.grpc_address.rsplit(':', 1)[1]}"


@dataclass(frozen=True, slots=True)
class ProbeTls:
    credentials: grpc.ChannelCredentials
    server_name: str | None = None  # the name to verify, when not the target's host


def probe_tls(server: Settings, probe: ProbeSettings) -> ProbeTls | None:
    """TLS settings for the probe, or None for plaintext; ConfigError names a bad variable."""
    ca_name, cert_name, key_name = (
        env_name(field, ProbeSettings) for field in ("ca_file", "cert_file", "key_file")
    )
    if probe.ca_file is None:
        if server.tls_cert_file is not None:
            raise ConfigError(
                f"invalid {ca_name}='': required when the server serves TLS "
                f"({env_name('tls_cert_file')} is set): the CA that signed the "
                "server certificate"
            )
        return None
    if (probe.cert_file is None) != (probe.key_file is None):
        missing = key_name if probe.key_file is None else cert_name
        raise ConfigError(f"invalid {missing}='': the client certificate needs both files")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read_pem(ca_name, probe.ca_file),
        private_key=None if probe.key_file is None else read_pem(key_name, probe.key_file),
        certificate_chain=(
            None if probe.cert_file is None else read_pem(cert_name, probe.cert_file)
        ),
    )
    return ProbeTls(credentials, probe.server_name)


def _channel(target: str, tls: ProbeTls | None) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(target)
    options = []
    if tls.server_name is not None:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return grpc.secure_channel(target, tls.credentials, options)


def check(target: str, timeout: float, tls: ProbeTls | None = None, service: str = SERVICE) -> bool:
    with _channel(target, tls) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def main() -> None:
    arguments = sys.argv[1:]
    if arguments not in ([], [LIVENESS]):
        print(f"usage: payments-healthcheck [{LIVENESS}]", file=sys.stderr)
        raise SystemExit(2)
    try:
        server = Settings.from_env(os.environ)
        probe = ProbeSettings.from_env(os.environ)
        target = target_of(server, probe)
        tls = probe_tls(server, probe)
    except ConfigError as exc:
        print(f"payments-healthcheck: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    healthy = check(target, probe.timeout_seconds, tls, "" if arguments else SERVICE)
    print(f"{target}: {'SERVING' if healthy else 'NOT SERVING'}")
    raise SystemExit(0 if healthy else 1)


if __name__ == "__main__":  # pragma: no cover - exercised through the console script
    main()
