"""The Kubernetes manifests (deploy/kubernetes) are valid objects and agree with what the facade reads and serves.

There is no cluster here: each object is validated against the Kubernetes API's JSON schemas, strictly (an
unknown field is an error), offline with the schemas kubernetes-validate bundles. Then the cross-references a
schema cannot see: every PROXY_ name is a real setting and the values validate as production settings, the
probe and forward-auth paths are real routes that answer, names, ports, labels and Secrets line up, and the
forward-auth example sends the headers the facade reads and copies the identity headers it answers with.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from proxy.app import routes
from proxy.resource import identity
from proxy.settings import Settings
from tests.conftest import Facade

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes minor still supported upstream when this was written; the objects use only stable APIs.
KUBERNETES = "1.30.0"
KNOWN = {f"PROXY_{name.upper()}" for name in Settings.model_fields}
# What README's `kubectl create secret` lines put in the Secrets (placeholders for the values).
SECRET_VALUES = {("oauth-facade", "upstream-client-secret"): "upstream secret",
                 ("oauth-facade", "redis-url"): "redis+sentinel://:password@redis.redis.svc.cluster.local:26379/mymaster/0"}


def documents() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(MANIFESTS.rglob("*.yaml")):
        if path.name != "kustomization.yaml":
            found += [(path, document) for document in yaml.safe_load_all(path.read_text()) if document]
    return found


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [document for path, document in documents() if path.parent == MANIFESTS and document["kind"] == kind
               and (name is None or document["metadata"]["name"] == name)]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} found"
    return matches[0]


def container() -> dict[str, Any]:
    containers = one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def environment() -> dict[str, str]:
    """The facade container's PROXY_ variables: the ConfigMap's, then the Secret-backed ones (placeholders)."""
    env = {}
    for source in container()["envFrom"]:
        env.update(one("ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in container()["env"]:
        reference = variable["valueFrom"]["secretKeyRef"]
        env[variable["name"]] = SECRET_VALUES[(reference["name"], reference["key"])]
    return env


def forward_auth_example() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((MANIFESTS / "forward-auth" / "mcp-ingress.yaml").read_text()))


@pytest.mark.parametrize(("path", "document"), documents(),
                         ids=[f"{path.relative_to(MANIFESTS)}:{doc['kind']}/{doc['metadata']['name']}"
                              for path, doc in documents()])
def test_every_object_validates_against_the_kubernetes_schemas(path: Path, document: dict[str, Any]) -> None:
    """Each object is valid for the Kubernetes API (strict: no unknown field), offline."""
    kubernetes_validate.validate(document, KUBERNETES, strict=True)


def test_the_validator_refuses_a_misspelt_field() -> None:
    """The schema check can fail: a misspelt probe field in the Deployment is refused."""
    deployment = one("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_the_kustomization_names_every_manifest_of_the_base() -> None:
    """`kubectl apply -k deploy/kubernetes` applies every manifest of the folder (the forward-auth example is
    separate), in one namespace, with the image the Deployment names."""
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    files = {path.name for path in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert one("Namespace")["metadata"]["name"] == kustomization["namespace"]
    assert [image["name"] for image in kustomization["images"]] == [container()["image"]]


def test_settings_are_real_and_validate_as_production() -> None:
    """Every PROXY_ variable the Deployment sets is a setting the code reads, and together they load as
    production settings (persistent keys, Redis, an https issuer); the Redis URL is a Sentinel one."""
    env = environment()
    assert set(env) <= KNOWN, set(env) - KNOWN
    settings = Settings(_env_file=None, **{name[6:].lower(): value for name, value in env.items()})  # type: ignore[arg-type]
    assert settings.env == "production" and settings.issuer.startswith("https://")
    assert urlsplit(env["PROXY_REDIS_URL"]).scheme == "redis+sentinel"
    assert "PROXY_UPSTREAM_CLIENT_SECRET" not in one("ConfigMap")["data"]
    assert "PROXY_REDIS_URL" not in one("ConfigMap")["data"]


def test_the_signing_keys_file_is_the_mounted_secret() -> None:
    """PROXY_SIGNING_KEYS_FILE is the file the Secret volume mounts (read-only, readable by the image's group)."""
    spec = one("Deployment")["spec"]["template"]["spec"]
    keys_file = Path(environment()["PROXY_SIGNING_KEYS_FILE"])
    mount = next(m for m in container()["volumeMounts"] if m["mountPath"] == str(keys_file.parent))
    assert mount["readOnly"] is True
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "oauth-facade-signing-keys"
    assert [item["path"] for item in volume["secret"]["items"]] == [keys_file.name]
    assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsUser"] == 10001


def test_readme_creates_the_secrets_the_deployment_reads() -> None:
    """The README's `kubectl create secret` lines make every Secret and key the Deployment references."""
    readme = (ROOT / "README.md").read_text()
    created: set[tuple[str, str]] = set()
    for line in re.findall(r"^kubectl .*create secret generic .*$", readme, re.MULTILINE):
        name = re.search(r"create secret generic (\S+)", line)[1]  # type: ignore[index]
        created |= {(name, key) for key in re.findall(r"--from-(?:literal|file)=([\w.-]+)", line)}
    referenced = {(v["valueFrom"]["secretKeyRef"]["name"], v["valueFrom"]["secretKeyRef"]["key"])
                  for v in container()["env"]}
    spec = one("Deployment")["spec"]["template"]["spec"]
    referenced |= {(v["secret"]["secretName"], item["key"]) for v in spec["volumes"] if "secret" in v
                   for item in v["secret"]["items"]}
    assert referenced <= created, referenced - created


def test_probes_ports_labels_and_the_pdb_line_up() -> None:
    """Readiness on /readyz and liveness on /healthz, both GET routes of the facade on the container's port;
    the Service, PodDisruptionBudget and Ingress select and reach these pods; several replicas."""
    deployment = one("Deployment")
    facade = container()
    ports = {port["name"]: port["containerPort"] for port in facade["ports"]}
    assert ports["http"] == int(environment()["PROXY_PORT"])
    assert facade["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert facade["livenessProbe"]["httpGet"]["path"] == "/healthz"
    get_routes = {route.path for route in routes(Settings(_env_file=None)) if "GET" in route.methods}  # type: ignore[call-arg]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert facade[probe]["httpGet"]["path"] in get_routes, probe
        assert facade[probe]["httpGet"]["port"] in ports, probe
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] >= 2
    for selector in (deployment["spec"]["selector"]["matchLabels"], one("Service")["spec"]["selector"],
                     one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()
    assert one("PodDisruptionBudget")["spec"]["maxUnavailable"] < deployment["spec"]["replicas"]
    service_ports = {port["name"]: port for port in one("Service")["spec"]["ports"]}
    assert service_ports["http"]["targetPort"] in ports
    backend = one("Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == one("Service")["metadata"]["name"] and backend["port"]["name"] in service_ports
    assert facade["resources"]["requests"]["cpu"] and facade["resources"]["requests"]["memory"]
    assert facade["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_ingress_serves_the_issuer_over_tls() -> None:
    """The Ingress's host is PROXY_ISSUER's, with a TLS certificate for it."""
    ingress = one("Ingress")["spec"]
    host = urlsplit(environment()["PROXY_ISSUER"]).hostname
    assert [rule["host"] for rule in ingress["rules"]] == [host]
    assert host in ingress["tls"][0]["hosts"] and ingress["tls"][0]["secretName"]


def test_forward_auth_annotations_match_what_the_facade_reads_and_answers() -> None:
    """ingress-nginx asks the facade's /forward-auth through its Service, overwrites the original method, proto,
    host and URI headers the facade reads, copies exactly the facade's identity headers to the MCP server, and
    the protected URL is one of PROXY_RESOURCES; the RFC 9728 path reaches the facade."""
    config_map, ingress, metadata = forward_auth_example()
    annotations = ingress["metadata"]["annotations"]
    auth_url = urlsplit(annotations["nginx.ingress.kubernetes.io/auth-url"])
    service, namespace = one("Service")["metadata"]["name"], one("Namespace")["metadata"]["name"]
    assert auth_url.hostname == f"{service}.{namespace}.svc.cluster.local"
    assert auth_url.path in {route.path for route in routes(Settings(_env_file=None))}  # type: ignore[call-arg]
    assert annotations["nginx.ingress.kubernetes.io/auth-proxy-set-headers"] == (
        f"{config_map['metadata']['namespace']}/{config_map['metadata']['name']}")
    assert config_map["data"] == {"X-Forwarded-Method": "$request_method", "X-Forwarded-Proto": "$scheme",
                                  "X-Forwarded-Host": "$http_host", "X-Forwarded-Uri": "$request_uri",
                                  "X-Original-URI": "$request_uri"}
    copied = annotations["nginx.ingress.kubernetes.io/auth-response-headers"].split(",")
    assert [name.strip() for name in copied] == list(identity.NAMES)
    rule = ingress["spec"]["rules"][0]
    protected = f"https://{rule['host']}{rule['http']['paths'][0]['path']}"
    assert rule["host"] in ingress["spec"]["tls"][0]["hosts"]
    assert protected in environment()["PROXY_RESOURCES"].split()
    assert metadata["metadata"]["namespace"] == one("Namespace")["metadata"]["name"]
    assert metadata["spec"]["rules"][0]["host"] == rule["host"]
    assert metadata["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/.well-known/oauth-protected-resource"
    assert metadata["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == service


async def test_the_probe_paths_answer_200_on_a_running_facade(facade: Facade) -> None:
    """The probes' paths answer 200 on a running facade with its store up (what the kubelet expects)."""
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        async with facade.http.get(facade.url + container()[probe]["httpGet"]["path"]) as answer:
            assert answer.status == 200, probe
