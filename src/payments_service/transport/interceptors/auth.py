"""Authentication: every unary call except the health checks needs an API key.

The merchant the key belongs to is bound for the rest of the call: `current_merchant()` for the
code below, and the call state for the access log and the span. A missing, malformed or unknown
key raises `UnauthenticatedError`, which the error mapping turns into UNAUTHENTICATED. Streaming
methods (server reflection, health Watch) pass through untouched, as the base class does for
every interceptor: reflection describes the public API and needs no key.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from payments_service.transport.calls import begin_call
from payments_service.transport.interceptors.base import UnaryBehaviorInterceptor

if TYPE_CHECKING:
    import grpc

    from payments_service.security.authenticator import Authenticator
    from payments_service.transport.interceptors.base import Behavior

# Unary methods anyone may call: a load balancer or probe has no key.
PUBLIC_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/payments.v1.PaymentService/Health"})

_merchant: ContextVar[str | None] = ContextVar("payments_merchant", default=None)


def current_merchant() -> str | None:
    """The authenticated merchant of the RPC running in this task; None outside one."""
    return _merchant.get()


class AuthInterceptor(UnaryBehaviorInterceptor):
    def __init__(self, authenticator: Authenticator) -> None:
        super().__init__()
        self._authenticator = authenticator

    def wrap(self, method: str, behavior: Behavior) -> Behavior:
        if method in PUBLIC_METHODS:
            return behavior

        async def authenticated(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            merchant_id = self._authenticator.authenticate(context.invocation_metadata())
            begin_call(method).merchant_id = merchant_id
            token = _merchant.set(merchant_id)
            try:
                return await behavior(request, context)
            finally:
                _merchant.reset(token)

        return authenticated
