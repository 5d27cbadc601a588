"""The Kubernetes manifests under deploy/kubernetes: valid against the Kubernetes schemas, offline,
and consistent with each other, with the image and with the variables the service reads.

Each kustomization is rendered by kustomize itself, `kubectl kustomize DIRECTORY` (offline, no
cluster); where kubectl is not installed the tests that need a rendering are skipped, saying so.
Schemas come from kubernetes-validate (a locked dev dependency that carries them; nothing is
downloaded), in strict mode so a misspelt field fails. Two versions: 1.30, the oldest the
manifests support (the native `preStop: sleep` action is on by default from 1.30), and the newest
the package carries. The PodMonitor and the PrometheusRule are Prometheus Operator CRDs with no
schema there: their structure and the fields used are checked by hand.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]

from payments_service.healthcheck import LIVENESS, SERVICE
from tests.deploy_env import known_variables, service_reads

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = {"plaintext": KUBERNETES, "tls": KUBERNETES / "tls"}
EXAMPLE_SECRET = KUBERNETES / "secret.example.yaml"
TLS_SECRET = "payments-tls"  # made by cert-manager or `kubectl create secret tls`, not the example
OLDEST_SUPPORTED = "1.30"
NEWEST_CARRIED = ".".join(kubernetes_validate.latest_version().split(".")[:2])
SCHEMA_VERSIONS = (OLDEST_SUPPORTED, NEWEST_CARRIED)
# Checked against their CRD by hand: the PodMonitor below, the PrometheusRule in
# test_alert_rules.py.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
# Seconds between the end of the in-flight grace and SIGKILL: settlements, the span flush, exit.
SHUTDOWN_MARGIN_SECONDS = 3

Doc = dict[str, Any]


def load_all(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def render(directory: Path) -> list[Doc]:
    """What `kubectl kustomize DIRECTORY` renders; skips the calling test where kubectl is not
    installed."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the manifests are rendered by `kubectl kustomize`")
    rendering = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rendering.returncode == 0, f"kubectl kustomize {directory}: {rendering.stderr}"
    docs = [doc for doc in yaml.safe_load_all(rendering.stdout) if doc is not None]
    assert docs, f"kubectl kustomize {directory} rendered nothing"
    return docs


def name(doc: Doc) -> str:
    return str(doc["metadata"]["name"])


def containers(docs: list[Doc]) -> Iterator[Doc]:
    for doc in docs:
        if doc["kind"] == "Deployment":
            yield from doc["spec"]["template"]["spec"]["containers"]


def one(docs: list[Doc], kind: str) -> Doc:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(docs: list[Doc]) -> Doc:
    spec: Doc = one(docs, "Deployment")["spec"]["template"]["spec"]
    return spec


def payments_container(docs: list[Doc]) -> Doc:
    found: list[Doc] = [c for c in pod_spec(docs)["containers"] if c["name"] == "payments"]
    assert len(found) == 1
    return found[0]


def env(docs: list[Doc]) -> dict[str, Doc]:
    return {item["name"]: item for item in payments_container(docs)["env"]}


def env_value(docs: list[Doc], variable: str) -> str:
    return str(env(docs)[variable]["value"])


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def container_ports(docs: list[Doc]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in payments_container(docs)["ports"]}


def resolve_port(docs: list[Doc], port: int | str) -> int:
    return container_ports(docs)[port] if isinstance(port, str) else port


def probes(docs: list[Doc]) -> dict[str, Doc]:
    container = payments_container(docs)
    return {kind: container[kind] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}


def is_subset(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def rendered(request: pytest.FixtureRequest) -> list[Doc]:
    return render(OVERLAYS[request.param])


def schema_errors(docs: list[Doc], version: str) -> dict[str, str]:
    """kind/name -> why, for each of `docs` that is not valid against `version`'s schemas."""
    errors = {}
    for doc in docs:
        try:
            assert kubernetes_validate.validate(doc, version, strict=True) == version
        except kubernetes_validate.ValidationError as error:
            errors[f"{doc['kind']}/{name(doc)}"] = str(error)
    return errors


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_rendered_manifest_is_valid_against_the_kubernetes_schema(
    rendered: list[Doc], version: str
) -> None:
    docs = [doc for doc in rendered if (doc["apiVersion"], doc["kind"]) not in CRD_KINDS]
    assert docs
    assert schema_errors(docs, version) == {}


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_the_example_secrets_are_valid_against_the_kubernetes_schema(version: str) -> None:
    docs = load_all(EXAMPLE_SECRET)
    assert docs
    assert schema_errors(docs, version) == {}


def test_strict_schema_validation_rejects_a_misspelt_field() -> None:
    deployment = copy.deepcopy(one(render(KUBERNETES), "Deployment"))
    security = deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    security["readOnlyRootFileSystem"] = security.pop("readOnlyRootFilesystem")
    with pytest.raises(kubernetes_validate.ValidationError, match="readOnlyRootFileSystem"):
        kubernetes_validate.validate(deployment, OLDEST_SUPPORTED, strict=True)


def test_every_yaml_file_is_used_by_a_kustomization_or_is_the_example_secret() -> None:
    used = {EXAMPLE_SECRET}
    for kustomization_file in KUBERNETES.rglob("kustomization.yaml"):
        directory = kustomization_file.parent
        kustomization = yaml.safe_load(kustomization_file.read_text())
        used.add(kustomization_file)
        used |= {directory / entry for entry in kustomization.get("resources", [])}
        used |= {directory / patch["path"] for patch in kustomization.get("patches", [])}
    every = set(KUBERNETES.rglob("*.yaml")) | set(KUBERNETES.rglob("*.yml"))
    assert every - used == set()


def test_no_kustomization_applies_or_generates_a_secret(rendered: list[Doc]) -> None:
    assert [doc for doc in rendered if doc["kind"] == "Secret"] == []
    for kustomization_file in KUBERNETES.rglob("kustomization.yaml"):
        assert "secretGenerator" not in yaml.safe_load(kustomization_file.read_text())


def test_the_example_secrets_provide_every_key_the_pods_read(rendered: list[Doc]) -> None:
    example = {name(doc): set(doc["stringData"]) for doc in load_all(EXAMPLE_SECRET)}
    needed = set(secret_files(rendered).values())
    for item in payments_container(rendered)["env"]:
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            needed.add((ref["name"], ref["key"]))
    needed = {(secret, key) for secret, key in needed if secret != TLS_SECRET}
    assert ("payments-store", "url") in needed
    assert ("payments-store", "password") in needed
    assert {(secret, key) for secret, key in needed if key not in example.get(secret, ())} == set()


def test_the_example_secret_carries_no_password_in_its_url() -> None:
    [store] = [doc for doc in load_all(EXAMPLE_SECRET) if name(doc) == "payments-store"]
    assert urlsplit(store["stringData"]["url"]).password is None
    assert store["stringData"]["password"] == "REPLACE-ME"


def test_the_deployment_runs_three_replicas_selected_by_its_own_labels(
    rendered: list[Doc],
) -> None:
    deployment = one(rendered, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert is_subset(deployment["spec"]["selector"]["matchLabels"], labels)


def test_the_service_is_headless_and_selects_the_pods_on_the_grpc_and_http_ports(
    rendered: list[Doc],
) -> None:
    service = one(rendered, "Service")
    labels = one(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["clusterIP"] == "None"
    assert is_subset(service["spec"]["selector"], labels)
    ports = {port["name"]: port for port in service["spec"]["ports"]}
    assert set(ports) == {"grpc", "http"}
    for name, number in (("grpc", 50051), ("http", 8080)):
        port = ports[name]
        assert resolve_port(rendered, port["targetPort"]) == port["port"] == number


def test_the_listen_addresses_use_the_declared_container_ports(rendered: list[Doc]) -> None:
    ports = container_ports(rendered)
    assert port_of(env_value(rendered, "PAYMENTS_GRPC_ADDRESS")) == ports["grpc"] == 50051
    assert port_of(env_value(rendered, "PAYMENTS_HTTP_ADDRESS")) == ports["http"] == 8080
    assert port_of(env_value(rendered, "PAYMENTS_METRICS_ADDRESS")) == ports["metrics"] == 9464


def test_the_native_grpc_probes_ask_the_right_health_services_on_the_grpc_port() -> None:
    docs = render(KUBERNETES)
    found = probes(docs)
    assert {kind: probe["grpc"]["service"] for kind, probe in found.items()} == {
        "startupProbe": "",
        "readinessProbe": SERVICE,
        "livenessProbe": "",
    }
    assert {resolve_port(docs, probe["grpc"]["port"]) for probe in found.values()} == {
        container_ports(docs)["grpc"]
    }


def test_the_tls_overlay_replaces_every_grpc_probe_with_the_healthcheck_command() -> None:
    docs = render(KUBERNETES / "tls")
    found = probes(docs)
    for probe in found.values():
        assert "grpc" not in probe
    # Liveness asks for the server as a whole, as the native probe does: a store outage makes a
    # pod unready, never restarted.
    assert {kind: probe["exec"]["command"] for kind, probe in found.items()} == {
        "startupProbe": ["/opt/venv/bin/payments-healthcheck"],
        "readinessProbe": ["/opt/venv/bin/payments-healthcheck"],
        "livenessProbe": ["/opt/venv/bin/payments-healthcheck", LIVENESS],
    }
    variables = env(docs)
    for variable in ("PAYMENTS_TLS_CERT_FILE", "PAYMENTS_TLS_KEY_FILE"):
        assert variable in variables


def secret_files(docs: list[Doc]) -> dict[str, tuple[str, str]]:
    """Each *_FILE variable -> (Secret, key) of the file it names; fails if none is mounted."""
    volumes = {v["name"]: v for v in pod_spec(docs)["volumes"]}
    mounts = {m["mountPath"]: m for m in payments_container(docs)["volumeMounts"]}
    found = {}
    for variable, item in env(docs).items():
        if not variable.endswith("_FILE"):
            continue
        path = Path(item["value"])
        mount = mounts.get(str(path.parent))
        assert mount is not None, f"{variable}: nothing is mounted at {path.parent}"
        assert mount["readOnly"] is True
        assert "subPath" not in mount, "a subPath mount never sees an updated Secret"
        secret = volumes[mount["name"]]["secret"]
        projected = {i["path"]: i["key"] for i in secret.get("items", [])}
        assert not projected or path.name in projected, f"{variable}: {path.name} not projected"
        found[variable] = (secret["secretName"], projected.get(path.name, path.name))
    return found


def test_files_named_by_variables_live_in_mounted_secret_volumes(rendered: list[Doc]) -> None:
    found = secret_files(rendered)
    assert found["PAYMENTS_STORE_PASSWORD_FILE"] == ("payments-store", "password")
    assert found["PAYMENTS_API_KEYS_FILE"] == ("payments-api-keys", "api-keys")


def test_secret_values_reach_the_process_by_reference_never_inline(rendered: list[Doc]) -> None:
    variables = env(rendered)
    assert "value" not in variables["PAYMENTS_STORE_URL"]
    assert variables["PAYMENTS_STORE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "payments-store"
    for variable, item in variables.items():
        assert "PASSWORD" not in variable or variable.endswith("_FILE"), variable
        assert not re.search(r"://[^/@]*:[^/@]*@", str(item.get("value", ""))), variable


def test_the_pods_run_non_root_read_only_without_privileges(rendered: list[Doc]) -> None:
    dockerfile_user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert dockerfile_user is not None
    uid, gid = map(int, dockerfile_user.groups())
    pod = pod_spec(rendered)["securityContext"]
    container = payments_container(rendered)["securityContext"]
    assert pod["runAsNonRoot"] is container["runAsNonRoot"] is True
    assert pod["runAsUser"] == container["runAsUser"] == uid
    assert pod["runAsGroup"] == container["runAsGroup"] == pod["fsGroup"] == gid
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert pod["seccompProfile"] == container["seccompProfile"] == {"type": "RuntimeDefault"}


def test_the_container_has_cpu_and_memory_requests_and_limits(rendered: list[Doc]) -> None:
    resources = payments_container(rendered)["resources"]
    for bound in ("requests", "limits"):
        assert set(resources[bound]) == {"cpu", "memory"}


def test_the_simulator_is_off(rendered: list[Doc]) -> None:
    assert env_value(rendered, "PAYMENTS_SIMULATION") == "off"
    assert re.search(r"^\s+PAYMENTS_SIMULATION=off\b", (ROOT / "Dockerfile").read_text(), re.M)


def test_the_grace_period_covers_prestop_drain_grace_and_a_margin(rendered: list[Doc]) -> None:
    container = payments_container(rendered)
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(env_value(rendered, "PAYMENTS_SHUTDOWN_DRAIN_SECONDS"))
    grace = float(env_value(rendered, "PAYMENTS_SHUTDOWN_GRACE_SECONDS"))
    needed = pre_stop + drain + grace + SHUTDOWN_MARGIN_SECONDS
    assert pod_spec(rendered)["terminationGracePeriodSeconds"] >= needed


def test_liveness_never_fails_during_a_normal_shutdown(rendered: list[Doc]) -> None:
    """Health is NOT_SERVING from SIGTERM on; liveness must not restart a draining pod."""
    liveness = probes(rendered)["livenessProbe"]
    window = liveness["periodSeconds"] * liveness["failureThreshold"]
    drain = float(env_value(rendered, "PAYMENTS_SHUTDOWN_DRAIN_SECONDS"))
    grace = float(env_value(rendered, "PAYMENTS_SHUTDOWN_GRACE_SECONDS"))
    assert window > drain + grace


def test_startup_allows_for_the_store_connect_retry(rendered: list[Doc]) -> None:
    startup = probes(rendered)["startupProbe"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    assert budget > float(env_value(rendered, "PAYMENTS_STORE_CONNECT_TIMEOUT_SECONDS"))


def test_the_pdb_and_hpa_target_the_deployment(rendered: list[Doc]) -> None:
    deployment = one(rendered, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = one(rendered, "PodDisruptionBudget")
    assert is_subset(pdb["spec"]["selector"]["matchLabels"], labels)
    assert pdb["spec"]["maxUnavailable"] < deployment["spec"]["replicas"]
    hpa = one(rendered, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": deployment["apiVersion"],
        "kind": "Deployment",
        "name": name(deployment),
    }
    assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"] < hpa["spec"]["maxReplicas"]
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "cpu" in payments_container(rendered)["resources"]["requests"], "utilization needs it"


def test_the_podmonitor_scrapes_the_metrics_port_of_the_payments_pods(
    rendered: list[Doc],
) -> None:
    monitor = one(rendered, "PodMonitor")
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    assert set(monitor["spec"]) == {"selector", "podMetricsEndpoints"}
    labels = one(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert is_subset(monitor["spec"]["selector"]["matchLabels"], labels)
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}
    assert endpoint["port"] in container_ports(rendered)
    assert container_ports(rendered)[endpoint["port"]] == port_of(
        env_value(rendered, "PAYMENTS_METRICS_ADDRESS")
    )
    assert endpoint["path"] == "/metrics"


def test_every_payments_variable_the_manifests_set_is_one_the_service_reads(
    rendered: list[Doc],
) -> None:
    set_here = {variable for variable in env(rendered) if variable.startswith("PAYMENTS_")}
    assert set_here - known_variables() == set()


def test_the_variable_check_catches_a_typo() -> None:
    assert "PAYMENTS_SHUTDOWN_GRACE_SECOND" not in known_variables()
    assert "PAYMENTS_SHUTDOWN_GRACE_SECONDS" in service_reads()
