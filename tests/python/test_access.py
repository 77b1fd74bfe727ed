"""Who may call and how much, end to end with real processes, the official `openai` SDK and the
real Redis on this machine:

- API keys (stored as SHA-256 digests or read from the environment) open the door and name a
  principal the policy sees; missing or wrong keys get an OpenAI-shaped 401 and the key never
  reaches the log; probes stay open; the MCP route answers 401 as a JSON-RPC error;
- two `portcullis serve` processes share one Redis budget exactly (concurrent requests through
  both, exactly the limit admitted, the rest 429 with `Retry-After`);
- streamed tokens are counted from the upstream's usage, asked for when the client did not ask
  (and that usage chunk is kept from the client); a prompt whose estimate does not fit the
  budget is refused before it reaches the model;
- Redis going away (a TCP relay in front of it is stopped) follows `rate_limits.on_error`:
  `deny` answers 503 `rate_limit_unavailable`, `allow` lets requests through; when Redis is
  back, limits apply again.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import subprocess
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from conftest import Gateway, Launcher, make_client

REDIS_HOST = "127.0.0.1"
REDIS_PORT = int(os.environ.get("PORTCULLIS_TEST_REDIS_PORT", "6379"))
MODEL = "mock-model"

DENY_SALES = """package portcullis

import rego.v1

default decision := {"action": "allow"}

decision := {
	"action": "deny",
	"reasons": [sprintf("tenant %s may not call models", [input.principal.tenant])],
	"code": "tenant_denied",
} if {
	input.stage == "request"
	input.principal.tenant == "sales"
}
"""


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def redis_cli(*args: str, port: int = REDIS_PORT) -> str:
    out = subprocess.run(
        ["redis-cli", "-h", REDIS_HOST, "-p", str(port), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return out.stdout.strip()


def unique_prefix() -> str:
    return f"portcullis-test-{secrets.token_hex(6)}:"


def delete_prefix(prefix: str) -> None:
    keys = redis_cli("--scan", "--pattern", f"{prefix}*").split()
    if keys:
        redis_cli("del", *keys)


def wait_for_fresh_minute(margin_s: float = 12.0) -> None:
    """Fixed one-minute windows: a burst must not straddle a boundary."""
    into_minute = time.time() % 60
    if into_minute > 60 - margin_s:
        time.sleep(60 - into_minute + 0.2)


def chat(client: openai.OpenAI, text: str = "hello there", **kwargs):
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": text}], **kwargs
    )


def write_bundle(directory: Path, rego: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "policy.rego").write_text(rego, encoding="utf-8")
    return directory


def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


# --- authentication ------------------------------------------------------------------------


def test_api_keys_name_a_principal_the_policy_sees(launcher: Launcher, tmp_path: Path):
    mock = launcher.mock()
    bundle = write_bundle(tmp_path / "bundle", DENY_SALES)
    key_a, key_b = "pk-a-" + secrets.token_hex(16), "pk-b-" + secrets.token_hex(16)
    config = launcher.config_file(
        f"""
upstreams:
  - {{name: mock, url: "{mock.base_url}", models: ["*"]}}
policy: {{bundle: "{bundle}"}}
mcp:
  servers:
    - {{name: tools, url: "http://127.0.0.1:9/mcp"}}
auth:
  api_keys:
    - {{name: team-a, sha256: "{sha256_hex(key_a)}", tenant: support, groups: [agents]}}
    - {{name: team-b, key_env: KEY_B, tenant: sales}}
"""
    )
    gateway = launcher.gateway(config=config, env={"KEY_B": key_b})

    answer = chat(make_client(gateway.base_url, key_a))
    assert answer.choices[0].message.content

    with pytest.raises(openai.BadRequestError) as denied:
        chat(make_client(gateway.base_url, key_b))
    assert denied.value.body["code"] == "tenant_denied"
    assert "tenant sales may not call models" in denied.value.body["message"]

    for wrong in ["pk-a-wrong", key_a + "x", "Bearer " + key_a, "eyJhbGciOiJub25lIn0.e30."]:
        with pytest.raises(openai.AuthenticationError) as refused:
            chat(make_client(gateway.base_url, wrong))
        assert refused.value.status_code == 401
        assert refused.value.body["type"] == "authentication_error"
        assert refused.value.body["code"] == "invalid_api_key"
        assert refused.value.response.headers["www-authenticate"].startswith("Bearer")

    # Probes and metrics need no credential; models do.
    assert http_status(f"{gateway.url}/healthz") == 200
    assert http_status(f"{gateway.url}/readyz") == 200
    assert http_status(f"{gateway.url}/v1/models") == 401
    assert (
        http_status(f"{gateway.url}/v1/models", {"Authorization": f"Bearer {key_a}"}) == 200
    )
    # The MCP route refuses too, as a JSON-RPC error, before anything reaches the tool server.
    request = urllib.request.Request(
        f"{gateway.url}/mcp/tools",
        data=b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}',
        headers={"content-type": "application/json", "accept": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as mcp_refused:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10)
    assert mcp_refused.value.code == 401
    rpc = json.loads(mcp_refused.value.read())
    assert rpc["jsonrpc"] == "2.0" and rpc["id"] is None
    assert "credentials" in rpc["error"]["message"]

    metrics = urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
        f"{gateway.url}/metrics", timeout=10
    ).read().decode()
    assert 'portcullis_auth_total{outcome="api_key"} 3' in metrics, metrics
    assert 'portcullis_auth_total{outcome="invalid"}' in metrics
    gateway.stop()
    log = "\n".join(gateway.log_lines())
    assert key_a not in log and key_b not in log
    assert "credential refused" in log


def test_anonymous_access_only_where_the_config_allows_it(launcher: Launcher):
    mock = launcher.mock()
    key = "pk-" + secrets.token_hex(16)
    config = launcher.config_file(
        f"""
upstreams:
  - {{name: mock, url: "{mock.base_url}", models: ["*"]}}
auth:
  anonymous: true
  api_keys:
    - {{name: team-a, sha256: "{sha256_hex(key)}"}}
"""
    )
    gateway = launcher.gateway(config=config)
    # `anonymous: true`: no credential passes; a wrong one is still refused, not downgraded.
    assert http_status(f"{gateway.url}/v1/models") == 200
    with pytest.raises(openai.AuthenticationError):
        chat(make_client(gateway.base_url, "pk-wrong"))
    assert chat(make_client(gateway.base_url, key)).choices


# --- rate limits and token budgets ---------------------------------------------------------


def limits_config(mock_url: str, key: str, prefix: str, rules: str, extra: str = "", port: int = REDIS_PORT) -> str:
    return f"""
upstreams:
  - {{name: mock, url: "{mock_url}", models: ["*"]}}
auth:
  api_keys:
    - {{name: team-a, sha256: "{sha256_hex(key)}", tenant: support}}
rate_limits:
  backend: redis
  redis: {{url: "redis://{REDIS_HOST}:{port}", key_prefix: "{prefix}", timeout_ms: 300}}
{extra}
  rules:
{rules}
"""


def test_two_gateways_share_one_redis_budget_exactly(launcher: Launcher):
    mock = launcher.mock()
    key = "pk-" + secrets.token_hex(16)
    prefix = unique_prefix()
    rules = "    - {name: per-key, by: [principal], requests_per_minute: 10}\n"
    config = launcher.config_file(limits_config(mock.base_url, key, prefix, rules))
    gateways = [launcher.gateway(config=config), launcher.gateway(config=config)]
    clients = [make_client(g.base_url, key) for g in gateways]
    wait_for_fresh_minute()

    def one(i: int):
        try:
            chat(clients[i % 2])
            return (200, None, None)
        except openai.RateLimitError as error:
            return (429, error.response.headers.get("retry-after"), error.body)

    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            results = list(pool.map(one, range(30)))
        admitted = [r for r in results if r[0] == 200]
        refused = [r for r in results if r[0] == 429]
        assert len(admitted) == 10, results
        assert len(refused) == 20
        for _, retry_after, body in refused:
            assert retry_after is not None and 1 <= int(retry_after) <= 60
            assert body["type"] == "rate_limit_error"
            assert body["code"] == "rate_limit_exceeded"
            assert "per-key" in body["message"]
        counters = redis_cli("--scan", "--pattern", f"{prefix}*").split()
        assert len(counters) == 1, counters
        assert redis_cli("get", counters[0]) == "10"
        ttl = int(redis_cli("pttl", counters[0]))
        assert 0 < ttl <= 120_000
    finally:
        delete_prefix(prefix)


def day_counter(prefix: str, budget: str) -> int:
    day = int(time.time() // 86400)
    value = redis_cli("get", f"{prefix}{budget}:td:{day}")
    return int(value) if value else 0


def wait_for_counter(prefix: str, budget: str, want: int, timeout_s: float = 5.0) -> int:
    deadline = time.monotonic() + timeout_s
    value = day_counter(prefix, budget)
    while value != want and time.monotonic() < deadline:
        time.sleep(0.05)
        value = day_counter(prefix, budget)
    return value


def test_streamed_tokens_are_counted_and_estimates_that_cannot_fit_are_refused(
    launcher: Launcher,
):
    mock = launcher.mock()
    key = "pk-" + secrets.token_hex(16)
    prefix = unique_prefix()
    rules = "    - {name: tokens, by: [principal], tokens_per_day: 400}\n"
    config = launcher.config_file(limits_config(mock.base_url, key, prefix, rules))
    gateway = launcher.gateway(config=config)
    client = make_client(gateway.base_url, key)
    budget = "tokens|principal=team-a"
    try:
        # The client asks for usage itself: it sees the usage chunk, and the budget is charged
        # exactly what it says.
        chunks = list(
            chat(client, "count these words please", stream=True, stream_options={"include_usage": True})
        )
        usage = [c.usage for c in chunks if c.usage is not None]
        assert len(usage) == 1
        used = usage[0].total_tokens
        assert used > 0
        assert wait_for_counter(prefix, budget, used) == used

        # The client does not ask: the gateway asks for it, counts it, and keeps the chunk back.
        chunks = list(chat(client, "count these words please", stream=True))
        assert chunks, "the stream answered"
        assert all(c.usage is None for c in chunks)
        assert all(c.choices for c in chunks), "no usage-only chunk reached the client"
        assert wait_for_counter(prefix, budget, 2 * used) == 2 * used

        # Non-streamed answers are counted from their `usage`.
        answer = chat(client, "count these words please")
        assert wait_for_counter(prefix, budget, 2 * used + answer.usage.total_tokens) == (
            2 * used + answer.usage.total_tokens
        )

        # A prompt whose estimate (about 4 bytes a token) cannot fit what is left is refused
        # before it reaches the model, and charges nothing.
        before = day_counter(prefix, budget)
        with pytest.raises(openai.RateLimitError) as refused:
            chat(client, "word " * 400)
        assert refused.value.body["code"] == "token_budget_exceeded"
        assert int(refused.value.response.headers["retry-after"]) >= 1
        assert day_counter(prefix, budget) == before
    finally:
        delete_prefix(prefix)


class Relay:
    """A TCP relay to Redis that can be cut and restored on the same port."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self.start()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((REDIS_HOST, self.target_port))
            with self._lock:
                self._connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        if self._listener is not None:
            # shutdown wakes the thread blocked in accept(), which releases the port.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            for connection in self._connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                connection.close()
            self._connections.clear()


@pytest.mark.parametrize("on_error", ["deny", "allow"])
def test_redis_going_away_follows_the_failure_mode(launcher: Launcher, on_error: str):
    mock = launcher.mock()
    key = "pk-" + secrets.token_hex(16)
    prefix = unique_prefix()
    relay = Relay(REDIS_PORT)
    rules = "    - {name: per-key, by: [principal], requests_per_minute: 1000}\n"
    config = launcher.config_file(
        limits_config(mock.base_url, key, prefix, rules, f"  on_error: {on_error}", port=relay.port)
    )
    gateway = launcher.gateway(config=config)
    client = make_client(gateway.base_url, key)
    try:
        assert chat(client).choices
        relay.cut()
        if on_error == "deny":
            with pytest.raises(openai.InternalServerError) as unavailable:
                chat(client)
            assert unavailable.value.status_code == 503
            assert unavailable.value.body["code"] == "rate_limit_unavailable"
            assert unavailable.value.response.headers["retry-after"] == "1"
        else:
            assert chat(client).choices
        relay.start()
        # The connection manager reconnects; limits apply again within a few tries.
        deadline = time.monotonic() + 10
        while True:
            try:
                assert chat(client).choices
                break
            except openai.InternalServerError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        metrics = urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            f"{gateway.url}/metrics", timeout=10
        ).read().decode()
        assert 'portcullis_rate_limit_decisions_total{outcome="unavailable"}' in metrics
    finally:
        relay.cut()
        delete_prefix(prefix)
