"""The one helper every interceptor uses to wrap a unary handler's *behaviour*.

Interceptors must act around the behaviour (the code that runs the RPC), not around
`continuation()`, which only looks the handler up: timing or catching around it measures
nothing. Streaming handlers (reflection, health Watch) pass through unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import grpc

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
    Handler = grpc.RpcMethodHandler[Any, Any]


if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # generic only in the type stubs
    _ServerInterceptor = grpc.aio.ServerInterceptor


class UnaryBehaviorInterceptor(_ServerInterceptor):
    """Base class: subclasses implement `wrap(method, behavior) -> behavior` (or, to change more
    than the behaviour, `wrap_handler`).

    The wrapped handler is built once per method and reused while the inner handler is the same
    object, so a call allocates no handler.
    """

    def __init__(self) -> None:
        self._cache: dict[str, tuple[Handler, Handler]] = {}

    def wrap(self, method: str, behavior: Behavior) -> Behavior:
        raise NotImplementedError

    def wrap_handler(self, method: str, handler: Handler) -> Handler:
        """The handler that replaces `handler`: by default, the same one around `wrap`'s
        behaviour."""
        return grpc.unary_unary_rpc_method_handler(
            self.wrap(method, cast("Behavior", handler.unary_unary)),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method: str = handler_call_details.method
        cached = self._cache.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self.wrap_handler(method, handler)
        self._cache[method] = (handler, wrapped)
        return wrapped
