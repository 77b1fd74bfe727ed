"""Kubernetes packaging helpers: render the Helm chart, regenerate `deploy/k8s`, validate
manifests, and run the test API server.

- The chart is rendered with `helm-python-sdk` (`import helm_python`), which binds Helm's Go SDK
  (libhelm_c, shipped in the wheel) through ctypes: the package has no `helm` binary, so lint and
  template go through its functions. `render()` passes `kube_version` to the native call because
  the Python wrapper does not expose it; the package is pinned in requirements.txt.
- `deploy/render.sh` calls `python k8s_env.py render` to regenerate `deploy/k8s/*.yaml` and the
  `$defs` of the chart's `values.schema.json` (copied from `docs/config.schema.json`);
  `python k8s_env.py check` (and test_k8s_manifests.py) fail when they are stale.
- `ApiServer` starts and stops the real kube-apiserver + etcd of `k8s-testenv.sh` (see
  `../shared/tools/k8s-testenv.sh`; `K8S_TESTENV` overrides the script's path and
  `K8S_TESTENV_ROOT` where it builds and runs).
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "deploy" / "helm" / "portcullis"
CI_VALUES_DIR = CHART_DIR / "ci"
DEPLOY_DIR = REPO_ROOT / "deploy" / "k8s"
CONFIG_SCHEMA = REPO_ROOT / "docs" / "config.schema.json"
VALUES_SCHEMA = CHART_DIR / "values.schema.json"

#: Release name and namespace of the plain manifests in deploy/k8s.
RELEASE = "portcullis"
NAMESPACE = "portcullis"
#: Kubernetes version the plain manifests are rendered for (API versions chosen by the chart).
#: Fixed, so that the output does not depend on the Helm SDK's default.
RENDER_KUBE_VERSION = "v1.30.0"

#: Helm's install order (pkg/release/util/kind_sorter.go); `helm template` prints in this order.
INSTALL_ORDER = [
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
    "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
    "CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
    "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
    "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
    "APIService",
]


def ci_values(name: str) -> dict[str, Any]:
    """The chart's `ci/<name>-values.yaml` (the example value sets lint and tests use)."""
    return yaml.safe_load((CI_VALUES_DIR / f"{name}-values.yaml").read_text(encoding="utf-8")) or {}


# --- rendering ---------------------------------------------------------------------------------


@dataclass
class Doc:
    """One rendered Kubernetes object."""

    source: str  # template path, e.g. portcullis/templates/deployment.yaml
    text: str  # the YAML as rendered (comments kept)
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.obj.get("kind", "")

    @property
    def name(self) -> str:
        return self.obj.get("metadata", {}).get("name", "")


class UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a mapping with the same key twice (PyYAML keeps the last one
    silently; the API server's decoder may refuse or keep either)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class RenderError(Exception):
    """The chart refused to render (a `fail` in a template, or invalid values)."""


def _helm():
    import helm_python  # noqa: PLC0415 (imported lazily: only rendering needs it)

    return helm_python


def lint(values: dict[str, Any] | None = None, kube_version: str | None = None) -> dict[str, Any]:
    """`helm lint --strict` of the chart with `values`; the report as a dict."""
    return _helm().lint(CHART_DIR, values, strict=True, kube_version=kube_version)


def render(
    values: dict[str, Any] | None = None,
    *,
    kube_version: str = RENDER_KUBE_VERSION,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> list[Doc]:
    """`helm template` with `values` (checked against values.schema.json first, as `helm
    install` does): every non-empty document, in Helm's install order."""
    helm = _helm()
    from helm_python import _native  # noqa: PLC0415

    values = values or {}
    with helm.Chart.load(CHART_DIR) as chart:
        try:
            chart.validate_schema(values)
            options = {"name": release, "namespace": namespace, "kube_version": kube_version,
                       "is_install": True}
            rendered = json.loads(
                _native.call_string(
                    "helm_render", chart._raw(), json.dumps(values), json.dumps(options)
                )
            )
        except helm.HelmError as error:
            raise RenderError(str(error)) from error
    docs = []
    for source in sorted(rendered):
        if not source.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        for text in re.split(r"^---\s*$", rendered[source], flags=re.MULTILINE):
            obj = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
            if obj:
                docs.append(Doc(source, text.strip("\n") + "\n", obj))

    def order(doc: Doc) -> tuple[int, str, str]:
        kind = doc.kind
        rank = INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)
        return (rank, kind, doc.name)

    return sorted(docs, key=order)


def notes(values: dict[str, Any] | None = None) -> str:
    """The rendered NOTES.txt."""
    helm = _helm()
    with helm.Chart.load(CHART_DIR) as chart:
        rendered = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE)
    return next(text for source, text in rendered.items() if source.endswith("NOTES.txt"))


def manifest_text(docs: list[Doc], header: str) -> str:
    """Documents as one multi-document YAML file, like `helm template` prints them."""
    parts = [header.rstrip("\n") + "\n"]
    for doc in docs:
        parts.append(f"---\n# Source: {doc.source}\n{doc.text}")
    return "".join(parts)


@dataclass(frozen=True)
class Output:
    """One generated file in deploy/k8s."""

    file: str
    values_name: str | None  # ci/<name>-values.yaml, or None for the chart's defaults
    kinds: tuple[str, ...] = ()  # only these kinds (all when empty)
    name_suffix: str = ""  # only objects whose name ends with this
    what: str = ""

    def values(self) -> dict[str, Any]:
        return ci_values(self.values_name) if self.values_name else {}

    def render_text(self) -> str:
        docs = [
            doc
            for doc in render(self.values())
            if (not self.kinds or doc.kind in self.kinds) and doc.name.endswith(self.name_suffix)
        ]
        values_from = (
            f"deploy/helm/portcullis/ci/{self.values_name}-values.yaml"
            if self.values_name
            else "the chart's default values"
        )
        header = (
            f"# {self.what}\n"
            f"# Generated by deploy/render.sh from deploy/helm/portcullis with {values_from}\n"
            f"# (release `{RELEASE}`, namespace `{NAMESPACE}`, Kubernetes {RENDER_KUBE_VERSION}).\n"
            "# Do not edit: change the chart or its values and run deploy/render.sh.\n"
        )
        return manifest_text(docs, header)


OUTPUTS = [
    Output(
        "portcullis.yaml",
        None,
        what="Portcullis, one replica with its SQLite store on an emptyDir.",
    ),
    Output(
        "portcullis-replicated.yaml",
        "replicated",
        what="Portcullis, three replicas sharing PostgreSQL (store) and Redis (rate limits).",
    ),
    Output(
        "model-server-networkpolicy.yaml",
        "model-server",
        kinds=("NetworkPolicy",),
        name_suffix="-model-server",
        what="Model server pods (namespace `models`, label app.kubernetes.io/name=vllm) admit "
        "only Portcullis.",
    ),
]


def values_schema_text() -> str:
    """values.schema.json with its `$defs` set to the gateway's configuration schema."""
    schema = json.loads(VALUES_SCHEMA.read_text(encoding="utf-8"))
    config = json.loads(CONFIG_SCHEMA.read_text(encoding="utf-8"))
    defs = {"PortcullisConfig": {k: v for k, v in config.items() if k not in ("$schema", "$defs")}}
    defs.update(config.get("$defs", {}))
    schema["$defs"] = defs
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def stale_files() -> list[str]:
    """Generated files whose content differs from a fresh render (paths from the repo root)."""
    stale = []
    schema = values_schema_text()
    if VALUES_SCHEMA.read_text(encoding="utf-8") != schema:
        stale.append(str(VALUES_SCHEMA.relative_to(REPO_ROOT)))
    for output in OUTPUTS:
        path = DEPLOY_DIR / output.file
        if not path.exists() or path.read_text(encoding="utf-8") != output.render_text():
            stale.append(str(path.relative_to(REPO_ROOT)))
    expected = {output.file for output in OUTPUTS}
    for path in sorted(DEPLOY_DIR.glob("*.yaml")):
        if path.name not in expected:
            stale.append(f"{path.relative_to(REPO_ROOT)} (not generated)")
    return stale


def write_generated() -> list[str]:
    """Regenerates the files; returns those that changed."""
    changed = []
    schema = values_schema_text()
    if VALUES_SCHEMA.read_text(encoding="utf-8") != schema:
        VALUES_SCHEMA.write_text(schema, encoding="utf-8")
        changed.append(str(VALUES_SCHEMA.relative_to(REPO_ROOT)))
    DEPLOY_DIR.mkdir(parents=True, exist_ok=True)
    for output in OUTPUTS:
        path = DEPLOY_DIR / output.file
        text = output.render_text()
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(str(path.relative_to(REPO_ROOT)))
    return changed


# --- reading rendered objects, running their config locally -------------------------------------

#: Backing services on this machine (.ci/run starts PostgreSQL; the machine runs Redis).
POSTGRES_URL = os.environ.get(
    "PORTCULLIS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PORTCULLIS_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def one(docs: list[Doc], kind: str, name_suffix: str = "") -> dict[str, Any]:
    """The single object of `kind` whose name ends with `name_suffix`."""
    found = [doc.obj for doc in docs if doc.kind == kind and doc.name.endswith(name_suffix)]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} *{name_suffix}, got {[d.name for d in docs]}")
    return found[0]


def rendered_config(docs: list[Doc]) -> dict[str, Any]:
    """The portcullis.yaml of the rendered config ConfigMap, parsed."""
    return yaml.safe_load(one(docs, "ConfigMap", "-config")["data"]["portcullis.yaml"])


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_signed_ca(directory: Path) -> Path:
    """A PEM CA certificate (stands in for the cluster CA the pod gets)."""
    key, cert = directory / "ca.key", directory / "ca.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=test-cluster-ca", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert


def localize(
    config: dict[str, Any], docs: list[Doc], work: Path, label: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The pod's config rewritten for this machine, and the environment the pod would get from
    its Secrets. Only paths, addresses and backing-service URLs change; every other key is the
    chart's."""
    config = copy.deepcopy(config)
    env: dict[str, str] = {}
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    for item in container.get("env", []):
        if "secretKeyRef" in item.get("valueFrom", {}):
            env[item["name"]] = f"test-{item['name'].lower()}-{secrets.token_hex(8)}"
    config.pop("listen")  # --listen 127.0.0.1:0
    if "admin" in config:
        config["admin"]["listen"] = f"127.0.0.1:{free_port()}"  # must differ from `listen`
    store = config.setdefault("store", {})
    if store.get("backend", "sqlite") == "sqlite":
        store["path"] = str(work / "data" / "portcullis.db")
        (work / "data").mkdir()
    else:
        env[store["url_env"]] = POSTGRES_URL
        store["schema"] = f"k8s_{re.sub('[^a-z0-9]', '_', label.lower())}_{secrets.token_hex(4)}"
    limits = config.get("rate_limits", {})
    if limits.get("backend") == "redis":
        env[limits["redis"]["url_env"]] = REDIS_URL
        limits["redis"]["key_prefix"] = f"portcullis-test-{secrets.token_hex(4)}:"
    if config.get("policy", {}).get("bundle"):
        bundle = work / "policy"
        bundle.mkdir()
        for file, text in one(docs, "ConfigMap", "-policy")["data"].items():
            (bundle / file).write_text(text)
        config["policy"]["bundle"] = str(bundle)
    audit = config.get("audit", {})
    if audit.get("signing_key_file"):
        key = work / "ed25519.key"
        key.write_text(secrets.token_hex(32))
        audit["signing_key_file"] = str(key)
    if audit.get("jsonl_path"):
        audit["jsonl_path"] = str(work / "audit.jsonl")
    for issuer in config.get("auth", {}).get("jwt", []):
        if issuer.get("kind") == "kubernetes":
            # Nothing listens on port 1: the JWKS is fetched when a token arrives, not at start.
            issuer["jwks_url"] = "https://127.0.0.1:1/openid/v1/jwks"
            issuer["ca_file"] = str(self_signed_ca(work))
            token = work / "token"
            token.write_text("not-a-real-token")
            issuer["token_file"] = str(token)
    tracing = config.get("telemetry", {}).get("tracing", {})
    if tracing.get("endpoint"):
        tracing["endpoint"] = "http://127.0.0.1:1"
    return config, env


def drop_schema(schema: str) -> None:
    """Drops a PostgreSQL schema a test created (best effort: needs psql)."""
    psql = shutil.which("psql")
    if psql and re.fullmatch(r"[a-z0-9_]+", schema):
        subprocess.run(
            [psql, POSTGRES_URL, "-qc", f"DROP SCHEMA IF EXISTS {schema} CASCADE"],
            capture_output=True,
            timeout=30,
        )


# --- validation --------------------------------------------------------------------------------


#: Kubernetes versions manifests are validated against with kubernetes-validate: the test API
#: server's minor version and the newest one the pinned kubernetes-validate bundles.
VALIDATE_VERSIONS = ("1.20.0", "1.28.0")

#: A minimal schema of the Prometheus Operator's ServiceMonitor (monitoring.coreos.com/v1),
#: covering the fields the chart writes. kubernetes-validate knows only built-in kinds.
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["endpoints", "selector"],
            "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        },
                        "matchExpressions": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "key": {"type": "string"},
                                    "operator": {"type": "string"},
                                    "values": {"type": "array", "items": {"type": "string"}},
                                },
                            },
                        },
                    },
                },
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "targetPort": {"type": ["string", "integer"]},
                            "path": {"type": "string"},
                            "scheme": {"type": "string", "enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": "^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                            "honorLabels": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}

#: The same fields as a CustomResourceDefinition, so that the test API server accepts
#: ServiceMonitors (the real CRD ships with the Prometheus Operator).
SERVICE_MONITOR_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {
            "kind": "ServiceMonitor",
            "listKind": "ServiceMonitorList",
            "plural": "servicemonitors",
            "singular": "servicemonitor",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                k: v
                                for k, v in SERVICE_MONITOR_SCHEMA["properties"]["spec"].items()
                                if k != "additionalProperties"
                            }
                        },
                    }
                },
            }
        ],
    },
}


def _crd_schema(schema: Any) -> Any:
    """A JSON Schema turned into a structural CRD schema (no const/additionalProperties:false,
    `type` a single string)."""
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key == "additionalProperties" and value is False:
                continue
            if key == "type" and isinstance(value, list):
                out["x-kubernetes-int-or-string"] = True
                continue
            out[key] = _crd_schema(value)
        return out
    if isinstance(schema, list):
        return [_crd_schema(item) for item in schema]
    return schema


SERVICE_MONITOR_CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = _crd_schema(
    SERVICE_MONITOR_CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
)


def validate(doc: dict[str, Any], version: str) -> None:
    """Validates one object strictly (unknown fields fail): built-in kinds with
    kubernetes-validate, ServiceMonitor with SERVICE_MONITOR_SCHEMA. Raises on a problem."""
    if doc.get("apiVersion", "").startswith("monitoring.coreos.com/"):
        import jsonschema  # noqa: PLC0415

        jsonschema.validate(doc, SERVICE_MONITOR_SCHEMA)
        return
    import kubernetes_validate  # noqa: PLC0415

    kubernetes_validate.validate(doc, version, strict=True)


# --- the test API server -----------------------------------------------------------------------


def testenv_script() -> Path:
    """k8s-testenv.sh: `$K8S_TESTENV`, else `../shared/tools/k8s-testenv.sh` beside the repo."""
    override = os.environ.get("K8S_TESTENV")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "tools" / "k8s-testenv.sh"


def testenv_root() -> Path:
    """Where k8s-testenv.sh builds and runs (its own default: $TMPDIR/k8s-testenv)."""
    root = os.environ.get("K8S_TESTENV_ROOT")
    return Path(root) if root else Path(os.environ.get("TMPDIR") or "/tmp") / "k8s-testenv"


API_SERVER = "https://127.0.0.1:6443"
ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_TOKEN = "test-admin-token"
#: Bound on the API server answering /readyz after `start`.
API_SERVER_START_TIMEOUT_S = 120.0


@dataclass
class ApiServer:
    """A running test API server (etcd + kube-apiserver v1.20 on 127.0.0.1:6443)."""

    root: Path
    started_here: bool
    start_seconds: float
    kubectl_path: str = field(default_factory=lambda: shutil.which("kubectl") or "/usr/bin/kubectl")

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.root / "run" / "certs" / "apiserver.crt"

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`kubectl --kubeconfig ... ARGS`; raises with its output when it fails and `check`."""
        argv = [self.kubectl_path, "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=120, env=_no_proxy_env()
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def apply(self, obj: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps(obj))

    def token(self, namespace: str, service_account: str, audience: str | None) -> str:
        """A one-hour token of `service_account` from the TokenRequest API (what `kubectl create
        token` does; posted raw so that any kubectl version works). Without `audience`, the
        API server's own audience."""
        spec: dict[str, Any] = {"expirationSeconds": 3600}
        if audience:
            spec["audiences"] = [audience]
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
        result = self.kubectl("create", "--raw", path, "-f", "-", input=json.dumps(request))
        return json.loads(result.stdout)["status"]["token"]

    def served_api_versions(self) -> set[str]:
        return set(self.kubectl("api-versions").stdout.split())


def _no_proxy_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(key, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def api_server_ready(timeout: float = 2.0) -> bool:
    result = subprocess.run(
        ["curl", "-sfk", "--max-time", str(timeout), "-H", f"Authorization: Bearer {ADMIN_TOKEN}",
         f"{API_SERVER}/readyz"],
        capture_output=True,
        env=_no_proxy_env(),
    )
    return result.returncode == 0


def api_server_binary() -> Path:
    return testenv_root() / "bin" / "kube-apiserver"


def start_api_server() -> ApiServer:
    """Starts etcd and the API server with k8s-testenv.sh (or reuses one already answering on
    127.0.0.1:6443 with the test token) and waits for /readyz."""
    root = testenv_root()
    if api_server_ready():
        return ApiServer(root, started_here=False, start_seconds=0.0)
    env = _no_proxy_env() | {"K8S_TESTENV_ROOT": str(root)}
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(testenv_script()), "start"],
        capture_output=True,
        text=True,
        env=env,
        timeout=API_SERVER_START_TIMEOUT_S + 30,
    )
    server = ApiServer(root, started_here=True, start_seconds=0.0)
    deadline = started + API_SERVER_START_TIMEOUT_S
    while not api_server_ready():
        if time.monotonic() > deadline or result.returncode != 0:
            logs = ""
            for name in ("apiserver.log", "etcd.log"):
                log = root / "run" / name
                if log.exists():
                    logs += f"\n--- {log} (last lines) ---\n" + "\n".join(
                        log.read_text(errors="replace").splitlines()[-30:]
                    )
            stop_api_server(server)
            raise RuntimeError(
                f"the test API server did not become ready (k8s-testenv.sh start exited "
                f"{result.returncode})\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}{logs}"
            )
        time.sleep(0.2)
    server.start_seconds = time.monotonic() - started
    return server


def stop_api_server(server: ApiServer) -> None:
    if not server.started_here:
        return
    env = _no_proxy_env() | {"K8S_TESTENV_ROOT": str(server.root)}
    subprocess.run(["bash", str(testenv_script()), "stop"], capture_output=True, env=env, timeout=60)
    deadline = time.monotonic() + 15
    while api_server_ready(timeout=0.5) and time.monotonic() < deadline:
        time.sleep(0.2)


# --- command line ------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "render"
    if command == "render":
        changed = write_generated()
        for path in changed:
            print(f"updated {path}")
        if not changed:
            print("deploy/k8s is up to date")
        return 0
    if command == "check":
        stale = stale_files()
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        if stale:
            print("run deploy/render.sh", file=sys.stderr)
        return 1 if stale else 0
    print("usage: k8s_env.py render|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
