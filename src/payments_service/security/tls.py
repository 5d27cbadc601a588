"""TLS for the gRPC and JSON/HTTP ports: the server's certificate and key, and optionally the CA
whose client certificates they require (mutual TLS). The same files serve both listeners.

gRPC reports a bad certificate only when the first client connects, so the files are checked
here at startup with the standard `ssl` module instead: a file that cannot be read, a PEM file
without a certificate, a key that is not a PEM private key (or is encrypted) and a key that does
not match the certificate each raise ConfigError naming the variable, and the server exits 2.

`ServerTls` serves the files through grpc's dynamic credentials, so `reload()` (SIGHUP) puts
renewed files into service without a restart: grpc asks for the configuration before each new
connection's handshake, and connections already open keep the certificate they started with
(the max connection age ends them). A bad file at reload keeps the served ones and logs one
error. `not_after()` says when the served certificates expire (the
`payments_tls_certificate_not_after_timestamp_seconds` gauge).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import structlog

from payments_service.config import ConfigError, Settings, variable
from payments_service.security.certificates import earliest_not_after

CERT_VARIABLE = variable(Settings, "tls_cert_file").name
KEY_VARIABLE = variable(Settings, "tls_key_file").name
CLIENT_CA_VARIABLE = variable(Settings, "tls_client_ca_file").name
# The `certificate` label of each file's expiry.
SERVER_CERTIFICATE = "server"
CLIENT_CA_CERTIFICATE = "client_ca"

log = structlog.get_logger(__name__)


def tls_mode(settings: Settings) -> str:
    """`off`, `tls` or `mtls`: what the gRPC port serves (logged at startup)."""
    if settings.tls_cert_file is None:
        return "off"
    return "tls" if settings.tls_client_ca_file is None else "mtls"


@dataclass(frozen=True, slots=True)
class _Files:
    """The checked contents of the TLS files, and when their certificates expire."""

    cert: bytes
    key: bytes
    client_ca: bytes | None
    not_after: dict[str, float]  # Unix time, by `certificate` label

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self.key, self.cert)], root_certificates=self.client_ca
        )


class ServerTls:
    """The gRPC port's certificate, key and client CA, re-read by `reload()` (module docstring)."""

    def __init__(self, cert_file: str, key_file: str, client_ca_file: str | None) -> None:
        """Read and check the files now; ConfigError on a bad one."""
        self._paths = (cert_file, key_file, client_ca_file)
        self._files = _read_files(*self._paths)
        self._renewed: grpc.ServerCertificateConfiguration | None = None
        self._ssl: ssl.SSLContext | None = None

    @classmethod
    def load(cls, settings: Settings) -> ServerTls | None:
        """The files `settings` name, or None for plaintext."""
        if settings.tls_cert_file is None or settings.tls_key_file is None:
            return None
        return cls(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)

    def credentials(self) -> grpc.ServerCredentials:
        # grpc-stubs omits the None that grpc's docstring allows the fetcher ("no change").
        return grpc.dynamic_ssl_server_credentials(
            self._files.configuration(),
            self._fetch,  # type: ignore[arg-type]
            require_client_authentication=self._files.client_ca is not None,
        )

    def ssl_context(self) -> ssl.SSLContext:
        """The JSON/HTTP listener's TLS, from the same files. `reload()` loads renewed files
        into this same context, so new connections get them too (a renewed client CA is added
        to the ones trusted; one is only dropped by a restart)."""
        if self._ssl is None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.set_alpn_protocols(["http/1.1"])
            self._ssl = context
            self._load_into(context)
        return self._ssl

    def _load_into(self, context: ssl.SSLContext) -> None:
        cert_file, key_file, client_ca_file = self._paths
        context.load_cert_chain(cert_file, key_file, password=b"")
        if client_ca_file is not None:
            context.load_verify_locations(cafile=client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED

    def reload(self) -> bool:
        """Re-read the files (SIGHUP); new connections get them. A bad file keeps the served
        ones and logs one error."""
        try:
            files = _read_files(*self._paths)
        except ConfigError as exc:
            log.error("tls_reload_failed", error=str(exc))
            return False
        self._files = files
        self._renewed = files.configuration()
        if self._ssl is not None:
            self._load_into(self._ssl)
        log.info(
            "tls_reloaded",
            not_after={
                name: datetime.fromtimestamp(at, UTC).isoformat()
                for name, at in files.not_after.items()
            },
        )
        return True

    def not_after(self) -> dict[str, float]:
        """When the served certificates expire (Unix time), by `certificate` label."""
        return dict(self._files.not_after)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """grpc asks before each handshake (on one of its threads): the renewed files once,
        then None (no change)."""
        renewed, self._renewed = self._renewed, None
        return renewed


def _read_files(cert_file: str, key_file: str, client_ca_file: str | None) -> _Files:
    cert = read_pem(CERT_VARIABLE, cert_file)
    key = read_pem(KEY_VARIABLE, key_file)
    check_certificates(CERT_VARIABLE, cert_file, cert)
    _check_key_matches(cert_file, key_file)
    not_after = {SERVER_CERTIFICATE: _not_after(CERT_VARIABLE, cert_file, cert)}
    client_ca = None
    if client_ca_file is not None:
        client_ca = read_pem(CLIENT_CA_VARIABLE, client_ca_file)
        check_certificates(CLIENT_CA_VARIABLE, client_ca_file, client_ca)
        not_after[CLIENT_CA_CERTIFICATE] = _not_after(CLIENT_CA_VARIABLE, client_ca_file, client_ca)
    return _Files(cert, key, client_ca, not_after)


def _not_after(variable: str, path: str, pem: bytes) -> float:
    try:
        return earliest_not_after(pem).timestamp()
    except ValueError as exc:
        raise ConfigError(f"invalid {variable}={path!r}: {exc}") from None


def read_pem(variable: str, path: str) -> bytes:
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        reason = f"cannot read the file: {exc.strerror or type(exc).__name__}"
        raise ConfigError(f"invalid {variable}={path!r}: {reason}") from None
    if not content.isascii() or b"-----BEGIN " not in content:
        raise ConfigError(f"invalid {variable}={path!r}: not a PEM file")
    return content


def check_certificates(variable: str, path: str, pem: bytes) -> None:
    """The PEM data holds at least one parseable certificate."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=pem.decode())
    except ssl.SSLError:
        raise ConfigError(f"invalid {variable}={path!r}: no valid PEM certificate") from None


def _check_key_matches(cert_path: str, key_path: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # An empty password: an encrypted key fails here instead of prompting on a terminal.
        context.load_cert_chain(cert_path, key_path, password=b"")
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            reason = f"the private key does not match the certificate in {CERT_VARIABLE}"
        else:
            reason = "not an unencrypted PEM private key"
        raise ConfigError(f"invalid {KEY_VARIABLE}={key_path!r}: {reason}") from None
