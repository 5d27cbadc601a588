"""`ServerTls.reload` (SIGHUP) puts renewed TLS files into service without a restart, keeps the
served ones when the new files are bad, and the expiry gauge follows what is served."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
import trustme
from cryptography import x509
from prometheus_client import CollectorRegistry

from payments_service.application.service import PaymentService
from payments_service.bootstrap import build_interceptors
from payments_service.gen.payments.v1 import payments_pb2 as pb
from payments_service.gen.payments.v1 import payments_pb2_grpc as pb_grpc
from payments_service.observability.metrics import certificate_series, register_sampled
from payments_service.security.tls import ServerTls
from payments_service.transport.grpc_server import RunningServer, start_server
from tests.conftest import CapturedLogs
from tests.tls_files import TlsFiles, make_tls_files

CERTIFICATE_EXPIRY = "payments_tls_certificate_not_after_timestamp_seconds"

Credentials = grpc.ChannelCredentials
RENEWED = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path)


@pytest.fixture
async def running(service: PaymentService) -> AsyncIterator[list[RunningServer]]:
    started: list[RunningServer] = []
    yield started
    for server in started:
        await server.stop(0)
    await service.drain(5)


async def serve(service: PaymentService, tls: ServerTls, running: list[RunningServer]) -> int:
    server = await start_server(service, "127.0.0.1:0", build_interceptors(), tls.credentials())
    running.append(server)
    return server.port


def served_not_after(port: int, ca: Path) -> datetime:
    """The notAfter of the certificate a new connection to `port` is shown."""
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as connection,
    ):
        der = connection.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).not_valid_after_utc


def credentials(ca: Path, cert: Path | None = None, key: Path | None = None) -> Credentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=None if key is None else key.read_bytes(),
        certificate_chain=None if cert is None else cert.read_bytes(),
    )


async def health(port: int, client: Credentials) -> str:
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", client) as channel:
        reply = await pb_grpc.PaymentServiceStub(channel).Health(pb.HealthRequest(), timeout=5)
    return reply.status


def renew(tls: TlsFiles, ca: trustme.CA, not_after: datetime) -> None:
    """Replace the server's certificate and key files with a new pair from `ca`."""
    issued = ca.issue_cert("localhost", "127.0.0.1", not_after=not_after)
    issued.cert_chain_pems[0].write_to_path(str(tls.server_cert))
    issued.private_key_pem.write_to_path(str(tls.server_key))


def expiry_samples(registry: CollectorRegistry) -> dict[str, float]:
    return {
        sample.labels["certificate"]: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == CERTIFICATE_EXPIRY
    }


def the_ca(tls: TlsFiles) -> trustme.CA:
    """A CA the client trusts: the test's files are signed by one whose key is not kept, so a
    second CA is added to the client's trust file."""
    ca = trustme.CA()
    tls.ca.write_bytes(tls.ca.read_bytes() + ca.cert_pem.bytes())
    return ca


async def test_a_reload_serves_the_renewed_certificate_to_new_connections(
    tls: TlsFiles, service: PaymentService, running: list[RunningServer]
) -> None:
    server_tls = ServerTls(str(tls.server_cert), str(tls.server_key), None)
    registry = CollectorRegistry()
    register_sampled(registry, certificate_series(server_tls.not_after))
    port = await serve(service, server_tls, running)
    before = await asyncio.to_thread(served_not_after, port, tls.ca)
    assert expiry_samples(registry) == {"server": before.timestamp()}

    renew(tls, the_ca(tls), RENEWED)
    assert server_tls.reload()
    assert await asyncio.to_thread(served_not_after, port, tls.ca) == RENEWED
    assert await health(port, credentials(tls.ca)) == "ok"
    assert expiry_samples(registry) == {"server": RENEWED.timestamp()}
    assert server_tls.not_after() == {"server": RENEWED.timestamp()}


async def test_a_bad_file_at_reload_keeps_the_served_certificate_and_logs_one_error(
    tls: TlsFiles,
    service: PaymentService,
    running: list[RunningServer],
    captured_logs: CapturedLogs,
) -> None:
    server_tls = ServerTls(str(tls.server_cert), str(tls.server_key), None)
    port = await serve(service, server_tls, running)
    served = await asyncio.to_thread(served_not_after, port, tls.ca)
    tls.server_key.write_bytes(tls.other_key.read_bytes())  # a key of another certificate

    assert not server_tls.reload()
    assert await asyncio.to_thread(served_not_after, port, tls.ca) == served
    assert await health(port, credentials(tls.ca)) == "ok"
    assert server_tls.not_after() == {"server": served.timestamp()}
    [failed] = captured_logs.lines("tls_reload_failed")
    assert failed["level"] == "error"
    assert "PAYMENTS_TLS_KEY_FILE" in failed["error"]
    assert "BEGIN" not in captured_logs.text(), "no key material in the logs"


async def test_under_mutual_tls_the_client_ca_is_reloaded_and_reported_too(
    tls: TlsFiles,
    tmp_path: Path,
    service: PaymentService,
    running: list[RunningServer],
    captured_logs: CapturedLogs,
) -> None:
    client_ca = tmp_path / "client-ca.pem"
    client_ca.write_bytes(tls.ca.read_bytes())
    server_tls = ServerTls(str(tls.server_cert), str(tls.server_key), str(client_ca))
    port = await serve(service, server_tls, running)
    assert set(server_tls.not_after()) == {"server", "client_ca"}
    assert await health(port, credentials(tls.ca, tls.client_cert, tls.client_key)) == "ok"

    # The client CA is replaced: its clients get in, the old CA's no longer do.
    new_ca = trustme.CA()
    new_client = new_ca.issue_cert("client.example")
    new_cert, new_key = tmp_path / "new-client.pem", tmp_path / "new-client-key.pem"
    new_client.cert_chain_pems[0].write_to_path(str(new_cert))
    new_client.private_key_pem.write_to_path(str(new_key))
    new_ca.cert_pem.write_to_path(str(client_ca))
    assert server_tls.reload()
    [reloaded] = captured_logs.lines("tls_reloaded")
    assert set(reloaded["not_after"]) == {"server", "client_ca"}
    assert await health(port, credentials(tls.ca, new_cert, new_key)) == "ok"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await health(port, credentials(tls.ca, tls.client_cert, tls.client_key))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
