"""Container healthcheck: ask grpc.health.v1 whether the service is SERVING.

`payments-healthcheck` (or `python -m payments_service.healthcheck`) exits 0 when the server at
PAYMENTS_HEALTHCHECK_TARGET (default 127.0.0.1:<port of PAYMENTS_GRPC_ADDRESS>) answers SERVING
for payments.v1.PaymentService within the timeout, and 1 otherwise. A bare TCP connect would
pass while the server drains or before the servicer is registered; this does not.

With TLS on (PAYMENTS_TLS_CERT_FILE set) the probe needs PAYMENTS_HEALTHCHECK_CA_FILE, the CA
that signed the server's certificate, and PAYMENTS_HEALTHCHECK_SERVER_NAME when the certificate
does not name 127.0.0.1; under mutual TLS also PAYMENTS_HEALTHCHECK_CERT_FILE and
PAYMENTS_HEALTHCHECK_KEY_FILE, a client certificate signed by PAYMENTS_TLS_CLIENT_CA_FILE.
A missing or unreadable file exits 2 naming its variable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments_service.config import ConfigError, Settings
from payments_service.security.tls import read_pem

SERVICE = "payments.v1.PaymentService"


def default_target(env: dict[str, str] | os._Environ[str]) -> str:
    explicit = env.get("PAYMENTS_HEALTHCHECK_TARGET")
    if explicit:
        return explicit
    address = Settings.from_env(env).grpc_address
    return f"127.0.0.1:{address.rsplit(':', 1)[1]}"


@dataclass(frozen=True, slots=True)
class ProbeTls:
    credentials: grpc.ChannelCredentials
    server_name: str | None = None  # the name to verify, when not the target's host


def probe_tls(env: Mapping[str, str]) -> ProbeTls | None:
    """TLS settings for the probe, or None for plaintext; ConfigError names a bad variable."""
    ca_file = env.get("PAYMENTS_HEALTHCHECK_CA_FILE") or None
    if ca_file is None:
        if env.get("PAYMENTS_TLS_CERT_FILE"):
            raise ConfigError(
                "invalid PAYMENTS_HEALTHCHECK_CA_FILE='': required when the server serves TLS "
                "(PAYMENTS_TLS_CERT_FILE is set): the CA that signed the server certificate"
            )
        return None
    cert_file = env.get("PAYMENTS_HEALTHCHECK_CERT_FILE") or None
    key_file = env.get("PAYMENTS_HEALTHCHECK_KEY_FILE") or None
    if (cert_file is None) != (key_file is None):
        missing = (
            "PAYMENTS_HEALTHCHECK_KEY_FILE"
            if key_file is None
            else "PAYMENTS_HEALTHCHECK_CERT_FILE"
        )
        raise ConfigError(f"invalid {missing}='': the client certificate needs both files")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read_pem("PAYMENTS_HEALTHCHECK_CA_FILE", ca_file),
        private_key=None
        if key_file is None
        else read_pem("PAYMENTS_HEALTHCHECK_KEY_FILE", key_file),
        certificate_chain=(
            None if cert_file is None else read_pem("PAYMENTS_HEALTHCHECK_CERT_FILE", cert_file)
        ),
    )
    return ProbeTls(credentials, env.get("PAYMENTS_HEALTHCHECK_SERVER_NAME") or None)


def _channel(target: str, tls: ProbeTls | None) -> grpc.Channel:
    if tls is None:
        return grpc.insecure_channel(target)
    options = []
    if tls.server_name is not None:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return grpc.secure_channel(target, tls.credentials, options)


def check(target: str, timeout: float = 3.0, tls: ProbeTls | None = None) -> bool:
    with _channel(target, tls) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def main() -> None:
    try:
        target = default_target(os.environ)
        tls = probe_tls(os.environ)
    except ConfigError as exc:
        print(f"payments-healthcheck: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    healthy = check(target, tls=tls)
    print(f"{target}: {'SERVING' if healthy else 'NOT SERVING'}")
    raise SystemExit(0 if healthy else 1)


if __name__ == "__main__":  # pragma: no cover - exercised through the console script
    main()
