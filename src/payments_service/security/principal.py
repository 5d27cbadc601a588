"""The authenticated caller of the RPC running in this task: security owns it.

The authentication step (`Authenticator.authenticate`) resolves a call's credentials to a
`Principal` and makes it current through `authenticated`; the transport reads it with
`current_principal` and hands the merchant to the application as an argument. This is Python's
form of go-grpc-middleware's auth returning the identity in a child context: one ContextVar,
defined here and nowhere else, so tenant identity never travels inside a telemetry record.

Each RPC runs in its own task, and a task starts with a copy of its creator's context, so a
principal set for one call is never seen by another.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the merchant, and which of its keys (a non-secret name of the key: the
    first hex digits of its SHA-256, or `none` when authentication is off)."""

    merchant_id: str
    key_id: str


_current: ContextVar[Principal | None] = ContextVar("payments_principal", default=None)


def current_principal() -> Principal | None:
    """The caller of the RPC running in this task; None before authentication (fail closed)."""
    return _current.get()


def authenticated(principal: Principal) -> Principal:
    """Make `principal` the caller of the RPC running in this task, and return it."""
    _current.set(principal)
    return principal
