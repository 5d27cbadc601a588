"""The failures the transport itself raises (the error table maps them, with everyone else's).

They happen before the application sees a call: the request bytes do not parse, the process is
at its concurrency limit, or it is shutting down. None of them did any work, so retrying is
always safe.
"""

from __future__ import annotations


class UndecodableRequestError(Exception):
    """The request body is not a valid serialized message of the method's request type."""

    def __init__(self, message_type: str) -> None:
        self.message_type = message_type
        super().__init__(f"request body is not a valid {message_type}")


class ServerOverloadedError(Exception):
    """The process already runs its limit of concurrent calls (`PAYMENTS_MAX_CONCURRENT_RPCS`);
    this call was refused before any work was done."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"server is overloaded: {limit} calls are already in progress on this replica; "
            "nothing was done, retry after a short backoff"
        )


class ServerShuttingDownError(Exception):
    """The process is shutting down and took no new work; another replica will answer."""

    def __init__(self) -> None:
        super().__init__(
            "server is shutting down; nothing was done, retry (another replica will answer)"
        )
