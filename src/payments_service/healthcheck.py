"""Container healthcheck: ask grpc.health.v1 whether the service is SERVING.

`payments-healthcheck` (or `python -m payments_service.healthcheck`) exits 0 when the server at
PAYMENTS_HEALTHCHECK_TARGET (default 127.0.0.1:<port of PAYMENTS_GRPC_ADDRESS>) answers SERVING
for payments.v1.PaymentService within the timeout, and 1 otherwise. A bare TCP connect would
pass while the server drains or before the servicer is registered; this does not.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from payments_service.config import ConfigError, Settings

SERVICE = "payments.v1.PaymentService"


def default_target(env: dict[str, str] | os._Environ[str]) -> str:
    explicit = env.get("PAYMENTS_HEALTHCHECK_TARGET")
    if explicit:
        return explicit
    address = Settings.from_env(env).grpc_address
    return f"127.0.0.1:{address.rsplit(':', 1)[1]}"


def check(target: str, timeout: float = 3.0) -> bool:
    with grpc.insecure_channel(target) as channel:
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
    except ConfigError as exc:
        print(f"payments-healthcheck: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    healthy = check(target)
    print(f"{target}: {'SERVING' if healthy else 'NOT SERVING'}")
    raise SystemExit(0 if healthy else 1)


if __name__ == "__main__":  # pragma: no cover - exercised through the console script
    main()
