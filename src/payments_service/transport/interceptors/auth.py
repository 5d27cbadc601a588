"""Authentication, then the caller's rate: every unary call except the health checks.

The authenticator resolves the call's `authorization: Bearer <api key>` to a `Principal` and
makes it the call's current principal (`security.principal`); the servicer reads it from there.
With authentication off, every caller is the `default` merchant. A missing, malformed or
unknown key raises `UnauthenticatedError`, which the observation interceptor around this one
answers UNAUTHENTICATED through the error table. Once the caller is known, its merchant's rate
limit (`transport.admission.MerchantRateLimit`) takes a token or refuses the call
(`RateLimitedError`, RESOURCE_EXHAUSTED); both in this one frame. Streaming methods (server
reflection, health Watch) pass through untouched, as the base class does for every
interceptor: reflection describes the public API and needs no key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from payments_service.transport.interceptors.base import UnaryBehaviorInterceptor

if TYPE_CHECKING:
    import grpc

    from payments_service.security.authenticator import Authenticator
    from payments_service.security.principal import Principal
    from payments_service.transport.admission import MerchantRateLimit
    from payments_service.transport.interceptors.base import Behavior

# Unary methods anyone may call: a load balancer or probe has no key.
PUBLIC_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/payments.v1.PaymentService/Health"})

Metadata = Iterable[tuple[str, str | bytes]] | None
Authenticate = Callable[[Metadata, str], "Principal"]


def admit_caller(
    authenticate: Authenticate,
    rate_limit: MerchantRateLimit | None,
    metadata: Metadata,
    peer: str,
) -> Principal:
    """The caller of a call with `metadata` from `peer`, once its merchant's rate admits it:
    both transports' one order (UnauthenticatedError or RateLimitedError otherwise)."""
    principal = authenticate(metadata, peer)
    if rate_limit is not None:
        rate_limit.admit(principal.merchant_id)
    return principal


class AuthInterceptor(UnaryBehaviorInterceptor):
    def __init__(
        self, authenticator: Authenticator, rate_limit: MerchantRateLimit | None = None
    ) -> None:
        super().__init__()
        self._authenticator = authenticator
        self._rate_limit = rate_limit

    def wrap(self, method: str, behavior: Behavior) -> Behavior:
        if method in PUBLIC_METHODS:
            return behavior
        authenticate = self._authenticator.authenticate
        rate_limit = self._rate_limit

        async def authenticated(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            admit_caller(authenticate, rate_limit, context.invocation_metadata(), context.peer())
            return await behavior(request, context)

        return authenticated
