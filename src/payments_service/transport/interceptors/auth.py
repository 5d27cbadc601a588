"""Authentication: every unary call except the health checks needs an API key.

The merchant the key belongs to is written on the call's record: `current_merchant()` reads it
for the code below, the access log and the span report it. A missing, malformed or unknown
key raises `UnauthenticatedError`, which the error mapping turns into UNAUTHENTICATED. Streaming
methods (server reflection, health Watch) pass through untouched, as the base class does for
every interceptor: reflection describes the public API and needs no key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from payments_service.calls import current_call
from payments_service.transport.interceptors.base import UnaryBehaviorInterceptor

if TYPE_CHECKING:
    import grpc

    from payments_service.security.authenticator import Authenticator
    from payments_service.transport.interceptors.base import Behavior

# Unary methods anyone may call: a load balancer or probe has no key.
PUBLIC_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/payments.v1.PaymentService/Health"})


def current_merchant() -> str | None:
    """The authenticated merchant of the RPC running in this task; None outside one."""
    record = current_call()
    return None if record is None else record.merchant_id


class AuthInterceptor(UnaryBehaviorInterceptor):
    def __init__(self, authenticator: Authenticator) -> None:
        super().__init__()
        self._authenticator = authenticator

    def wrap(self, method: str, behavior: Behavior) -> Behavior:
        if method in PUBLIC_METHODS:
            return behavior

        async def authenticated(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            merchant_id = self._authenticator.authenticate(context.invocation_metadata())
            record = current_call()
            if record is not None:  # the observation interceptor made it for this call
                record.merchant_id = merchant_id
            return await behavior(request, context)

        return authenticated
