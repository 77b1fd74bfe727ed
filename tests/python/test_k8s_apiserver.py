"""The Kubernetes packaging against a real API server (kube-apiserver v1.20 + etcd from
`../shared/tools/k8s-testenv.sh`, started once per session by the `k8s_apiserver` fixture):

- every manifest in deploy/k8s, and the chart's other example value sets rendered for the
  server's version, pass `kubectl apply --server-side --dry-run=server` (the server's admission
  and OpenAPI validation; a minimal ServiceMonitor CRD is installed first);
- workload identity end to end: service accounts get audience-bound tokens from the TokenRequest
  API; `portcullis serve` runs the chart's config (a `kubernetes` JWT issuer, the namespace
  policy of ci/policy-values.yaml) pointed at this API server, fetching its JWKS with its own
  service-account token; the official `openai` SDK then calls it with each token.

Skipped only when the API server is not built and PORTCULLIS_REQUIRE_K8S is unset (CI sets it).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from conftest import Gateway, Launcher, make_client

import k8s_env
from k8s_env import ApiServer, Doc, localize, rendered_config

#: Namespaces of the identity test: `support` may chat, `sales` may not (ci/policy-values.yaml).
ALLOWED_NAMESPACE = "support"
DENIED_NAMESPACE = "sales"
AUDIENCE = "portcullis"
MODEL = "mock-chat"
#: A policy denial's status: every deny is 400 `policy_violation` (docs/config.md, "Errors"),
#: whether the policy objects to the content or to the caller.
POLICY_DENY_STATUS = 400


def ensure_namespace(server: ApiServer, name: str) -> None:
    """Creates a namespace unless it exists (there is no controller manager: a deleted
    namespace would stay Terminating, so objects are created idempotently and kept)."""
    server.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def ensure_service_account(server: ApiServer, namespace: str, name: str) -> None:
    server.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}
    )


def dry_run_apply(server: ApiServer, docs: list[dict[str, Any]]) -> str:
    """`kubectl apply --server-side --dry-run=server` of `docs`; the output, or a failure."""
    text = yaml.safe_dump_all(docs, sort_keys=False)
    result = server.kubectl(
        "apply", "--server-side", "--dry-run=server", "--field-manager", "portcullis-test",
        "-f", "-", input=text, check=False,
    )
    assert result.returncode == 0, f"kubectl apply failed:\n{result.stderr}\n{result.stdout}"
    for doc in docs:
        kind = doc["kind"].lower()
        assert f"{kind}" in result.stdout and doc["metadata"]["name"] in result.stdout, result.stdout
    assert result.stdout.count("serverside-applied (server dry run)") == len(docs), result.stdout
    return result.stdout


def manifest_docs(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    return [doc for doc in yaml.load_all(text, Loader=k8s_env.UniqueKeyLoader) if doc]  # noqa: S506


@pytest.fixture(scope="module")
def cluster(k8s_apiserver: ApiServer) -> ApiServer:
    """The API server with the namespaces the manifests and tests use, and the ServiceMonitor CRD."""
    for namespace in (k8s_env.NAMESPACE, "models", ALLOWED_NAMESPACE, DENIED_NAMESPACE):
        ensure_namespace(k8s_apiserver, namespace)
    k8s_apiserver.apply(k8s_env.SERVICE_MONITOR_CRD)
    k8s_apiserver.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/servicemonitors.monitoring.coreos.com",
    )
    return k8s_apiserver


def test_api_server_start_time_is_reported(k8s_apiserver: ApiServer) -> None:
    """Not an assertion on speed: records how long the session's API server took to start."""
    print(f"test API server ready after {k8s_apiserver.start_seconds:.1f} s "
          f"({'started here' if k8s_apiserver.started_here else 'already running'})")
    assert "v1.20" in k8s_apiserver.kubectl("version", "-o", "json").stdout


def test_every_manifest_in_deploy_k8s_applies(cluster: ApiServer) -> None:
    """Each generated file, as committed. Objects whose API version this 1.20 server does not
    serve (policy/v1 PodDisruptionBudget, GA in 1.21) are applied as the chart renders them
    for 1.20 instead, after checking that it picks a version the server serves."""
    served = cluster.served_api_versions()
    for output in k8s_env.OUTPUTS:
        docs = manifest_docs(k8s_env.DEPLOY_DIR / output.file)
        assert docs, output.file
        for_this_server: dict[tuple[str, str], dict[str, Any]] = {
            (d.kind, d.name): d.obj
            for d in k8s_env.render(output.values(), kube_version="v1.20.2")
        }
        applied = []
        for doc in docs:
            if doc["apiVersion"] not in served:
                doc = for_this_server[(doc["kind"], doc["metadata"]["name"])]
                assert doc["apiVersion"] in served, f"{doc['kind']}: no served API version"
            applied.append(doc)
        dry_run_apply(cluster, applied)


@pytest.mark.parametrize("name", ["autoscaling", "servicemonitor", "tracing", "policy"])
def test_other_value_sets_apply(cluster: ApiServer, name: str) -> None:
    """The chart's other example value sets, rendered for this server's version: the
    HorizontalPodAutoscaler (autoscaling/v2beta2 here), the ServiceMonitor (against the CRD),
    the policy ConfigMap."""
    docs = [d.obj for d in k8s_env.render(k8s_env.ci_values(name), kube_version="v1.20.2")]
    dry_run_apply(cluster, docs)


def test_a_misspelt_field_is_refused_by_the_server(cluster: ApiServer) -> None:
    """The dry run validates strictly, so the passes above mean something."""
    docs = [d.obj for d in k8s_env.render(kube_version="v1.20.2")]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = True
    result = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-",
        input=yaml.safe_dump(deployment), check=False,
    )
    assert result.returncode != 0 and "readOnlyRootFS" in result.stderr


# --- workload identity ---------------------------------------------------------------------------


@dataclass
class Identities:
    support: str  # agent in `support`, audience portcullis
    sales: str  # agent in `sales`, audience portcullis
    wrong_audience: str  # agent in `support`, audience something-else
    gateway: str  # the `portcullis` service account's own token, the API server's audience


@pytest.fixture(scope="module")
def identities(cluster: ApiServer) -> Identities:
    for namespace in (ALLOWED_NAMESPACE, DENIED_NAMESPACE):
        ensure_service_account(cluster, namespace, "agent")
    ensure_service_account(cluster, k8s_env.NAMESPACE, "portcullis")
    return Identities(
        support=cluster.token(ALLOWED_NAMESPACE, "agent", AUDIENCE),
        sales=cluster.token(DENIED_NAMESPACE, "agent", AUDIENCE),
        wrong_audience=cluster.token(ALLOWED_NAMESPACE, "agent", "something-else"),
        gateway=cluster.token(k8s_env.NAMESPACE, "portcullis", None),
    )


def claims(token: str) -> dict[str, Any]:
    import base64  # noqa: PLC0415

    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


#: A bundle that denies every request with a reason spelling out the principal.
ECHO_PRINCIPAL = """package portcullis

import rego.v1

p := input.principal

decision := {"action": "deny", "code": "echo", "reasons": [sprintf(
	"id=%s tenant=%s auth=%s namespace=%s service_account=%s",
	[p.id, p.tenant, p.auth, p.kubernetes.namespace, p.kubernetes.service_account],
)]}
"""


def chart_config_for_this_cluster(
    cluster: ApiServer,
    mock_url: str,
    gateway_token: str,
    work: Path,
    policies: dict[str, str] | None = None,
) -> tuple[Path, dict[str, str]]:
    """The chart's config (defaults + ci/policy-values.yaml, upstream = the mock) as the pod
    would get it, with the pod's mounts replaced by this cluster's: the JWKS at 127.0.0.1:6443,
    the API server's CA, and a file holding the `portcullis` service account's token."""
    values = k8s_env.ci_values("policy") | {
        "config": {"upstreams": [{"name": "models", "url": mock_url}], "default_upstream": "models"}
    }
    if policies is not None:
        values["policies"] = policies
    docs: list[Doc] = k8s_env.render(values)
    config, env = localize(rendered_config(docs), docs, work, "identity")
    [issuer] = config["auth"]["jwt"]
    assert issuer["kind"] == "kubernetes" and issuer["issuer"] == k8s_env.ISSUER
    assert issuer["audiences"] == [AUDIENCE]
    issuer["jwks_url"] = f"{k8s_env.API_SERVER}/openid/v1/jwks"
    issuer["ca_file"] = str(cluster.ca_file)
    token_file = work / "portcullis-sa-token"
    token_file.write_text(gateway_token)
    issuer["token_file"] = str(token_file)
    path = work / "portcullis.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, env


@pytest.fixture
def guarded(
    cluster: ApiServer, identities: Identities, launcher: Launcher, tmp_path: Path
) -> Iterator[Gateway]:
    mock = launcher.mock()
    config, env = chart_config_for_this_cluster(cluster, mock.base_url, identities.gateway, tmp_path)
    yield launcher.gateway(config=config, env=env)


def assert_openai_error(error: openai.APIStatusError, status: int) -> dict[str, Any]:
    assert error.status_code == status, error
    body = error.body
    assert isinstance(body, dict), body
    assert isinstance(body.get("message"), str) and body["message"]
    assert isinstance(body.get("type"), str) and body["type"]
    assert "code" in body
    return body


def chat(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What are your opening hours?"}]
    )


def test_tokens_are_what_the_chart_expects(identities: Identities) -> None:
    support = claims(identities.support)
    assert support["iss"] == k8s_env.ISSUER
    assert support["aud"] == [AUDIENCE]
    assert support["sub"] == "system:serviceaccount:support:agent"
    assert support["kubernetes.io"]["namespace"] == ALLOWED_NAMESPACE
    assert claims(identities.gateway)["aud"] == [k8s_env.ISSUER]


def token_from_file(path: Path):
    """The client hook of docs/kubernetes.md: the projected token file is read on every request,
    because the kubelet rotates it."""

    def auth(request):
        request.headers["Authorization"] = f"Bearer {path.read_text().strip()}"
        return request

    return auth


def test_service_account_tokens_end_to_end(
    guarded: Gateway, identities: Identities, tmp_path: Path
) -> None:
    """support -> 200; sales -> denied by the namespace policy (400 `policy_violation`); wrong
    audience, no token and a garbage token -> 401; every error OpenAI-shaped."""
    # The documented client: a token file, re-read per request (swapped here between calls).
    token_file = tmp_path / "projected-token"
    token_file.write_text(identities.support)
    with openai.OpenAI(
        base_url=guarded.base_url,
        api_key="from-the-token-file",
        max_retries=0,
        timeout=10,
        http_client=openai.DefaultHttpxClient(auth=token_from_file(token_file), trust_env=False),
    ) as client:
        completion = chat(client)
        assert completion.choices[0].message.content
        token_file.write_text(identities.sales)
        with pytest.raises(openai.APIStatusError) as denied:
            chat(client)
        assert denied.value.status_code == POLICY_DENY_STATUS

    with make_client(guarded.base_url, api_key=identities.sales) as client:
        with pytest.raises(openai.APIStatusError) as denied:
            chat(client)
    body = assert_openai_error(denied.value, POLICY_DENY_STATUS)
    assert body["type"] == "policy_violation"
    assert body["code"] == "namespace_not_allowed"
    assert "system:serviceaccount:sales:agent" in body["message"]

    for token in (identities.wrong_audience, "not.a.jwt", "garbage"):
        with make_client(guarded.base_url, api_key=token) as client:
            with pytest.raises(openai.AuthenticationError) as refused:
                chat(client)
        assert_openai_error(refused.value, 401)

    # No credential at all (the SDK always sends one, so plain HTTP).
    host, port = guarded.addr.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(
            "POST", "/v1/chat/completions",
            body=json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
            headers={"content-type": "application/json"},
        )
        response = connection.getresponse()
        payload = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 401
    assert set(payload) == {"error"} and payload["error"]["message"] and payload["error"]["type"]


def test_the_principal_carries_the_service_account(
    cluster: ApiServer, identities: Identities, launcher: Launcher, tmp_path: Path
) -> None:
    """What policy sees for a service-account token (docs/kubernetes.md's table)."""
    mock = launcher.mock()
    config, env = chart_config_for_this_cluster(
        cluster, mock.base_url, identities.gateway, tmp_path, {"portcullis.rego": ECHO_PRINCIPAL}
    )
    gateway = launcher.gateway(config=config, env=env)
    with make_client(gateway.base_url, api_key=identities.support) as client:
        with pytest.raises(openai.APIStatusError) as denied:
            chat(client)
    body = assert_openai_error(denied.value, denied.value.status_code)
    assert body["code"] == "echo"
    assert (
        "id=system:serviceaccount:support:agent tenant=support auth=jwt namespace=support "
        "service_account=agent"
    ) in body["message"]


def test_the_jwks_is_fetched_with_the_gateways_own_token(
    cluster: ApiServer, identities: Identities, launcher: Launcher, tmp_path: Path
) -> None:
    """The API server serves its JWKS only to authenticated service accounts: with a bad token
    in token_file the gateway cannot verify anyone, so even the allowed namespace is refused
    (and never let through)."""
    mock = launcher.mock()
    config, env = chart_config_for_this_cluster(cluster, mock.base_url, "not-a-valid-token", tmp_path)
    gateway = launcher.gateway(config=config, env=env)
    with make_client(gateway.base_url, api_key=identities.support) as client:
        with pytest.raises(openai.APIStatusError) as refused:
            chat(client)
    body = assert_openai_error(refused.value, 503)
    assert body["code"] == "authentication_unavailable"
    assert refused.value.response.headers["retry-after"] == "1"
