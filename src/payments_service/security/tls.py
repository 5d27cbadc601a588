"""TLS for the gRPC and JSON/HTTP ports: the server's certificate and key, and optionally the CA
whose client certificates they require (mutual TLS). The same files serve both listeners.

gRPC reports a bad certificate only when the first client connects, so the files are checked
here at startup with the standard `ssl` module instead: a file that cannot be read, a PEM file
without a certificate, a key that is not a PEM private key (or is encrypted) and a key that does
not match the certificate each raise ConfigError naming the variable, and the server exits 2.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from payments_service.config import ConfigError, Settings, variable

CERT_VARIABLE = variable(Settings, "tls_cert_file").name
KEY_VARIABLE = variable(Settings, "tls_key_file").name
CLIENT_CA_VARIABLE = variable(Settings, "tls_client_ca_file").name


def tls_mode(settings: Settings) -> str:
    """`off`, `tls` or `mtls`: what the gRPC port serves (logged at startup)."""
    if settings.tls_cert_file is None:
        return "off"
    return "tls" if settings.tls_client_ca_file is None else "mtls"


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """Credentials for `add_secure_port`, or None for plaintext; ConfigError on a bad file."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    cert = read_pem(CERT_VARIABLE, settings.tls_cert_file)
    key = read_pem(KEY_VARIABLE, settings.tls_key_file)
    check_certificates(CERT_VARIABLE, settings.tls_cert_file, cert)
    _check_key_matches(settings.tls_cert_file, settings.tls_key_file)
    client_ca = None
    if settings.tls_client_ca_file is not None:
        client_ca = read_pem(CLIENT_CA_VARIABLE, settings.tls_client_ca_file)
        check_certificates(CLIENT_CA_VARIABLE, settings.tls_client_ca_file, client_ca)
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def server_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The JSON/HTTP listener's TLS from the same files as `server_credentials` (call that
    first: it checks them), or None for plaintext."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file, password=b"")
    if settings.tls_client_ca_file is not None:
        context.load_verify_locations(cafile=settings.tls_client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["http/1.1"])
    return context


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
