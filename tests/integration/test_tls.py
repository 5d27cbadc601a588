"""TLS and mutual TLS through a real server and real channels, with certificates made at run
time. Under mutual TLS a client without a certificate from the configured CA cannot connect."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from payments_service.application.service import PaymentService
from payments_service.bootstrap import build_interceptors
from payments_service.config import ConfigError, Settings
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.security.tls import ServerTls, tls_mode
from payments_service.transport.grpc_server import RunningServer, start_server
from tests.tls_files import TlsFiles, make_tls_files


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path)


ServerFactory = Callable[..., Any]


@pytest.fixture
async def tls_server(service: PaymentService) -> AsyncIterator[ServerFactory]:
    started: list[RunningServer] = []

    async def start(settings: Settings) -> RunningServer:
        tls = ServerTls.load(settings)
        assert tls is not None
        server = await start_server(service, "127.0.0.1:0", build_interceptors(), tls.credentials())
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop(0)
    await service.drain(5)


def settings_for(tls: TlsFiles, *, mutual: bool = False) -> Settings:
    return Settings.from_env(tls.server_env(mutual=mutual))


async def health(port: int, credentials: grpc.ChannelCredentials | None) -> str:
    target = f"127.0.0.1:{port}"
    channel = (
        grpc.aio.insecure_channel(target)
        if credentials is None
        else grpc.aio.secure_channel(target, credentials)
    )
    async with channel:
        reply = await pb_grpc.PaymentServiceStub(channel).Health(pb.HealthRequest(), timeout=5)
    return reply.status


def client_credentials(
    ca: Path, cert: Path | None = None, key: Path | None = None
) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=None if key is None else key.read_bytes(),
        certificate_chain=None if cert is None else cert.read_bytes(),
    )


async def test_tls_serves_a_client_that_trusts_the_ca_and_refuses_plaintext(
    tls: TlsFiles, tls_server: ServerFactory
) -> None:
    settings = settings_for(tls)
    assert tls_mode(settings) == "tls"
    server = await tls_server(settings)
    assert await health(server.port, client_credentials(tls.ca)) == "ok"
    with pytest.raises(grpc.aio.AioRpcError) as plaintext:
        await health(server.port, None)
    assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.fixture
def stranger(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("stranger"))


async def test_a_client_that_does_not_trust_the_ca_cannot_connect(
    tls: TlsFiles, stranger: TlsFiles, tls_server: ServerFactory
) -> None:
    server = await tls_server(settings_for(tls))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await health(server.port, client_credentials(stranger.ca))
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_serves_only_clients_with_a_certificate_from_the_client_ca(
    tls: TlsFiles, tls_server: ServerFactory
) -> None:
    settings = settings_for(tls, mutual=True)
    assert tls_mode(settings) == "mtls"
    server = await tls_server(settings)
    trusted = client_credentials(tls.ca, tls.client_cert, tls.client_key)
    assert await health(server.port, trusted) == "ok"
    for refused in (
        client_credentials(tls.ca),  # no client certificate
        client_credentials(tls.ca, tls.impostor_cert, tls.impostor_key),  # another CA's
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await health(server.port, refused)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE


def test_without_tls_settings_the_port_is_plaintext() -> None:
    settings = Settings.from_env({})
    assert ServerTls.load(settings) is None
    assert tls_mode(settings) == "off"


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("variable", "make_env", "reason"),
    [
        (
            "PAYMENTS_TLS_CERT_FILE",
            lambda t, d: {**t.server_env(), "PAYMENTS_TLS_CERT_FILE": str(d / "missing.pem")},
            "cannot read the file",
        ),
        (
            "PAYMENTS_TLS_CERT_FILE",
            lambda t, d: {**t.server_env(), "PAYMENTS_TLS_CERT_FILE": _write(d / "x", "hello")},
            "not a PEM file",
        ),
        (
            "PAYMENTS_TLS_CERT_FILE",
            lambda t, d: {**t.server_env(), "PAYMENTS_TLS_CERT_FILE": str(t.server_key)},
            "no valid PEM certificate",
        ),
        (
            "PAYMENTS_TLS_KEY_FILE",
            lambda t, d: {**t.server_env(), "PAYMENTS_TLS_KEY_FILE": str(t.other_key)},
            "does not match the certificate in PAYMENTS_TLS_CERT_FILE",
        ),
        (
            "PAYMENTS_TLS_KEY_FILE",
            lambda t, d: {**t.server_env(), "PAYMENTS_TLS_KEY_FILE": str(t.server_cert)},
            "not an unencrypted PEM private key",
        ),
        (
            "PAYMENTS_TLS_KEY_FILE",
            lambda t, d: {**t.server_env(), "PAYMENTS_TLS_KEY_FILE": str(d)},
            "cannot read the file",
        ),
        (
            "PAYMENTS_TLS_CLIENT_CA_FILE",
            lambda t, d: {
                **t.server_env(),
                "PAYMENTS_TLS_CLIENT_CA_FILE": _write(
                    d / "ca.pem",
                    "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
                ),
            },
            "no valid PEM certificate",
        ),
    ],
)
def test_a_bad_or_mismatched_file_names_its_variable(
    tls: TlsFiles,
    tmp_path: Path,
    variable: str,
    make_env: Callable[[TlsFiles, Path], dict[str, str]],
    reason: str,
) -> None:
    settings = Settings.from_env(make_env(tls, tmp_path))
    with pytest.raises(ConfigError, match=f"^invalid {variable}=") as raised:
        ServerTls.load(settings)
    assert reason in str(raised.value)
