"""Portcullis's MCP proxy end to end, driven by the official MCP Python SDK (`mcp` 2.3.0).

The real `portcullis` binary (debug build, see conftest.py) sits in front of the hostile
fixture server (`mcp_fixture_server.py`): `portcullis serve` at `/mcp/{server}` over
Streamable HTTP, with one HTTP upstream (`tools`) and one stdio upstream (`local`), and
`portcullis mcp stdio -- CMD` for desktop agents. The tests check that clean traffic passes
unchanged, that the policy hides and refuses what it should (custom bundles written into
`tmp_path`, and the default embedded bundle's MCP rules), and that transport errors and a dying
upstream get the documented JSON-RPC errors while the gateway stays up.

Tests marked `default_bundle` in their docstring rely on the default bundle's MCP rules
(stages `tools_list`, `tool_call`, `tool_result` in crates/policy/bundle/portcullis.rego).

Every wait is bounded: SDK requests by `mcp_client.DEFAULT_TIMEOUT_S`, raw HTTP by
`RAW_TIMEOUT_S`, each async test as a whole by `TEST_TIMEOUT_S`, process start-up by the
launchers. No fixed sleeps.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import Binaries, Gateway, Launcher, http_get_status
from mcp import MCPError
from mcp.client.session import ClientSession
from mcp_client import (
    FIXTURE_SERVER,
    FixtureHttpServer,
    FixtureServers,
    HttpRecord,
    call_tool_text,
    content_text,
    fixture_stdio_argv,
    open_http,
    open_stdio,
    start_fixture_http,
    tool_descriptions,
)
from mcp_fixture_server import (
    ADD_DESCRIPTION,
    FAKE_AWS_ACCESS_KEY_ID,
    FAKE_GITHUB_TOKEN,
    FETCH_URL_INJECTION,
    NOTES_INJECTION,
)

pytestmark = pytest.mark.anyio

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUNDLE = REPO_ROOT / "crates" / "policy" / "bundle"

BASE_TOOLS = {"echo", "add", "read_file", "fetch_url", "get_customer", "get_config", "send_email"}
TOOL_LABELS = (
    "{fetch_url: [untrusted_source], send_email: [external_sink], read_file: [private_data]}"
)

#: Bound on a whole async test (start-ups included).
TEST_TIMEOUT_S = 60.0
#: Bound on one raw HTTP exchange.
RAW_TIMEOUT_S = 10.0
#: How fast a call to a dead upstream must fail (connection refused or a dead child: no
#: timeout should be involved).
DEAD_UPSTREAM_BOUND_S = 5.0
#: Bound on a log line appearing after the exchange that caused it.
LOG_TIMEOUT_S = 5.0

REFUSED_RE = re.compile(r"^Portcullis policy refused this tool call \((?P<code>[a-z0-9_]+)\)")
BLOCKED_RE = re.compile(r"^Portcullis policy blocked this tool result \((?P<code>[a-z0-9_]+)\)")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
UPSTREAM_UNAVAILABLE = -32000
POLICY_DENIED = -32003

INIT_PARAMS = {
    "protocolVersion": "2025-11-25",
    "capabilities": {},
    "clientInfo": {"name": "raw-test", "version": "0"},
}


# --- helpers -----------------------------------------------------------------------------------


def yaml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def mcp_config(
    http_url: str | None,
    *,
    stdio_flags: tuple[str, ...] | None = (),
    bundle: Path | None = None,
    mcp_extra: str = "",
) -> str:
    """A config with `mcp.servers` `tools` (the HTTP fixture at `http_url`, labelled) and
    `local` (the fixture over stdio with `stdio_flags`; `None` leaves it out)."""
    lines = ["mcp:", "  servers:"]
    if http_url is not None:
        lines += ["    - name: tools", f"      url: {http_url}", f"      tools: {TOOL_LABELS}"]
    if stdio_flags is not None:
        lines += [
            "    - name: local",
            f"      command: {yaml_list(fixture_stdio_argv(*stdio_flags))}",
            f"      tools: {TOOL_LABELS}",
        ]
    lines += [f"  {line}" for line in mcp_extra.splitlines() if line.strip()]
    if bundle is not None:
        lines += ["policy:", f"  bundle: {json.dumps(str(bundle))}"]
    return "\n".join(lines) + "\n"


def custom_bundle(directory: Path, module: str) -> Path:
    """A copy of the default bundle's policy and data (not its tests) in `directory`, plus
    `module` as `custom.rego` (same package: it adds to the default's rule sets)."""
    directory.mkdir(parents=True, exist_ok=True)
    for source in DEFAULT_BUNDLE.iterdir():
        if source.name == "data.json" or (
            source.suffix == ".rego" and not source.stem.endswith("_test")
        ):
            shutil.copy(source, directory / source.name)
    # The modules add to `tool_denials`; if the default bundle stopped reading that set they
    # would silently allow everything.
    default = (directory / "portcullis.rego").read_text(encoding="utf-8")
    assert "d in tool_denials" in default, "the default bundle no longer reads tool_denials"
    (directory / "custom.rego").write_text(module, encoding="utf-8")
    return directory


def refusal_code(text: str) -> str | None:
    match = REFUSED_RE.match(text)
    return match["code"] if match else None


def blocked_code(text: str) -> str | None:
    match = BLOCKED_RE.match(text)
    return match["code"] if match else None


async def call(session: ClientSession, name: str, args: dict[str, Any] | None = None):
    """`session.call_tool` as `(is_error, text, result)`."""
    result = await session.call_tool(name, dict(args or {}))
    return bool(result.is_error), content_text(result.content), result


def wait_for_log(gateway: Gateway, predicate, timeout: float = LOG_TIMEOUT_S) -> dict:
    """The first JSON log record of the gateway for which `predicate(record)` holds."""

    def parse(line: str) -> dict | None:
        try:
            record = json.loads(line)
        except ValueError:
            return None
        return record if isinstance(record, dict) and predicate(record) else None

    return gateway.process.wait_for_line("stderr", parse, timeout)


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


RAW_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def raw_request(
    addr: str,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
) -> Raw:
    """One HTTP exchange below the SDK."""
    host, port = addr.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=RAW_TIMEOUT_S)
    try:
        data = body.encode() if isinstance(body, str) else body
        connection.request(method, path, body=data, headers=dict(headers or {}))
        response = connection.getresponse()
        return Raw(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read(),
        )
    finally:
        connection.close()


def rpc(method: str, params: Any = None, id: int | None = 1) -> str:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if id is not None:
        message["id"] = id
    if params is not None:
        message["params"] = params
    return json.dumps(message)


def raw_post(addr: str, server: str, body: bytes | str, session: str | None = None, **extra) -> Raw:
    headers = {**RAW_HEADERS, **extra}
    if session is not None:
        headers["Mcp-Session-Id"] = session
    return raw_request(addr, "POST", f"/mcp/{server}", body, headers)


def raw_session(addr: str, server: str) -> str:
    """initialize + notifications/initialized over raw HTTP; the gateway's session id."""
    answer = raw_post(addr, server, rpc("initialize", INIT_PARAMS))
    assert answer.status == 200, answer
    assert "result" in answer.json(), answer
    session = answer.headers["mcp-session-id"]
    notified = raw_post(addr, server, rpc("notifications/initialized", id=None), session)
    assert notified.status == 202, notified
    return session


def assert_rpc_error(raw: Raw, status: int, code: int) -> dict:
    assert raw.status == status, raw
    assert raw.headers.get("content-type", "").startswith("application/json"), raw
    answer = raw.json()
    assert answer.get("jsonrpc") == "2.0", answer
    assert answer["error"]["code"] == code, answer
    assert isinstance(answer["error"]["message"], str) and answer["error"]["message"], answer
    return answer


def dump(model) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def gateway_children(gateway: Gateway) -> list[int]:
    pid = gateway.process.popen.pid
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return children


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def fixture_children(gateway: Gateway) -> list[int]:
    """The gateway's stdio fixture servers (one per open `local` session)."""
    return [p for p in gateway_children(gateway) if str(FIXTURE_SERVER) in cmdline(p)]


def alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def poll(predicate, timeout: float, interval: float = 0.02) -> bool:
    """Whether `predicate()` became true within `timeout` seconds (checked every `interval`)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --- a gateway shared by the tests that do not change server state -----------------------------


@dataclass
class Shared:
    gateway: Gateway
    fixture: FixtureHttpServer

    def url(self, server: str) -> str:
        return f"{self.gateway.url}/mcp/{server}"


@pytest.fixture(scope="module")
def shared(session_launcher: Launcher, tmp_path_factory) -> Iterator[Shared]:
    """A plain fixture server over HTTP (`tools`), the fixture over stdio (`local`), default
    bundle, `max_message_bytes: 4096`."""
    servers = FixtureServers(tmp_path_factory.mktemp("mcp-shared"))
    try:
        fixture = servers.http()
        config = session_launcher.config_file(
            mcp_config(fixture.url, mcp_extra="max_message_bytes: 4096")
            # Held calls expire fast: nobody approves in these tests.
            + "approvals:\n  timeout_ms: 1500\n  keepalive_ms: 200\n"
        )
        gateway = session_launcher.gateway(config=config)
        try:
            yield Shared(gateway, fixture)
        finally:
            gateway.stop()
    finally:
        servers.stop_all()


# --- 1. clean traffic --------------------------------------------------------------------------


async def compare_clean(direct: ClientSession, via: ClientSession) -> None:
    assert dump(via.initialize_result) == dump(direct.initialize_result)
    direct_tools, via_tools = await direct.list_tools(), await via.list_tools()
    assert {t.name for t in via_tools.tools} == BASE_TOOLS
    assert [dump(t) for t in via_tools.tools] == [dump(t) for t in direct_tools.tools]
    assert dump(await via.list_prompts()) == dump(await direct.list_prompts())
    assert dump(await via.list_resources()) == dump(await direct.list_resources())
    calls = [
        ("echo", {"text": "hello, proxy"}),
        ("echo", {"text": "Grüße, 日本語, emoji 🚀 and \"quotes\"\nnew line"}),
        ("add", {"a": 2, "b": 40}),
        ("add", {"a": -7, "b": 3}),
        # A tool error result from the upstream (schema validation) passes unchanged too.
        ("add", {"a": "not a number", "b": 1}),
    ]
    for name, args in calls:
        expected = await direct.call_tool(name, args)
        got = await via.call_tool(name, args)
        assert dump(got) == dump(expected), (name, args)
        assert got.content == expected.content
        assert got.structured_content == expected.structured_content
        assert got.is_error == expected.is_error
    add = await via.call_tool("add", {"a": 2, "b": 40})
    assert (content_text(add.content), add.structured_content, add.is_error) == (
        "42",
        {"result": 42},
        False,
    )
    prompt_args = {"topic": "MCP"}
    assert dump(await via.get_prompt("summarize", prompt_args)) == dump(
        await direct.get_prompt("summarize", prompt_args)
    )
    await via.send_ping()


async def test_clean_traffic_over_http_upstream_matches_direct(shared: Shared):
    with anyio.fail_after(TEST_TIMEOUT_S):
        record = HttpRecord()
        async with open_http(shared.fixture.url) as direct, open_http(
            shared.url("tools"), record=record
        ) as via:
            await compare_clean(direct, via)
    # The gateway's own session id, on every request after initialize; DELETE ends it.
    [session_id] = record.session_ids()
    assert re.fullmatch(r"[0-9a-f]{32}", session_id)
    posts = [e for e in record.exchanges if e.method == "POST"]
    assert all(e.request_headers.get("mcp-session-id") == session_id for e in posts[1:])
    assert all(e.status in (200, 202) for e in posts)
    assert all(
        e.response_headers["content-type"] == "application/json" for e in posts if e.status == 200
    )
    assert [e.status for e in record.exchanges if e.method == "DELETE"] == [200]


async def test_clean_traffic_over_stdio_upstream_matches_direct(shared: Shared, tmp_path: Path):
    argv = fixture_stdio_argv()
    with anyio.fail_after(TEST_TIMEOUT_S), open(tmp_path / "direct.log", "w") as errlog:
        async with open_stdio(argv[0], argv[1:], errlog=errlog) as direct, open_http(
            shared.url("local")
        ) as via:
            await compare_clean(direct, via)


# --- 2. a custom bundle hides a tool -----------------------------------------------------------

# The custom modules add to the default bundle's `tool_denials`: `[code, reason]` pairs that deny
# at the MCP stages (crates/policy/bundle/portcullis.rego).
HIDE_READ_FILE = """\
package portcullis

import rego.v1

# read_file is off limits for everyone: hidden from listings and refused when called.
tool_denials contains ["tool_forbidden", "read_file is off limits"] if {
    input.stage in {"tools_list", "tool_call"}
    input.tool.name == "read_file"
}
"""

HIDE_READ_FILE_FROM_LISTINGS_ONLY = """\
package portcullis

import rego.v1

# read_file is hidden from listings; a call is left to the default rules (tool.listed).
tool_denials contains ["tool_hidden", "read_file is not listed"] if {
    input.stage == "tools_list"
    input.tool.name == "read_file"
}
"""


@pytest.mark.parametrize("server", ["tools", "local"])
async def test_custom_bundle_hides_a_tool_and_refuses_calls(
    launcher: Launcher, fixtures: FixtureServers, tmp_path: Path, server: str
):
    fixture = fixtures.http()
    bundle = custom_bundle(tmp_path / "bundle", HIDE_READ_FILE)
    gateway = launcher.gateway(config=launcher.config_file(mcp_config(fixture.url, bundle=bundle)))
    url = f"{gateway.url}/mcp/{server}"
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with open_http(url) as session:
            assert set(await tool_descriptions(session)) == BASE_TOOLS - {"read_file"}
            is_error, text, result = await call(session, "read_file", {"path": "/etc/hosts"})
            assert is_error, text
            assert refusal_code(text) in {"tool_forbidden", "tool_not_allowed"}, text
            assert "contents of" not in text and result.structured_content is None
            # Other tools are untouched.
            assert await call_tool_text(session, "echo", {"text": "still here"}) == (
                False,
                "still here",
            )
        # A client that never listed the tools is refused too: the gateway lists them on its
        # own account before the first call, so the listing rule applies as well.
        async with open_http(url) as session:
            is_error, text, _ = await call(session, "read_file", {"path": "/etc/hosts"})
            assert is_error and refusal_code(text) in {"tool_forbidden", "tool_not_allowed"}, text
            assert "read_file is off limits" in text, text
    record = wait_for_log(
        gateway,
        lambda r: r.get("message") == "mcp tool hidden by policy" and r.get("tool") == "read_file",
    )
    assert record["level"] == "WARN" and record["server"] == server


async def test_tool_hidden_from_the_listing_is_not_allowed(
    launcher: Launcher, fixtures: FixtureServers, tmp_path: Path
):
    """default_bundle: a call to a tool the session's last listing hid → `tool_not_allowed`."""
    fixture = fixtures.http()
    bundle = custom_bundle(tmp_path / "bundle", HIDE_READ_FILE_FROM_LISTINGS_ONLY)
    gateway = launcher.gateway(config=launcher.config_file(mcp_config(fixture.url, bundle=bundle)))
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with open_http(f"{gateway.url}/mcp/tools") as session:
            assert set(await tool_descriptions(session)) == BASE_TOOLS - {"read_file"}
            is_error, text, _ = await call(session, "read_file", {"path": "/etc/hosts"})
            assert is_error and refusal_code(text) == "tool_not_allowed", text


# --- 3. a rule on the arguments ----------------------------------------------------------------

PATH_RULE = """\
package portcullis

import rego.v1

# read_file may only read below /srv/data/, and never through "..".
tool_denials contains ["path_not_allowed", "read_file may only read below /srv/data/"] if {
    input.stage == "tool_call"
    input.tool.name == "read_file"
    not path_allowed(input.tool.arguments.path)
}

path_allowed(path) if {
    is_string(path)
    startswith(path, "/srv/data/")
    not contains(path, "..")
}
"""

PATH_CASES = [
    ("/srv/data/report.txt", True),
    ("/srv/data/2026/q4/summary.csv", True),
    ("/etc/passwd", False),
    ("/srv/data/../../etc/shadow", False),
    ("/srv/data", False),
    ("/srv/database/x", False),
    ("srv/data/relative.txt", False),
]


async def check_path_rule(session: ClientSession) -> None:
    for path, allowed in PATH_CASES:
        is_error, text, result = await call(session, "read_file", {"path": path})
        if allowed:
            assert (is_error, text) == (False, f"contents of {path}"), path
            assert result.structured_content == {"result": f"contents of {path}"}
        else:
            assert is_error, (path, text)
            assert refusal_code(text) == "path_not_allowed", (path, text)
            assert text == (
                "Portcullis policy refused this tool call (path_not_allowed): "
                "read_file may only read below /srv/data/."
            ), text
            assert "contents of" not in text
    # A missing argument is refused by the rule, not passed to the server.
    is_error, text, _ = await call(session, "read_file", {})
    assert is_error and refusal_code(text) == "path_not_allowed", text


@pytest.mark.parametrize("server", ["tools", "local"])
async def test_argument_rule_in_a_custom_bundle(
    launcher: Launcher, fixtures: FixtureServers, tmp_path: Path, server: str
):
    fixture = fixtures.http()
    bundle = custom_bundle(tmp_path / "bundle", PATH_RULE)
    gateway = launcher.gateway(config=launcher.config_file(mcp_config(fixture.url, bundle=bundle)))
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with open_http(f"{gateway.url}/mcp/{server}") as session:
            # The rule is about calls: the tool stays listed.
            assert "read_file" in await tool_descriptions(session)
            await check_path_rule(session)


# --- 4. a poisoned description -----------------------------------------------------------------


async def test_poisoned_tool_is_hidden_and_refused(
    launcher: Launcher, fixtures: FixtureServers
):
    """default_bundle: `weather`'s description carries hidden instructions (tool_poisoning)."""
    fixture = fixtures.http("--poisoned")
    gateway = launcher.gateway(
        config=launcher.config_file(mcp_config(fixture.url, stdio_flags=("--poisoned",)))
    )
    with anyio.fail_after(TEST_TIMEOUT_S):
        for server in ("tools", "local"):
            async with open_http(f"{gateway.url}/mcp/{server}") as session:
                descriptions = await tool_descriptions(session)
                assert set(descriptions) == BASE_TOOLS, server
                assert not any("<IMPORTANT>" in (d or "") for d in descriptions.values())
                is_error, text, _ = await call(session, "weather", {"city": "Oslo"})
                assert is_error, (server, text)
                assert refusal_code(text) in {"tool_not_allowed", "tool_poisoning"}, text
                assert "Sunny" not in text
                assert await call_tool_text(session, "add", {"a": 1, "b": 2}) == (False, "3")
    record = wait_for_log(
        gateway,
        lambda r: r.get("message") == "mcp tool hidden by policy" and r.get("tool") == "weather",
    )
    assert "tool_poisoning" in json.dumps(record), record


# --- 5. a rug pull -----------------------------------------------------------------------------


async def check_rug_pull(open_session, first_list_in_same_session: bool) -> None:
    async with open_session() as session:
        first = await tool_descriptions(session)
        assert first["add"] == ADD_DESCRIPTION
        assert await call_tool_text(session, "add", {"a": 1, "b": 1}) == (False, "2")
        if first_list_in_same_session:
            second = await tool_descriptions(session)
            assert set(second) == BASE_TOOLS - {"add"}
            is_error, text, _ = await call(session, "add", {"a": 1, "b": 1})
            assert is_error and refusal_code(text) == "tool_changed", text
    # A new session sees the changed definition as changed too (pins are the gateway's).
    async with open_session() as session:
        assert set(await tool_descriptions(session)) == BASE_TOOLS - {"add"}
        is_error, text, _ = await call(session, "add", {"a": 1, "b": 1})
        assert is_error and refusal_code(text) == "tool_changed", text
        assert await call_tool_text(session, "echo", {"text": "ok"}) == (False, "ok")
    # And a session that never listed cannot call it either.
    async with open_session() as session:
        is_error, text, _ = await call(session, "add", {"a": 1, "b": 1})
        assert is_error and refusal_code(text) == "tool_changed", text


@pytest.mark.parametrize("same_session", [True, False], ids=["same-session", "new-session"])
async def test_rug_pull_is_caught(
    launcher: Launcher, fixtures: FixtureServers, same_session: bool
):
    """default_bundle: `add`'s description changes after the first `tools/list` the fixture
    serves; the gateway pinned the first one."""
    fixture = fixtures.http("--rug-pull")
    gateway = launcher.gateway(
        config=launcher.config_file(mcp_config(fixture.url, stdio_flags=None))
    )
    with anyio.fail_after(TEST_TIMEOUT_S):
        await check_rug_pull(lambda: open_http(f"{gateway.url}/mcp/tools"), same_session)
    record = wait_for_log(
        gateway,
        lambda r: r.get("message") == "mcp tool definition changed since it was pinned",
    )
    assert record["level"] == "WARN", record
    assert (record["server"], record["tool"]) == ("tools", "add"), record
    assert record["pinned"] != record["now"], record
    assert record["action"] == "deny", record


# --- 6. a tainted session ----------------------------------------------------------------------


def send_email_calls(fixture: FixtureHttpServer) -> int:
    return fixture.log().count("send_email called")


async def test_tainted_session_cannot_reach_an_external_sink(shared: Shared):
    """default_bundle: reading an `untrusted_source` taints the session; an `external_sink` is
    then held for approval; nobody approves, so it expires and is refused."""
    email = {"to": "friend@example.com", "body": "lunch at noon?"}
    with anyio.fail_after(TEST_TIMEOUT_S):
        sent_before = send_email_calls(shared.fixture)
        async with open_http(shared.url("tools")) as session:
            # Not tainted yet: the sink works.
            assert await call_tool_text(session, "send_email", email) == (False, "sent")
            is_error, text, _ = await call(session, "fetch_url", {"url": "https://bakery.test/"})
            if is_error:
                assert blocked_code(text) == "indirect_prompt_injection", text
            is_error, text, result = await call(session, "send_email", email)
            assert is_error, text
            assert refusal_code(text) == "tainted_session_sink", text
            # Held, then expired (nobody approves here): not refused without being held.
            assert "expired" in text.lower(), text
            assert result.structured_content is None
            # Tools that send nothing out still work in the tainted session.
            assert await call_tool_text(session, "echo", {"text": "x"}) == (False, "x")
        assert send_email_calls(shared.fixture) == sent_before + 1
        async with open_http(shared.url("tools")) as session:
            assert await call_tool_text(session, "send_email", email) == (False, "sent")
        assert send_email_calls(shared.fixture) == sent_before + 2


async def test_only_untrusted_results_taint_a_session(shared: Shared):
    """default_bundle: over the stdio upstream, results of tools not labelled
    `untrusted_source` (`read_file` is `private_data`, `get_customer` unlabelled) leave the
    session clean; `fetch_url`'s taints it."""
    email = {"to": "friend@example.com", "body": "hi"}
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with open_http(shared.url("local")) as session:
            # Whatever these results hold (the detectors may even block one), their tools are
            # not `untrusted_source` and no flagged injection is in them: no taint.
            await call(session, "read_file", {"path": "/srv/data/a.txt"})
            await call(session, "get_customer", {"customer_id": "c-1"})
            assert await call_tool_text(session, "send_email", email) == (False, "sent")
            await call(session, "fetch_url", {"url": "https://bakery.test/"})
            is_error, text, _ = await call(session, "send_email", email)
            assert is_error and refusal_code(text) == "tainted_session_sink", text
            assert "expired" in text.lower(), text


# --- indirect injection in results -------------------------------------------------------------


async def test_indirect_injection_in_results_is_blocked(shared: Shared):
    """default_bundle: a tool result or resource carrying instructions for the model."""
    with anyio.fail_after(TEST_TIMEOUT_S):
        for server in ("tools", "local"):
            async with open_http(shared.url(server)) as session:
                is_error, text, result = await call(
                    session, "fetch_url", {"url": "https://bakery.test/"}
                )
                assert is_error, (server, text)
                assert blocked_code(text) == "indirect_prompt_injection", text
                assert "blocked" in text
                assert "ignore all previous instructions" not in json.dumps(dump(result))
                assert FETCH_URL_INJECTION not in json.dumps(dump(result))
                # resources/read: a JSON-RPC error (-32003) instead of the injected text.
                with pytest.raises(MCPError) as raised:
                    await session.read_resource("notes://today")
                assert raised.value.error.code == POLICY_DENIED, raised.value.error
                assert NOTES_INJECTION not in str(raised.value.error)
                # The session goes on.
                assert await call_tool_text(session, "add", {"a": 2, "b": 2}) == (False, "4")


# --- 7. secrets in a result --------------------------------------------------------------------

CONFIG_KEPT_LINES = ["# deploy.env (production)", "REGION=eu-west-1", "LOG_LEVEL=info"]


def check_config_redacted(is_error: bool, text: str, result) -> None:
    seen = json.dumps(dump(result))
    assert not is_error, text
    for secret in (FAKE_AWS_ACCESS_KEY_ID, FAKE_GITHUB_TOKEN):
        assert secret not in text
        assert secret not in seen
    assert not re.search(r"AKIA[A-Z0-9]{16}", seen)
    assert not re.search(r"ghp_[A-Za-z0-9]{36}", seen)
    for line in CONFIG_KEPT_LINES:
        assert line in text.splitlines(), text
    lines = text.splitlines()
    # The keys' names stay; only the values are replaced.
    assert any(line.startswith("AWS_ACCESS_KEY_ID=") for line in lines), text
    assert any(line.startswith("GITHUB_TOKEN=") for line in lines), text
    # structuredContent is redacted the same way (same placeholders within a session).
    assert result.structured_content == {"result": text}


@pytest.mark.parametrize("server", ["tools", "local"])
async def test_secrets_in_a_result_are_redacted(shared: Shared, server: str):
    """default_bundle: flagged secrets in a tool result are redacted."""
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with open_http(shared.url(server)) as session:
            first = await call(session, "get_config")
            check_config_redacted(*first)
            second = await call(session, "get_config")
            assert second[1] == first[1], "placeholders stay the same within a session"


# --- 8. errors and robustness over raw HTTP ----------------------------------------------------


def test_raw_malformed_json(shared: Shared):
    for body in ("{not json", '{"jsonrpc": "2.0", "id": 1, "method": ', "\xff\xfe", ""):
        raw = raw_post(shared.gateway.addr, "tools", body.encode("latin-1"))
        answer = assert_rpc_error(raw, 400, PARSE_ERROR)
        assert answer["id"] is None, answer


def test_raw_invalid_messages(shared: Shared):
    addr = shared.gateway.addr
    batch = "[" + rpc("initialize", INIT_PARAMS) + "]"
    assert_rpc_error(raw_post(addr, "tools", batch), 400, INVALID_REQUEST)
    assert_rpc_error(raw_post(addr, "tools", "[]"), 400, INVALID_REQUEST)
    for body in ('"a string"', "42", '{"id": 1, "method": "initialize"}', '{"jsonrpc": "2.0"}'):
        assert_rpc_error(raw_post(addr, "tools", body), 400, INVALID_REQUEST)


def test_raw_oversized_message(shared: Shared):
    addr = shared.gateway.addr
    client_info = {"name": "x" * 5000, "version": "0"}
    big_init = rpc("initialize", {**INIT_PARAMS, "clientInfo": client_info})
    assert len(big_init) > 4096
    assert_rpc_error(raw_post(addr, "tools", big_init), 413, INVALID_REQUEST)
    session = raw_session(addr, "tools")
    # The SDK's answer carries the text twice (content and structuredContent) and must fit
    # the same 4096-byte limit as the request.
    small = rpc("tools/call", {"name": "echo", "arguments": {"text": "y" * 1500}}, id=7)
    assert len(small) < 4096
    answer = raw_post(addr, "tools", small, session)
    assert answer.status == 200, answer
    assert answer.json()["result"]["content"][0]["text"] == "y" * 1500
    big = rpc("tools/call", {"name": "echo", "arguments": {"text": "y" * 5000}}, id=8)
    assert_rpc_error(raw_post(addr, "tools", big, session), 413, INVALID_REQUEST)
    # The session survives an oversized message.
    assert raw_post(addr, "tools", rpc("ping", id=9), session).json() == {
        "jsonrpc": "2.0",
        "id": 9,
        "result": {},
    }


def test_raw_session_rules(shared: Shared):
    addr = shared.gateway.addr
    ping = rpc("ping", id=2)
    # No session id on a request other than initialize: 400.
    assert_rpc_error(raw_post(addr, "tools", ping), 400, INVALID_REQUEST)
    assert_rpc_error(
        raw_post(addr, "tools", rpc("tools/list", id=3)), 400, INVALID_REQUEST
    )
    # An unknown session id: 404.
    assert_rpc_error(raw_post(addr, "tools", ping, "0" * 32), 404, INVALID_REQUEST)
    # A session belongs to its server.
    session = raw_session(addr, "tools")
    assert raw_post(addr, "tools", ping, session).status == 200
    assert_rpc_error(raw_post(addr, "local", ping, session), 404, INVALID_REQUEST)
    # DELETE ends it; afterwards it is unknown.
    deleted = raw_request(addr, "DELETE", "/mcp/tools", headers={"Mcp-Session-Id": session})
    assert deleted.status == 200, deleted
    assert_rpc_error(raw_post(addr, "tools", ping, session), 404, INVALID_REQUEST)
    gone = raw_request(addr, "DELETE", "/mcp/tools", headers={"Mcp-Session-Id": session})
    assert_rpc_error(gone, 404, INVALID_REQUEST)


def test_raw_unknown_server_and_method_not_allowed(shared: Shared):
    addr = shared.gateway.addr
    assert_rpc_error(raw_post(addr, "nope", rpc("initialize", INIT_PARAMS)), 404, INVALID_REQUEST)
    get = raw_request(addr, "GET", "/mcp/tools", headers={"Accept": "text/event-stream"})
    assert_rpc_error(get, 405, INVALID_REQUEST)
    assert get.headers.get("allow") == "POST, DELETE", get.headers
    put = raw_request(addr, "PUT", "/mcp/tools", rpc("ping"), RAW_HEADERS)
    assert_rpc_error(put, 405, INVALID_REQUEST)


def test_raw_header_checks(shared: Shared):
    addr = shared.gateway.addr
    init = rpc("initialize", INIT_PARAMS)
    text_plain = raw_post(addr, "tools", init, **{"Content-Type": "text/plain"})
    assert_rpc_error(text_plain, 415, INVALID_REQUEST)
    html_only = raw_post(addr, "tools", init, Accept="text/html")
    assert_rpc_error(html_only, 406, INVALID_REQUEST)
    session = raw_session(addr, "tools")
    old = raw_post(addr, "tools", rpc("ping"), session, **{"MCP-Protocol-Version": "1999-01-01"})
    assert_rpc_error(old, 400, INVALID_REQUEST)
    ok = raw_post(addr, "tools", rpc("ping"), session, **{"MCP-Protocol-Version": "2025-11-25"})
    assert ok.status == 200 and ok.json()["result"] == {}, ok


@pytest.mark.parametrize("server", ["tools", "local"])
def test_raw_unknown_method_is_answered_by_the_upstream(shared: Shared, server: str):
    addr = shared.gateway.addr
    session = raw_session(addr, server)
    answer = raw_post(addr, server, rpc("no/such/method", {"x": 1}, id=41), session)
    assert answer.status == 200, answer
    body = answer.json()
    assert body["id"] == 41 and body["error"]["code"] == METHOD_NOT_FOUND, body
    # String ids come back unchanged too.
    string_id = json.dumps({"jsonrpc": "2.0", "id": "s-1", "method": "ping"})
    answer = raw_post(addr, server, string_id, session)
    assert answer.json() == {"jsonrpc": "2.0", "id": "s-1", "result": {}}
    # tools/call without a name is refused by the gateway itself.
    answer = raw_post(addr, server, rpc("tools/call", {"arguments": {}}, id=42), session)
    assert answer.status == 200 and answer.json()["error"]["code"] == -32602, answer


async def test_dead_upstream_gets_an_error_and_the_gateway_stays_up(
    launcher: Launcher, fixtures: FixtureServers
):
    fixture = fixtures.http()
    gateway = launcher.gateway(
        config=launcher.config_file(mcp_config(fixture.url, mcp_extra="request_timeout_ms: 8000"))
    )
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with open_http(f"{gateway.url}/mcp/tools") as remote, open_http(
            f"{gateway.url}/mcp/local"
        ) as local:
            assert await call_tool_text(remote, "echo", {"text": "a"}) == (False, "a")
            assert await call_tool_text(local, "echo", {"text": "b"}) == (False, "b")

            # The HTTP upstream goes away mid-session.
            fixture.stop()
            started = time.monotonic()
            with pytest.raises(MCPError) as raised:
                await remote.call_tool("echo", {"text": "a"})
            elapsed = time.monotonic() - started
            assert raised.value.error.code == UPSTREAM_UNAVAILABLE, raised.value.error
            assert elapsed < DEAD_UPSTREAM_BOUND_S, elapsed
            assert http_get_status(gateway.addr, "/readyz", RAW_TIMEOUT_S) == 200
            assert await call_tool_text(local, "echo", {"text": "c"}) == (False, "c")
            # A new session to the dead upstream is refused with the same error, no session.
            answer = raw_post(gateway.addr, "tools", rpc("initialize", INIT_PARAMS))
            assert answer.json()["error"]["code"] == UPSTREAM_UNAVAILABLE, answer
            assert "mcp-session-id" not in answer.headers, answer

            # The stdio child of the `local` session dies.
            [child] = fixture_children(gateway)
            os.kill(child, signal.SIGKILL)
            started = time.monotonic()
            with pytest.raises(MCPError) as raised:
                await local.call_tool("echo", {"text": "d"})
            elapsed = time.monotonic() - started
            assert raised.value.error.code == UPSTREAM_UNAVAILABLE, raised.value.error
            assert elapsed < DEAD_UPSTREAM_BOUND_S, elapsed
        # A fresh stdio session gets a fresh child.
        async with open_http(f"{gateway.url}/mcp/local") as local:
            assert await call_tool_text(local, "echo", {"text": "e"}) == (False, "e")
    assert http_get_status(gateway.addr, "/readyz", RAW_TIMEOUT_S) == 200
    assert gateway.process.running()


def test_raw_request_id_must_be_a_string_or_an_integer(shared: Shared):
    """MCP: "Requests MUST include a string or integer ID" (and never null)."""
    addr = shared.gateway.addr
    session = raw_session(addr, "tools")
    for request_id in ("null", "true", '{"a": 1}', "[1]", "1.5"):
        body = '{"jsonrpc": "2.0", "id": %s, "method": "ping"}' % request_id
        assert_rpc_error(raw_post(addr, "tools", body, session), 400, INVALID_REQUEST)


@pytest.mark.parametrize("upstream", ["http-sse", "http-json", "stdio"])
def test_raw_oversized_upstream_answer(
    launcher: Launcher, fixtures: FixtureServers, upstream: str
):
    """An upstream answer above `mcp.max_message_bytes` is a -32603 error (docs/config.md); the
    session goes on."""
    if upstream == "stdio":
        config = mcp_config(None, mcp_extra="max_message_bytes: 4096")
        server = "local"
    else:
        fixture = fixtures.http(*(["--json-response"] if upstream == "http-json" else []))
        config = mcp_config(fixture.url, stdio_flags=None, mcp_extra="max_message_bytes: 4096")
        server = "tools"
    gateway = launcher.gateway(config=launcher.config_file(config))
    session = raw_session(gateway.addr, server)
    # "contents of " + path, in content and in structuredContent: about 2 KB and 5 KB answers,
    # from requests well below the limit.
    for path_length, fits in ((1000, True), (2500, False)):
        path = "p" * path_length
        body = rpc("tools/call", {"name": "read_file", "arguments": {"path": path}}, id=5)
        assert len(body) < 4096
        answer = raw_post(gateway.addr, server, body, session)
        assert answer.status == 200, answer
        if fits:
            assert answer.json()["result"]["content"][0]["text"] == "contents of " + path
        else:
            assert len(answer.body) < 4096, (upstream, len(answer.body), answer.body[:200])
            error = answer.json()["error"]
            assert error["code"] == -32603, (upstream, error)
    ping = raw_post(gateway.addr, server, rpc("ping", id=6), session)
    assert ping.json() == {"jsonrpc": "2.0", "id": 6, "result": {}}, (upstream, ping)


def test_raw_max_sessions(launcher: Launcher, fixtures: FixtureServers):
    fixture = fixtures.http()
    gateway = launcher.gateway(
        config=launcher.config_file(
            mcp_config(fixture.url, stdio_flags=None, mcp_extra="max_sessions: 2")
        )
    )
    first, second = raw_session(gateway.addr, "tools"), raw_session(gateway.addr, "tools")
    third = raw_post(gateway.addr, "tools", rpc("initialize", INIT_PARAMS))
    assert_rpc_error(third, 503, -32603)
    assert "mcp-session-id" not in third.headers
    deleted = raw_request(gateway.addr, "DELETE", "/mcp/tools", headers={"Mcp-Session-Id": first})
    assert deleted.status == 200
    third = raw_session(gateway.addr, "tools")
    assert len({first, second, third}) == 3
    assert raw_post(gateway.addr, "tools", rpc("ping"), second).status == 200


def test_upstream_timeout(launcher: Launcher):
    """A stdio server that stops answering: -32001 after `mcp.request_timeout_ms` (long enough
    for the fixture's start-up, which `initialize` waits for)."""
    timeout_ms = 5000
    gateway = launcher.gateway(
        config=launcher.config_file(mcp_config(None, mcp_extra=f"request_timeout_ms: {timeout_ms}"))
    )
    session = raw_session(gateway.addr, "local")
    [child] = fixture_children(gateway)
    os.kill(child, signal.SIGSTOP)
    try:
        started = time.monotonic()
        answer = raw_post(gateway.addr, "local", rpc("ping", id=3), session)
        elapsed = time.monotonic() - started
    finally:
        os.kill(child, signal.SIGCONT)
    assert answer.status == 200, answer
    assert answer.json()["id"] == 3 and answer.json()["error"]["code"] == -32001, answer
    assert timeout_ms / 1000 - 0.1 <= elapsed < timeout_ms / 1000 + 5.0, elapsed
    # Once it answers again, so does the session.
    assert raw_post(gateway.addr, "local", rpc("ping", id=4), session).json()["result"] == {}


async def test_concurrent_calls_in_one_session(shared: Shared):
    """Many calls in flight at once on one session (and on two sessions): every answer goes
    to its own request."""
    with anyio.fail_after(TEST_TIMEOUT_S):
        for server in ("tools", "local"):
            async with open_http(shared.url(server)) as one, open_http(shared.url(server)) as two:
                results: dict[int, tuple[bool, str]] = {}

                async def echo(session: ClientSession, i: int) -> None:
                    results[i] = await call_tool_text(session, "echo", {"text": f"message {i}"})

                async with anyio.create_task_group() as group:
                    for i in range(40):
                        group.start_soon(echo, one if i % 2 else two, i)
                assert results == {i: (False, f"message {i}") for i in range(40)}, server


async def test_session_end_stops_the_child_and_the_upstream_session(
    launcher: Launcher, fixtures: FixtureServers
):
    fixture = fixtures.http()
    gateway = launcher.gateway(config=launcher.config_file(mcp_config(fixture.url)))
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with open_http(f"{gateway.url}/mcp/local") as session:
            assert await call_tool_text(session, "echo", {"text": "x"}) == (False, "x")
            [child] = fixture_children(gateway)
        # The SDK sent DELETE: the child is stopped.
        assert poll(lambda: not alive(child), LOG_TIMEOUT_S), cmdline(child)
        async with open_http(f"{gateway.url}/mcp/tools") as session:
            assert await call_tool_text(session, "echo", {"text": "y"}) == (False, "y")
        # ... and the upstream session is ended too.
        assert poll(lambda: '"DELETE /mcp HTTP/1.1" 200' in fixture.log(), LOG_TIMEOUT_S), (
            fixture.log()[-2000:]
        )


def test_idle_session_is_closed_and_its_child_stopped(launcher: Launcher):
    """docs/config.md: "A session unused this long is closed (its child process stopped); the
    client's next request gets 404". Nothing else happens on the gateway meanwhile."""
    idle_ms = 2000
    gateway = launcher.gateway(
        config=launcher.config_file(
            mcp_config(None, mcp_extra=f"session_idle_timeout_ms: {idle_ms}")
        )
    )
    session = raw_session(gateway.addr, "local")
    [child] = fixture_children(gateway)
    opened = time.monotonic()
    stopped = poll(lambda: not alive(child), idle_ms / 1000 + 8.0, interval=0.1)
    assert stopped, (
        f"the child of a session idle for {time.monotonic() - opened:.1f} s "
        f"(session_idle_timeout_ms {idle_ms}) is still running: {cmdline(child)}"
    )
    assert_rpc_error(raw_post(gateway.addr, "local", rpc("ping"), session), 404, INVALID_REQUEST)


def test_slow_initialize_does_not_expire_the_new_session(launcher: Launcher, tmp_path: Path):
    """The idle clock starts when a request is answered, not when it arrived: a server that
    takes longer than `session_idle_timeout_ms` to initialize still yields a usable session."""
    slow = tmp_path / "slow_server.sh"
    argv = " ".join(f"'{a}'" for a in fixture_stdio_argv())
    # The upstream's own start-up latency, not a wait in the test.
    slow.write_text(f"#!/bin/sh\nsleep 1.5\nexec {argv}\n", encoding="utf-8")
    slow.chmod(0o755)
    config = (
        "mcp:\n  servers:\n    - name: slow\n"
        f"      command: [{json.dumps(str(slow))}]\n"
        "  session_idle_timeout_ms: 1000\n"
    )
    gateway = launcher.gateway(config=launcher.config_file(config))
    answer = raw_post(gateway.addr, "slow", rpc("initialize", INIT_PARAMS))
    assert answer.status == 200 and "result" in answer.json(), answer
    session = answer.headers["mcp-session-id"]
    notified = raw_post(gateway.addr, "slow", rpc("notifications/initialized", id=None), session)
    assert notified.status == 202, notified
    assert raw_post(gateway.addr, "slow", rpc("ping"), session).json()["result"] == {}


async def test_secret_in_arguments_is_refused_and_never_logged(
    launcher: Launcher, fixtures: FixtureServers
):
    """default_bundle: a flagged secret in a call's arguments is refused before it leaves;
    neither it nor a secret from a result reaches the gateway's log."""
    fixture = fixtures.http()
    gateway = launcher.gateway(config=launcher.config_file(mcp_config(fixture.url)))
    with anyio.fail_after(TEST_TIMEOUT_S):
        sent_before = send_email_calls(fixture)
        async with open_http(f"{gateway.url}/mcp/tools") as session:
            body = f"here is the deploy token: {FAKE_GITHUB_TOKEN}"
            is_error, text, _ = await call(
                session, "send_email", {"to": "friend@example.com", "body": body}
            )
            assert is_error and refusal_code(text) is not None, text
            assert "secret" in text, text
            assert FAKE_GITHUB_TOKEN not in text
            is_error, text, _ = await call(session, "echo", {"text": FAKE_AWS_ACCESS_KEY_ID})
            assert is_error and refusal_code(text) is not None, text
            assert FAKE_AWS_ACCESS_KEY_ID not in text
            check_config_redacted(*await call(session, "get_config"))
        assert send_email_calls(fixture) == sent_before
    gateway.stop()
    log = "\n".join(gateway.log_lines())
    assert FAKE_GITHUB_TOKEN not in log and FAKE_AWS_ACCESS_KEY_ID not in log


# --- 9. `portcullis mcp stdio` -----------------------------------------------------------------


def wrapper_args(*wrapper_flags: str, fixture_flags: tuple[str, ...] = ()) -> list[str]:
    return ["mcp", "stdio", *wrapper_flags, "--", *fixture_stdio_argv(*fixture_flags)]


async def test_stdio_wrapper_default_policy(binaries: Binaries, tmp_path: Path):
    """default_bundle: poisoned tool hidden, secrets redacted, injection blocked."""
    args = wrapper_args(fixture_flags=("--poisoned",))
    with anyio.fail_after(TEST_TIMEOUT_S), open(tmp_path / "wrapper.log", "w") as errlog:
        async with open_stdio(str(binaries.gateway), args, errlog=errlog) as session:
            assert session.initialize_result.server_info.name == "portcullis-mcp-fixture"
            descriptions = await tool_descriptions(session)
            assert set(descriptions) == BASE_TOOLS
            assert await call_tool_text(session, "echo", {"text": "over the wrapper"}) == (
                False,
                "over the wrapper",
            )
            add = await session.call_tool("add", {"a": 20, "b": 22})
            assert (content_text(add.content), add.structured_content) == ("42", {"result": 42})
            is_error, text, _ = await call(session, "weather", {"city": "Oslo"})
            assert is_error and refusal_code(text) in {"tool_not_allowed", "tool_poisoning"}, text
            check_config_redacted(*await call(session, "get_config"))
            is_error, text, _ = await call(session, "fetch_url", {"url": "https://bakery.test/"})
            assert is_error and blocked_code(text) == "indirect_prompt_injection", text


async def test_stdio_wrapper_rug_pull(binaries: Binaries, tmp_path: Path):
    """default_bundle."""
    args = wrapper_args(fixture_flags=("--rug-pull",))
    with anyio.fail_after(TEST_TIMEOUT_S), open(tmp_path / "wrapper.log", "w") as errlog:
        async with open_stdio(str(binaries.gateway), args, errlog=errlog) as session:
            assert (await tool_descriptions(session))["add"] == ADD_DESCRIPTION
            assert set(await tool_descriptions(session)) == BASE_TOOLS - {"add"}
            is_error, text, _ = await call(session, "add", {"a": 1, "b": 1})
            assert is_error and refusal_code(text) == "tool_changed", text
    log = (tmp_path / "wrapper.log").read_text()
    assert "mcp tool definition changed since it was pinned" in log


async def test_stdio_wrapper_custom_policy(binaries: Binaries, tmp_path: Path):
    bundle = custom_bundle(tmp_path / "bundle", PATH_RULE)
    with anyio.fail_after(TEST_TIMEOUT_S), open(tmp_path / "wrapper.log", "w") as errlog:
        async with open_stdio(
            str(binaries.gateway), wrapper_args("--policy", str(bundle)), errlog=errlog
        ) as session:
            await check_path_rule(session)


async def test_stdio_wrapper_config_labels_taint(binaries: Binaries, tmp_path: Path):
    """default_bundle: `--config` with a server of the wrapper's `--name` lends its labels."""
    config = tmp_path / "wrapper.yaml"
    config.write_text(mcp_config(None), encoding="utf-8")
    email = {"to": "friend@example.com", "body": "hi"}
    with anyio.fail_after(TEST_TIMEOUT_S), open(tmp_path / "wrapper.log", "w") as errlog:
        async with open_stdio(
            str(binaries.gateway),
            wrapper_args("--config", str(config), "--name", "local"),
            errlog=errlog,
        ) as session:
            assert await call_tool_text(session, "send_email", email) == (False, "sent")
            await call(session, "fetch_url", {"url": "https://bakery.test/"})
            is_error, text, _ = await call(session, "send_email", email)
            assert is_error and refusal_code(text) == "tainted_session_sink", text
            # No store behind `mcp stdio`: refused at once, saying approval is not configured.
            assert "approval is not configured" in text.lower(), text


class LineReader:
    """Reads a pipe's lines on a thread; `get` waits at most `timeout`."""

    def __init__(self, pipe):
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self.thread.start()

    def _run(self, pipe) -> None:
        with pipe:
            for line in pipe:
                self.lines.put(line)
        self.lines.put(None)

    def get(self, timeout: float = RAW_TIMEOUT_S) -> dict:
        line = self.lines.get(timeout=timeout)
        assert line is not None, "the wrapper closed its stdout"
        return json.loads(line)


def test_stdio_wrapper_raw_framing(binaries: Binaries, tmp_path: Path):
    """Malformed lines get a JSON-RPC error with a null id; stdout carries only protocol; the
    wrapper exits when its stdin closes."""
    argv = [str(binaries.gateway), *wrapper_args()]
    with open(tmp_path / "wrapper.log", "wb") as errlog:
        process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog
        )
    try:
        reader = LineReader(process.stdout)

        def send(text: str) -> None:
            process.stdin.write(text.encode() + b"\n")
            process.stdin.flush()

        send("{not json")
        answer = reader.get()
        assert answer["id"] is None and answer["error"]["code"] == PARSE_ERROR, answer
        send("[" + rpc("ping") + "]")
        answer = reader.get()
        assert answer["id"] is None and answer["error"]["code"] == INVALID_REQUEST, answer
        send(rpc("initialize", INIT_PARAMS, id=1))
        answer = reader.get()
        assert answer["id"] == 1, answer
        assert answer["result"]["serverInfo"]["name"] == "portcullis-mcp-fixture"
        send(rpc("notifications/initialized", id=None))
        send(rpc("tools/call", {"name": "echo", "arguments": {"text": "raw"}}, id=2))
        answer = reader.get()
        assert answer["id"] == 2 and answer["result"]["content"][0]["text"] == "raw", answer
        send(rpc("no/such/method", id=3))
        answer = reader.get()
        assert answer["id"] == 3 and answer["error"]["code"] == METHOD_NOT_FOUND, answer
        process.stdin.close()
        assert process.wait(RAW_TIMEOUT_S) == 0
        assert reader.lines.get(timeout=RAW_TIMEOUT_S) is None
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(RAW_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(RAW_TIMEOUT_S)


async def test_progress_and_sampling_are_relayed_over_the_request_stream(
    launcher: Launcher, tmp_path: Path
):
    """An upstream that sends progress notifications and asks the client's model (sampling)
    while a call runs: the gateway relays both on the call's SSE stream, the client's sampling
    answer (a POSTed response) goes back through the gateway to the upstream, and the guarded
    result ends the stream."""
    from mcp.types import CreateMessageResult, TextContent

    fixture = start_fixture_http("--interactive", log_path=tmp_path / "fixture.log")
    try:
        gateway = launcher.gateway(config=launcher.config_file(mcp_config(fixture.url, stdio_flags=None)))
        progress: list[tuple[float, float | None]] = []
        questions: list[str] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append((done, total))

        async def on_sampling(context, params) -> CreateMessageResult:
            questions.append(params.messages[0].content.text)
            return CreateMessageResult(
                role="assistant",
                content=TextContent(type="text", text="forty-two"),
                model="test-model",
            )

        with anyio.fail_after(TEST_TIMEOUT_S):
            async with open_http(f"{gateway.url}/mcp/tools", sampling_callback=on_sampling) as session:
                result = await session.call_tool(
                    "count_with_progress", {"steps": 3}, progress_callback=on_progress
                )
                assert not result.is_error, result
                assert content_text(result.content) == "counted to 3"
                assert progress == [(1, 3), (2, 3), (3, 3)]
                answer = await session.call_tool(
                    "ask_the_model", {"question": "What is six times seven?"}
                )
                assert not answer.is_error, answer
                assert content_text(answer.content) == "the model said: forty-two"
                assert questions == ["What is six times seven?"]
    finally:
        fixture.stop()
