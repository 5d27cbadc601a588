"""The Kubernetes TLS overlay's exec probe, run for real: the environment the rendered overlay
gives the container (its files mapped from /etc/payments/tls to certificates made here) starts a
real mutual-TLS server, and `payments-healthcheck` with that same environment says SERVING."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import trustme

from tests.processes import VENV_BIN, ServerProcess
from tests.repo.test_kubernetes import OVERLAYS, render

MOUNT = "/etc/payments/tls/"


def overlay_tls_env() -> dict[str, str]:
    """The container's variables that point into the TLS Secret's mount (`render` skips, saying
    why, where kubectl is not installed)."""
    (deployment,) = [doc for doc in render(OVERLAYS["tls"]) if doc["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {
        env["name"]: env["value"]
        for env in container["env"]
        if str(env.get("value", "")).startswith(MOUNT)
        or env["name"] == "PAYMENTS_HEALTHCHECK_SERVER_NAME"
    }


def test_the_overlays_probe_says_serving_to_a_mutual_tls_server(tmp_path: Path) -> None:
    ca = trustme.CA()
    server = ca.issue_cert("payments", "payments.default.svc.cluster.local")
    files = {"tls.crt": tmp_path / "tls.crt", "tls.key": tmp_path / "tls.key"}
    server.cert_chain_pems[0].write_to_path(str(files["tls.crt"]))
    server.private_key_pem.write_to_path(str(files["tls.key"]))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    env = {
        name: str(tmp_path / value.removeprefix(MOUNT)) if value.startswith(MOUNT) else value
        for name, value in overlay_tls_env().items()
    }
    assert {"PAYMENTS_TLS_CLIENT_CA_FILE", "PAYMENTS_HEALTHCHECK_CA_FILE"} <= set(env)
    process = ServerProcess(None, **env)
    try:
        healthcheck = shutil.which("payments-healthcheck", path=VENV_BIN)
        assert healthcheck is not None
        probe = subprocess.run(
            [healthcheck],
            env={**env, "PAYMENTS_HEALTHCHECK_TARGET": f"127.0.0.1:{process.port}"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert probe.returncode == 0, probe.stdout + probe.stderr
        assert probe.stdout.strip().endswith("SERVING")
        without = {k: v for k, v in env.items() if not k.startswith("PAYMENTS_HEALTHCHECK_")}
        refused = subprocess.run(
            [healthcheck],
            env={**without, "PAYMENTS_HEALTHCHECK_TARGET": f"127.0.0.1:{process.port}"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert refused.returncode == 2  # TLS on and no CA for the probe: named, exit 2
    finally:
        process.stop()
