"""Who is calling: the merchant that owns the `authorization: Bearer <api key>` a call carries.

`Authenticator.authenticate` resolves a call's metadata to a `Principal` and makes it the
call's current principal (`security.principal`). With no keys file, authentication is off and
every caller is merchant `default` (the server logs a warning at startup). The key itself is
hashed and dropped here: it is never logged, put on a span or quoted in an error.

Failed authentications are limited per peer address (`failures`, a token bucket per address,
the port left out): past the limit, a call from that address is refused UNAUTHENTICATED at
once, before its key is even looked at (`AuthThrottledError`, whose access lines are sampled),
until the bucket refills. Successful calls take nothing from it.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from payments_service.security.principal import Principal, authenticated

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from payments_service.security.api_keys import KeyRing
    from payments_service.security.throttle import Buckets

DEFAULT_MERCHANT = "default"
DEFAULT_PRINCIPAL = Principal(DEFAULT_MERCHANT, "none")
UNAUTHENTICATED_MESSAGE = "a valid API key is required: send authorization: Bearer <api key>"
AUTHORIZATION_HEADER = "authorization"
MAX_KEY_LENGTH = 512
# RFC 6750 section 2.1: the scheme is case-insensitive, the credentials are a b64token.
_BEARER = re.compile(r"(?i:bearer) +([A-Za-z0-9._~+/-]+=*)")


class UnauthenticatedError(Exception):
    """The caller sent no API key, a malformed one or an unknown one.

    The message is the same in every case, so it says nothing about which keys or merchants
    exist; `reason` (missing, malformed, unknown) is for the server's own use and is never sent.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(UNAUTHENTICATED_MESSAGE)


class AuthThrottledError(UnauthenticatedError):
    """The caller's address failed authentication too often: refused at once, unexamined."""

    def __init__(self) -> None:
        super().__init__("throttled")


class Authenticator:
    def __init__(
        self,
        keys: KeyRing | None,
        *,
        failures: Buckets | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self.failures = failures  # failed authentications per peer address, or None
        self._clock = clock
        self.throttled = 0  # calls refused unexamined (AuthThrottledError)

    @property
    def enabled(self) -> bool:
        return self._keys is not None

    def authenticate(
        self, metadata: Iterable[tuple[str, str | bytes]] | None, peer: str = ""
    ) -> Principal:
        """The caller, now the current principal of this call; UnauthenticatedError (one
        message for every failure) when the metadata names no known key, AuthThrottledError
        when `peer`'s address has failed too often."""
        if self._keys is None:
            return authenticated(DEFAULT_PRINCIPAL)
        failures, address = self.failures, peer_address(peer)
        if failures is not None and failures.wait(address, self._clock()) > 0:
            self.throttled += 1
            raise AuthThrottledError
        try:
            principal = self._keys.principal_for(bearer_key(metadata))
            if principal is None:
                raise UnauthenticatedError("unknown")
        except UnauthenticatedError:
            if failures is not None:
                failures.take(address, self._clock())
            raise
        return authenticated(principal)


def peer_address(peer: str) -> str:
    """The address of a gRPC peer (`ipv4:10.0.0.1:5000`, `ipv6:[::1]:5000`, `unix:...`)
    without its port: one client's connections share it."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return f"{kind}:{rest.rpartition(':')[0]}"
    return peer


def bearer_key(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The key in the one `authorization: Bearer <key>` header, or UnauthenticatedError."""
    values = [value for key, value in metadata or () if key == AUTHORIZATION_HEADER]
    if not values:
        raise UnauthenticatedError("missing")
    if len(values) > 1 or not isinstance(values[0], str):
        raise UnauthenticatedError("malformed")
    # Bound the work on a hostile header before the regex runs.
    match = _BEARER.fullmatch(values[0]) if len(values[0]) <= 2 * MAX_KEY_LENGTH else None
    if match is None or len(match[1]) > MAX_KEY_LENGTH:
        raise UnauthenticatedError("malformed")
    return match[1]
