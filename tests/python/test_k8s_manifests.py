"""The Helm chart (deploy/helm/portcullis), the plain manifests (deploy/k8s) and the Dockerfile,
checked offline:

- `helm lint --strict` and `helm template` (Helm's Go SDK through helm-python-sdk) for several
  value sets; every rendered object validated strictly (unknown fields fail) by
  kubernetes-validate against Kubernetes 1.20 (the test API server's version, rendered for it)
  and 1.28 (the newest schemas the pinned kubernetes-validate bundles); the ServiceMonitor,
  a CRD kubernetes-validate cannot know, against a vendored minimal schema of its fields;
- the security settings of every Deployment, the NetworkPolicies, Secret references and mounts;
- the chart refusing replicas with per-pod state, with a message saying what to change;
- deploy/k8s and values.schema.json equal a fresh render (deploy/render.sh);
- the ConfigMap's portcullis.yaml accepted by the real binary (`portcullis serve`, then
  `/readyz`), rewritten only for local paths, ports and backing services;
- a ConfigMap volume updated the way the kubelet does it (a new timestamped directory and an
  atomic swap of the `..data` symlink) reloads the config and the policy bundle in place;
- the Dockerfile, statically (no registry is reachable here, so the image is not built).
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import (
    REPO_ROOT,
    STARTUP_TIMEOUT_S,
    Binaries,
    Launcher,
    Process,
    StartupError,
    clean_env,
    http_get_status,
    make_client,
    parse_listening_line,
)

import k8s_env
from k8s_env import Doc, RenderError, drop_schema, localize, one, rendered_config


# kubernetes-validate 1.28.3 uses jsonschema's deprecated RefResolver and its schemas name a
# metaschema jsonschema does not bundle; both only warn.
pytestmark = [
    pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The metaschema specified by:DeprecationWarning"),
]

#: The example value sets of the chart (ci/<name>-values.yaml); None = the chart's defaults.
VALUE_SETS = [None, "replicated", "autoscaling", "model-server", "servicemonitor", "tracing", "policy"]
#: Kubernetes versions rendered for and validated against (see k8s_env.VALIDATE_VERSIONS).
KUBE_VERSIONS = {"1.20.0": "v1.20.2", "1.28.0": "v1.28.0"}

#: Bound on a reload being visible after the ConfigMap volume changed.
RELOAD_WAIT_S = 10.0


def values_for(name: str | None) -> dict[str, Any]:
    return k8s_env.ci_values(name) if name else {}


def set_id(name: str | None) -> str:
    return name or "defaults"


def by_kind(docs: list[Doc], kind: str) -> list[dict[str, Any]]:
    return [doc.obj for doc in docs if doc.kind == kind]


# --- lint, render, validate --------------------------------------------------------------------


@pytest.mark.parametrize("name", [None, "replicated", "autoscaling", "policy"], ids=set_id)
def test_helm_lint_strict_passes(name: str | None) -> None:
    report = k8s_env.lint(values_for(name))
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert report["total_charts_linted"] == 1
    assert not problems, json.dumps(report, indent=2)


@pytest.mark.parametrize("version", sorted(KUBE_VERSIONS))
@pytest.mark.parametrize("name", VALUE_SETS, ids=set_id)
def test_every_rendered_object_is_valid_kubernetes(name: str | None, version: str) -> None:
    docs = k8s_env.render(values_for(name), kube_version=KUBE_VERSIONS[version])
    assert {"Deployment", "Service", "ConfigMap", "ServiceAccount"} <= {d.kind for d in docs}
    for doc in docs:
        try:
            k8s_env.validate(doc.obj, version)
        except Exception as error:  # noqa: BLE001 (the message is the point)
            pytest.fail(f"{doc.source} ({doc.kind} {doc.name}) is invalid for {version}:\n{error}")


def test_strict_validation_rejects_an_unknown_field() -> None:
    """The validator really is strict: a misspelt field fails (so the test above means something)."""
    deployment = copy.deepcopy(one(k8s_env.render(), "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRot"] = True
    with pytest.raises(Exception, match="runAsNonRot"):
        k8s_env.validate(deployment, "1.28.0")
    monitor = one(k8s_env.render(values_for("servicemonitor")), "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["intervall"] = "1m"
    with pytest.raises(Exception, match="intervall"):
        k8s_env.validate(monitor, "1.28.0")


@pytest.mark.parametrize(
    ("kube_version", "pdb", "hpa"),
    [("v1.20.2", "policy/v1beta1", "autoscaling/v2beta2"), ("v1.30.0", "policy/v1", "autoscaling/v2")],
)
def test_api_versions_follow_the_cluster_version(kube_version: str, pdb: str, hpa: str) -> None:
    docs = k8s_env.render(values_for("autoscaling"), kube_version=kube_version)
    assert one(docs, "PodDisruptionBudget")["apiVersion"] == pdb
    assert one(docs, "HorizontalPodAutoscaler")["apiVersion"] == hpa


def test_values_schema_rejects_unknown_keys_early() -> None:
    """values.schema.json covers the chart's values and, through docs/config.schema.json, the
    gateway's configuration: a typo fails `helm install`, naming the key."""
    with pytest.raises(RenderError, match="replicas"):
        k8s_env.render({"replicas": 3})
    with pytest.raises(RenderError, match="upstreamz"):
        k8s_env.render({"config": {"upstreamz": []}})
    with pytest.raises(RenderError, match="backend"):
        k8s_env.render({"config": {"store": {"backend": "mysql"}}})


def test_deploy_k8s_is_a_fresh_render_of_the_chart() -> None:
    stale = k8s_env.stale_files()
    assert not stale, f"stale generated files {stale}: run deploy/render.sh"


def test_notes_render_with_the_service_url() -> None:
    text = k8s_env.notes()
    assert "http://portcullis.portcullis.svc:8080/v1" in text
    assert "modelServerNetworkPolicy.enabled=true" in text


# --- the refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"replicaCount": 3},
            "replicaCount: 3 needs state shared by every replica: set config.store.backend: "
            "postgres",
        ),
        (
            {"autoscaling": {"enabled": True}},
            "autoscaling.enabled needs state shared by every replica: set config.store.backend: "
            "postgres",
        ),
        (
            {
                "replicaCount": 2,
                "config": {
                    "store": {"backend": "postgres"},
                    "rate_limits": {
                        "rules": [{"name": "r", "by": ["principal"], "requests_per_minute": 5}]
                    },
                },
                "secrets": {"database": {"existingSecret": "db"}},
            },
            "replicaCount: 2 needs rate limits shared by every replica: set "
            "config.rate_limits.backend: redis",
        ),
        (
            {"config": {"store": {"backend": "postgres"}}},
            "config.store.backend is postgres: give the URL with secrets.database.existingSecret",
        ),
        (
            {"terminationGracePeriodSeconds": 20},
            "terminationGracePeriodSeconds (20 s) must exceed config.shutdown.drain_timeout_ms "
            "(25000 ms)",
        ),
        (
            {"config": {"upstreams": [{"name": "o", "url": "https://x/v1", "api_key_env": "K"}]}},
            "config.upstreams[0].api_key_env is K, but no Secret provides it",
        ),
        ({"policies": {"lib/x.rego": "package x"}}, "a ConfigMap key cannot contain /"),
        (
            {
                "config": {
                    "approvals": {"enabled": False},
                    "admin": {"tokens": [{"name": "a", "role": "admin", "sha256": "0" * 64}]},
                }
            },
            "config.admin.tokens is set but config.approvals.enabled is false",
        ),
    ],
    ids=["replicas-sqlite", "autoscaling-sqlite", "replicas-memory-limits", "postgres-no-url",
         "grace-period", "missing-secret", "policy-subdir", "admin-without-approvals"],
)
def test_the_chart_refuses_to_render_with_a_clear_message(values: dict, message: str) -> None:
    with pytest.raises(RenderError) as caught:
        k8s_env.render(values)
    assert message in str(caught.value)


# --- what every Deployment must have -------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS, ids=set_id)
def test_every_deployment_is_locked_down(name: str | None) -> None:
    docs = k8s_env.render(values_for(name))
    config = rendered_config(docs)
    deployments = by_kind(docs, "Deployment")
    assert deployments
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 65532
        assert pod["securityContext"]["runAsGroup"] == 65532
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        drain_ms = config.get("shutdown", {}).get("drain_timeout_ms", 25000)
        assert pod["terminationGracePeriodSeconds"] * 1000 > drain_ms
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security.get("privileged", False) is False
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}
            ports = {port["name"]: port["containerPort"] for port in container["ports"]}
            assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
            assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
            assert config["listen"] == f"0.0.0.0:{ports['http']}"
            assert set(container["resources"]["requests"]) >= {"cpu", "memory"}
            assert "memory" in container["resources"]["limits"]
            assert container["args"][:3] == ["serve", "--config", "/etc/portcullis/config/portcullis.yaml"]
            assert not container["image"].endswith(":latest")
        assert "checksum/secrets" in deployment["spec"]["template"]["metadata"]["annotations"]


@pytest.mark.parametrize("name", VALUE_SETS, ids=set_id)
def test_volumes_match_what_the_config_reads_and_writes(name: str | None) -> None:
    """Every path the config names lies on a volume of the right kind: the config and policy
    ConfigMaps as whole directories (never subPath, so updates propagate), the SQLite file on the
    only writable emptyDir, the service-account token and CA on an explicit projected volume."""
    docs = k8s_env.render(values_for(name))
    config = rendered_config(docs)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    assert all("subPath" not in mount for mount in mounts.values())

    def volume_at(path: str) -> dict[str, Any]:
        for mount_path, mount in sorted(mounts.items(), key=lambda item: -len(item[0])):
            if path == mount_path or path.startswith(mount_path.rstrip("/") + "/"):
                return volumes[mount["name"]] | {"readOnly": mount.get("readOnly", False)}
        pytest.fail(f"{path} is on no volume (the root file system is read-only)")

    config_volume = volume_at("/etc/portcullis/config/portcullis.yaml")
    assert config_volume["configMap"]["name"].endswith("-config")

    bundle = config.get("policy", {}).get("bundle")
    if name == "policy":
        policy_volume = volume_at(bundle)
        assert policy_volume["configMap"]["name"].endswith("-policy")
        policy_map = one(docs, "ConfigMap", "-policy")
        assert all(key.endswith(".rego") for key in policy_map["data"])
    else:
        assert bundle is None  # the embedded default bundle

    writable = [v for v in volumes.values() if "emptyDir" in v]
    if config.get("store", {}).get("backend", "sqlite") == "sqlite":
        data = volume_at(config["store"]["path"])
        assert "emptyDir" in data and data["readOnly"] is False
        assert container["workingDir"] == str(Path(config["store"]["path"]).parent)
        assert len(writable) == 1
    else:
        assert not writable
        assert "workingDir" not in container

    kubernetes_issuers = [j for j in config.get("auth", {}).get("jwt", []) if j.get("kind") == "kubernetes"]
    projected = [v for v in volumes.values() if "projected" in v]
    if kubernetes_issuers:
        assert len(projected) == 1
        sources = projected[0]["projected"]["sources"]
        token = next(s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s)
        assert token["expirationSeconds"] == 3600
        assert "audience" not in token  # the API server's own audience: it reads the JWKS
        root_ca = next(s["configMap"] for s in sources if "configMap" in s)
        assert root_ca["name"] == "kube-root-ca.crt"
        for issuer in kubernetes_issuers:
            assert "projected" in volume_at(issuer["token_file"])
            assert "projected" in volume_at(issuer["ca_file"])
    else:
        assert not projected

    signing_key = config.get("audit", {}).get("signing_key_file")
    if signing_key:
        key_volume = volume_at(signing_key)
        assert key_volume["secret"]["items"][0]["path"] == Path(signing_key).name


def test_secrets_are_referenced_never_embedded() -> None:
    """Every `*_env` the replicated config names comes from a secretKeyRef, and no Secret object
    is rendered (the chart holds no secret values)."""
    docs = k8s_env.render(values_for("replicated"))
    assert not by_kind(docs, "Secret")
    config = rendered_config(docs)
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    from_secrets = {
        env["name"]: env["valueFrom"]["secretKeyRef"]
        for env in container["env"]
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    named = [u["api_key_env"] for u in config["upstreams"] if "api_key_env" in u]
    named += [k["key_env"] for k in config["auth"]["api_keys"]]
    named += [t["token_env"] for t in config["admin"]["tokens"]]
    named += [config["store"]["url_env"], config["rate_limits"]["redis"]["url_env"]]
    assert sorted(named) == sorted(from_secrets)
    assert from_secrets["PORTCULLIS_DATABASE_URL"] == {"name": "portcullis-postgres", "key": "url"}
    assert from_secrets["PORTCULLIS_REDIS_URL"] == {"name": "portcullis-redis", "key": "url"}
    assert config["store"] == {
        "backend": "postgres", "schema": "portcullis", "max_connections": 8,
        "url_env": "PORTCULLIS_DATABASE_URL",
    }
    assert config["rate_limits"]["backend"] == "redis"
    assert config["admin"]["listen"] == "0.0.0.0:9090"


def test_replicas_get_a_disruption_budget_and_spread() -> None:
    docs = k8s_env.render(values_for("replicated"))
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    selector = deployment["spec"]["selector"]["matchLabels"]
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert pdb["spec"]["minAvailable"] == 1
    for constraint in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"] == selector
    assert not by_kind(k8s_env.render(), "PodDisruptionBudget")
    autoscaled = k8s_env.render(values_for("autoscaling"))
    assert "replicas" not in one(autoscaled, "Deployment")["spec"]  # the HPA owns it
    hpa = one(autoscaled, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "portcullis",
    }
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_service_and_service_monitor_point_at_the_http_port() -> None:
    docs = k8s_env.render(values_for("servicemonitor"))
    service = one(docs, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert [p["name"] for p in service["spec"]["ports"]] == ["http"]
    monitor = one(docs, "ServiceMonitor")
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    ]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert not by_kind(k8s_env.render(), "ServiceMonitor")  # off by default
    replicated = one(k8s_env.render(values_for("replicated")), "Service")
    assert [p["name"] for p in replicated["spec"]["ports"]] == ["http", "admin"]


def test_portcullis_network_policy() -> None:
    docs = k8s_env.render()
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    policy = one(docs, "NetworkPolicy")
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [
        {"ports": [{"port": "http", "protocol": "TCP"}], "from": [{"namespaceSelector": {}}]}
    ]
    egress_ports = [{p["port"] for p in rule.get("ports", [])} for rule in spec["egress"]]
    assert {53} in egress_ports  # DNS
    assert {443, 6443} in egress_ports  # the API server, for the JWKS
    assert {5432} not in egress_ports and {6379} not in egress_ports

    replicated = one(k8s_env.render(values_for("replicated")), "NetworkPolicy")["spec"]
    egress_ports = [{p["port"] for p in rule.get("ports", [])} for rule in replicated["egress"]]
    assert {5432} in egress_ports and {6379} in egress_ports
    admin_rule = replicated["ingress"][1]
    assert admin_rule["ports"] == [{"port": "admin", "protocol": "TCP"}]

    tracing = one(k8s_env.render(values_for("tracing")), "NetworkPolicy")["spec"]
    assert any({p["port"] for p in r.get("ports", [])} == {4318} for r in tracing["egress"])

    no_jwt = k8s_env.render({"config": {"auth": None}})
    egress_ports = [{p["port"] for p in r.get("ports", [])} for r in one(no_jwt, "NetworkPolicy")["spec"]["egress"]]
    assert {443, 6443} not in egress_ports
    assert not [v for v in one(no_jwt, "Deployment")["spec"]["template"]["spec"]["volumes"] if "projected" in v]


def test_model_server_network_policy_admits_only_portcullis() -> None:
    docs = k8s_env.render(values_for("model-server"))
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    policy = one(docs, "NetworkPolicy", "-model-server")
    assert policy["metadata"]["namespace"] == "models"
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "vllm"}}
    assert spec["policyTypes"] == ["Ingress"]
    [rule] = spec["ingress"]
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    portcullis_peer = rule["from"][0]
    assert portcullis_peer["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert portcullis_peer["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "portcullis"}
    }
    assert rule["from"][1]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    # In the release's own namespace: a pod selector alone (works before Kubernetes 1.21).
    same_namespace = k8s_env.render({"modelServerNetworkPolicy": {"enabled": True}})
    peer = one(same_namespace, "NetworkPolicy", "-model-server")["spec"]["ingress"][0]["from"][0]
    assert set(peer) == {"podSelector"}
    assert not [d for d in k8s_env.render() if d.name.endswith("-model-server")]  # off by default


# --- the Dockerfile ------------------------------------------------------------------------------


def dockerfile_stages() -> list[dict[str, Any]]:
    """The Dockerfile's stages: FROM image and alias, and each instruction (continuations joined)."""
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    logical = re.sub(r"\\\n", " ", text)
    args: dict[str, str] = {}
    stages: list[dict[str, Any]] = []
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
            continue
        if instruction == "FROM":
            image = rest.split()[0]
            for name, value in args.items():
                image = image.replace("${" + name + "}", value)
            alias = rest.split()[2] if len(rest.split()) == 3 else None
            stages.append({"image": image, "alias": alias, "instructions": []})
            continue
        stages[-1]["instructions"].append((instruction, rest.strip()))
    return stages


def test_dockerfile_builds_the_pinned_toolchain_and_runs_non_root() -> None:
    """Static checks (registries are unreachable here, so the image is not built)."""
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: build, then a minimal runtime"
    toolchain = re.search(r'channel\s*=\s*"([^"]+)"', (REPO_ROOT / "rust-toolchain.toml").read_text())
    assert toolchain
    build, runtime = stages[0], stages[-1]
    assert re.fullmatch(rf"(docker\.io/library/)?rust:{re.escape(toolchain[1])}(-[a-z0-9-]+)?", build["image"])
    run = " ".join(rest for instruction, rest in build["instructions"] if instruction == "RUN")
    assert "cargo build --release --locked -p portcullis-cli" in run
    for stage in stages:
        image = stage["image"]
        assert ":" in image.rsplit("/", 1)[-1] or "@sha256:" in image, f"{image} has no tag"
        assert not image.endswith(":latest"), f"{image} uses latest"
    assert runtime["image"].startswith("gcr.io/distroless/") and runtime["image"].endswith(":nonroot")
    instructions = dict(runtime["instructions"])
    users = [rest for instruction, rest in runtime["instructions"] if instruction == "USER"]
    assert users and users[-1] == "65532:65532", "the last USER must be numeric and non-root"
    assert json.loads(instructions["ENTRYPOINT"]) == ["/usr/local/bin/portcullis"]
    assert json.loads(instructions["CMD"]) == ["serve", "--config", "/etc/portcullis/portcullis.yaml"]
    assert set(instructions["EXPOSE"].split()) == {"8080", "9090"}
    labels = instructions["LABEL"]
    for label in ("title", "description", "version", "revision", "licenses", "source"):
        assert f"org.opencontainers.image.{label}=" in labels
    copied = [rest for instruction, rest in runtime["instructions"] if instruction == "COPY"]
    assert copied == ["--from=build /out/portcullis /usr/local/bin/portcullis"]
    ignore = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ignore[ignore.index("*") :][:4] == ["*", "!Cargo.toml", "!Cargo.lock", "!crates/"]


def test_chart_and_image_agree() -> None:
    """The chart's ports and user are the image's."""
    chart = yaml.safe_load((k8s_env.CHART_DIR / "Chart.yaml").read_text())
    values = yaml.safe_load((k8s_env.CHART_DIR / "values.yaml").read_text())
    runtime = dict(dockerfile_stages()[-1]["instructions"])
    assert {str(values["ports"]["http"]), str(values["ports"]["admin"])} == set(runtime["EXPOSE"].split())
    assert runtime["USER"] == f"{values['podSecurityContext']['runAsUser']}:{values['podSecurityContext']['runAsGroup']}"
    cargo = (REPO_ROOT / "Cargo.toml").read_text()
    version = re.search(r'^version\s*=\s*"([^"]+)"', cargo, re.MULTILINE)
    assert version and chart["appVersion"] == version[1]


# --- the real binary -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [None, "replicated", "policy", "tracing"], ids=set_id)
def test_the_binary_accepts_the_rendered_config(
    name: str | None, launcher: Launcher, tmp_path: Path
) -> None:
    """`portcullis serve` with the ConfigMap's portcullis.yaml (local paths, ports and service
    URLs only) starts and answers /readyz: the chart writes a configuration the gateway takes.
    The replicated set opens its PostgreSQL store and Redis rate limits for real."""
    docs = k8s_env.render(values_for(name))
    config, env = localize(rendered_config(docs), docs, tmp_path, set_id(name))
    path = launcher.config_file(yaml.safe_dump(config, sort_keys=False))
    try:
        gateway = launcher.gateway(config=path, env=env)
        assert http_get_status(gateway.addr, "/healthz", timeout=5) == 200
        assert http_get_status(gateway.addr, "/metrics", timeout=5) == 200
    finally:
        launcher.stop_all()
        if config.get("store", {}).get("backend") == "postgres":
            drop_schema(config["store"]["schema"])


class ConfigMapVolume:
    """A directory laid out like a ConfigMap volume by the kubelet's atomic writer: the files
    live in a hidden timestamped directory, `..data` links to it, each visible name links to
    `..data/<name>`. `update` writes a new timestamped directory and swaps `..data` atomically
    (a new symlink renamed over it), then removes the old directory."""

    def __init__(self, path: Path, files: dict[str, str]):
        self.path = path
        self.path.mkdir(parents=True)
        self._generation = 0
        self.update(files)

    def update(self, files: dict[str, str]) -> None:
        self._generation += 1
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S", time.gmtime()) + f".{self._generation:09d}"
        target = self.path / stamp
        target.mkdir()
        for name, text in files.items():
            (target / name).write_text(text, encoding="utf-8")
        data = self.path / "..data"
        previous = os.readlink(data) if data.is_symlink() else None
        temporary = self.path / "..data_tmp"
        os.symlink(stamp, temporary)
        os.rename(temporary, data)
        for name in files:
            visible = self.path / name
            if not visible.is_symlink():
                os.symlink(f"..data/{name}", visible)
        if previous:
            shutil.rmtree(self.path / previous)


ALLOW_ALL = "package portcullis\n\nimport rego.v1\n\ndecision := {\"action\": \"allow\"}\n"
DENY_ALL = (
    "package portcullis\n\nimport rego.v1\n\n"
    "decision := {\"action\": \"deny\", \"code\": \"changed_by_configmap\", "
    "\"reasons\": [\"the policy ConfigMap changed\"]}\n"
)


def start_watching_gateway(binaries: Binaries, config: Path, cwd: Path) -> tuple[Process, str]:
    argv = [
        str(binaries.gateway), "serve", "--listen", "127.0.0.1:0", "--log-format", "json",
        "--config", str(config), "--watch-interval-ms", "100",
    ]
    process = Process("portcullis serve", argv, clean_env(), cwd)
    try:
        addr = process.wait_for_line("stderr", parse_listening_line, STARTUP_TIMEOUT_S)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while http_get_status(addr, "/readyz", timeout=1) != 200:
            if time.monotonic() > deadline or not process.running():
                raise StartupError("not ready")
            time.sleep(0.05)
    except StartupError as error:
        description = process.describe()
        process.stop()
        pytest.fail(f"{error}\n{description}", pytrace=False)
    return process, addr


def reloads(addr: str, result: str) -> float:
    host, port = addr.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    pattern = rf'^portcullis_config_reload_total\{{[^}}]*result="{result}"[^}}]*\}} (\S+)$'
    return sum(float(m[1]) for m in re.finditer(pattern, text, re.MULTILINE))


@pytest.fixture
def watched(binaries: Binaries, launcher: Launcher, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A gateway reading its config and policy from kubelet-style ConfigMap volumes rendered by
    the chart, polling every 100 ms, in front of a mock upstream."""
    mock = launcher.mock()
    values = {
        "config": {
            "auth": None,  # anonymous callers: this test is about reloading, not identity
            "upstreams": [{"name": "models", "url": mock.base_url, "models": ["mock-a"]}],
            "default_upstream": None,
        },
        "policies": {"portcullis.rego": ALLOW_ALL},
    }
    docs = k8s_env.render(values)
    config = rendered_config(docs)
    config.pop("listen")
    config["store"]["path"] = str(tmp_path / "portcullis.db")
    config["policy"]["bundle"] = str(tmp_path / "policy")
    config_volume = ConfigMapVolume(tmp_path / "config", {"portcullis.yaml": yaml.safe_dump(config)})
    policy_volume = ConfigMapVolume(tmp_path / "policy", one(docs, "ConfigMap", "-policy")["data"])
    process, addr = start_watching_gateway(binaries, tmp_path / "config" / "portcullis.yaml", tmp_path)
    client = make_client(f"http://{addr}/v1")
    try:
        yield {"addr": addr, "client": client, "config": config, "config_volume": config_volume,
               "policy_volume": policy_volume, "process": process}
    finally:
        client.close()
        process.stop()


def wait_until(check, what: str, process: Process) -> None:
    deadline = time.monotonic() + RELOAD_WAIT_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {RELOAD_WAIT_S} s\n{process.describe()}", pytrace=False)
        time.sleep(0.1)


def chat_status(client, model: str) -> tuple[int, dict | None]:
    import openai  # noqa: PLC0415

    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        return 200, None
    except openai.APIStatusError as error:
        return error.status_code, error.body


def test_a_configmap_symlink_swap_reloads_config_and_policy(watched: dict[str, Any]) -> None:
    """The kubelet updates a ConfigMap volume by swapping `..data`; the file's path never
    changes and no inotify event names it. The gateway's poller re-reads through the symlinks,
    so both the config file and the policy bundle directory reload in place."""
    client, addr, process = watched["client"], watched["addr"], watched["process"]
    assert chat_status(client, "mock-a")[0] == 200
    status, body = chat_status(client, "mock-b")
    assert status == 404 and body["code"] == "model_not_found"

    config = copy.deepcopy(watched["config"])
    config["upstreams"][0]["models"] = ["mock-a", "mock-b"]
    watched["config_volume"].update({"portcullis.yaml": yaml.safe_dump(config)})
    wait_until(lambda: chat_status(client, "mock-b")[0] == 200, "the config swap was not applied", process)
    assert reloads(addr, "applied") >= 1

    watched["policy_volume"].update({"portcullis.rego": DENY_ALL})
    wait_until(lambda: chat_status(client, "mock-a")[0] == 400, "the policy swap was not applied", process)
    status, body = chat_status(client, "mock-a")
    assert body["code"] == "changed_by_configmap"
    assert reloads(addr, "applied") >= 2
    assert reloads(addr, "error") == 0

    # A broken policy in the ConfigMap keeps the running one (all or nothing).
    watched["policy_volume"].update({"portcullis.rego": "package portcullis\n\ndecision := {"})
    wait_until(lambda: reloads(addr, "error") >= 1, "the broken policy was not rejected", process)
    assert chat_status(client, "mock-a")[1]["code"] == "changed_by_configmap"
