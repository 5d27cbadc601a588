"""Certificates made at run time with trustme: nothing is committed. One CA signs the server
certificate and a client certificate; a second, unrelated CA signs an impostor client."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    impostor_cert: Path  # a client certificate from another CA
    impostor_key: Path
    other_key: Path  # a valid key that belongs to no certificate here

    def server_env(self, *, mutual: bool = False) -> dict[str, str]:
        env = {
            "PAYMENTS_TLS_CERT_FILE": str(self.server_cert),
            "PAYMENTS_TLS_KEY_FILE": str(self.server_key),
        }
        if mutual:
            env["PAYMENTS_TLS_CLIENT_CA_FILE"] = str(self.ca)
        return env


def make_tls_files(directory: Path) -> TlsFiles:
    ca, other_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert("client.example")
    impostor = other_ca.issue_cert("client.example")
    stray = ca.issue_cert("stray.example")
    paths = {
        name: directory / f"{name}.pem"
        for name in (
            "ca",
            "server_cert",
            "server_key",
            "client_cert",
            "client_key",
            "impostor_cert",
            "impostor_key",
            "other_key",
        )
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    for name, issued in (("server", server), ("client", client), ("impostor", impostor)):
        issued.cert_chain_pems[0].write_to_path(str(paths[f"{name}_cert"]))
        issued.private_key_pem.write_to_path(str(paths[f"{name}_key"]))
    stray.private_key_pem.write_to_path(str(paths["other_key"]))
    return TlsFiles(**paths)
