"""payments-service: an observability-first gRPC payments service (payments.v1.PaymentService)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("payments-service")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
