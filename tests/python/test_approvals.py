"""Human approval end to end, with real processes and real PostgreSQL:

- two `portcullis serve` processes share one PostgreSQL store; a call held by the first is
  released by an approval given through the second (with the `portcullis approvals` CLI), and
  refused after a denial given through the second's REST API;
- headless Chromium (Debian's `chromium` driven through Debian's `chromedriver` by Selenium)
  signs in to the web console, opens the pending approval and approves it; the held MCP call
  (made with the official MCP SDK) completes.

The MCP fixture server (official SDK) labels `fetch_url` an untrusted source and `send_email` an
external sink; the default bundle holds a sink call in a session that read an untrusted source.
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import Binaries, Gateway, Launcher, clean_env
from mcp.client.session import ClientSession
from mcp_client import FixtureServers, content_text, free_port, open_http

pytestmark = pytest.mark.anyio

POSTGRES_URL = os.environ.get(
    "PORTCULLIS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"
)
TOOL_LABELS = "{fetch_url: [untrusted_source], send_email: [external_sink]}"
EMAIL = {"to": "friend@example.com", "body": "the quarterly numbers"}
#: Bound on a whole test.
TEST_TIMEOUT_S = 90.0
#: Bound on an approval appearing, or a released call completing.
WAIT_S = 15.0

_schemas = itertools.count()


@dataclass
class Admin:
    """An admin credential and the listener it is used on."""

    addr: str
    token: str

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        host, port = self.addr.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        headers = {"authorization": f"Bearer {self.token}"}
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["content-type"] = "application/json"
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
            return response.status, json.loads(data) if data else None
        finally:
            connection.close()

    def pending(self) -> list[dict]:
        status, body = self.request("GET", "/admin/v1/approvals?status=pending")
        assert status == 200, body
        return body["data"]

    def wait_pending(self, count: int = 1) -> list[dict]:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            found = self.pending()
            if len(found) >= count:
                return found
            time.sleep(0.05)
        pytest.fail(f"no {count} pending approval(s) within {WAIT_S:.0f} s")


def config(
    fixture_url: str, admin_port: int, token: str, store: str, approvals: str = ""
) -> str:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return (
        "mcp:\n  servers:\n"
        f"    - name: tools\n      url: {fixture_url}\n      tools: {TOOL_LABELS}\n"
        f"{store}"
        "approvals:\n  timeout_ms: 60000\n  keepalive_ms: 1000\n  poll_ms: 200\n"
        f"{approvals}"
        f"admin:\n  listen: 127.0.0.1:{admin_port}\n  tokens:\n"
        f"    - name: alice\n      role: approver\n      sha256: {digest}\n"
    )


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema name, dropped afterwards (best effort)."""
    name = f"t_py_{os.getpid()}_{next(_schemas)}_{secrets.token_hex(3)}"
    yield name
    psql = shutil.which("psql")
    if psql:
        subprocess.run(
            [psql, POSTGRES_URL, "-q", "-c", f"DROP SCHEMA IF EXISTS {name} CASCADE"],
            capture_output=True,
            timeout=30,
            check=False,
        )


def start(launcher: Launcher, text: str, env: dict[str, str] | None = None) -> Gateway:
    return launcher.gateway(config=launcher.config_file(text), env=env)


async def taint(session: ClientSession) -> None:
    """Reads an untrusted source; its result may itself be blocked (it carries an injection),
    but the session is tainted either way."""
    await session.call_tool("fetch_url", {"url": "https://bakery.test/"})


class HeldCall:
    """`send_email` started in a task group; `result` is set when it returns."""

    def __init__(self) -> None:
        self.result: Any = None
        self.done = anyio.Event()

    async def run(self, session: ClientSession) -> None:
        self.result = await session.call_tool("send_email", dict(EMAIL))
        self.done.set()


def run_cli(binaries: Binaries, admin: Admin, *args: str) -> subprocess.CompletedProcess:
    env = clean_env(
        {"PORTCULLIS_ADMIN_URL": f"http://{admin.addr}", "PORTCULLIS_ADMIN_TOKEN": admin.token}
    )
    return subprocess.run(
        [str(binaries.gateway), "approvals", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


async def test_an_approval_through_one_replica_releases_a_call_held_by_the_other(
    launcher: Launcher, binaries: Binaries, fixtures: FixtureServers, pg_schema: str
):
    fixture = fixtures.http()
    token = secrets.token_urlsafe(24)
    store = f"store:\n  backend: postgres\n  url_env: PG_URL\n  schema: {pg_schema}\n"
    env = {"PG_URL": POSTGRES_URL}
    port_a, port_b = free_port(), free_port()
    a = start(launcher, config(fixture.url, port_a, token, store), env)
    # B only answers the approvers: it holds nothing, and shares A's store.
    start(launcher, config(fixture.url, port_b, token, store), env)
    admin_b = Admin(f"127.0.0.1:{port_b}", token)
    sent_before = fixture.log().count("send_email called")

    with anyio.fail_after(TEST_TIMEOUT_S):
        async with open_http(f"{a.url}/mcp/tools", timeout=60) as session:
            await taint(session)
            # 1. Approved through B with the CLI: the call held by A goes through.
            held = HeldCall()
            async with anyio.create_task_group() as group:
                group.start_soon(held.run, session)
                [approval] = await anyio.to_thread.run_sync(admin_b.wait_pending)
                assert approval["tool"] == "send_email" and approval["server"] == "tools"
                assert approval["status"] == "pending"
                assert "friend@example.com" not in json.dumps(approval["arguments"])
                listed = await anyio.to_thread.run_sync(run_cli, binaries, admin_b, "list")
                assert listed.returncode == 0 and approval["id"] in listed.stdout, listed
                approved = await anyio.to_thread.run_sync(
                    run_cli, binaries, admin_b, "approve", approval["id"], "--reason", "checked"
                )
                assert approved.returncode == 0, approved.stderr
                with anyio.fail_after(WAIT_S):
                    await held.done.wait()
            assert not held.result.is_error, content_text(held.result.content)
            assert content_text(held.result.content) == "sent"
            assert fixture.log().count("send_email called") == sent_before + 1

            # 2. Denied through B's REST API: A refuses the call with the reason.
            held = HeldCall()
            async with anyio.create_task_group() as group:
                group.start_soon(held.run, session)
                [approval] = await anyio.to_thread.run_sync(admin_b.wait_pending)
                status, body = await anyio.to_thread.run_sync(
                    admin_b.request,
                    "POST",
                    f"/admin/v1/approvals/{approval['id']}/deny",
                    {"reason": "not to outside addresses"},
                )
                assert status == 200 and body["status"] == "denied", body
                assert body["decided_by"] == "alice"
                with anyio.fail_after(WAIT_S):
                    await held.done.wait()
            text = content_text(held.result.content)
            assert held.result.is_error and "not to outside addresses" in text, text
            assert fixture.log().count("send_email called") == sent_before + 1

            # Resolving again through A is refused: the decision made through B stands.
            again = await anyio.to_thread.run_sync(
                run_cli, binaries, Admin(f"127.0.0.1:{port_a}", token), "approve", approval["id"]
            )
            assert again.returncode == 1 and "denied" in again.stderr, again


# --- the console in a real browser -------------------------------------------------------------


def chromium_driver():
    """Headless Debian Chromium through Debian's chromedriver (never a downloaded browser)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    chromedriver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    for path in (chromium, chromedriver):
        if not os.access(path, os.X_OK):
            pytest.fail(
                f"{path} not found: install Debian's chromium and chromium-driver "
                "(.ci/run does)",
                pytrace=False,
            )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-extensions",
        "--no-first-run",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)


def approve_in_browser(console: str, token: str, approval_id: str, shots: Path) -> str:
    """Signs in, opens the approval from the dashboard, approves it; returns the page text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium_driver()
    try:
        driver.set_page_load_timeout(20)
        driver.get(f"{console}/console")
        # Not signed in: the login form.
        assert "/console/login" in driver.current_url, driver.current_url
        driver.find_element(By.NAME, "token").send_keys(token)
        driver.find_element(By.CSS_SELECTOR, "form button, form input[type=submit]").click()
        WebDriverWait(driver, 10).until(lambda d: "/console/login" not in d.current_url)
        rows = driver.find_elements(By.CSS_SELECTOR, f'tr.approval[data-id="{approval_id}"]')
        assert rows, f"no row for {approval_id} at {driver.current_url}:\n{driver.page_source}"
        row = rows[0]
        assert "send_email" in row.text, row.text
        driver.save_screenshot(str(shots / "dashboard.png"))
        row.find_element(By.CSS_SELECTOR, "a").click()
        assert approval_id in driver.page_source
        driver.find_element(By.ID, "approve").click()
        WebDriverWait(driver, 10).until(lambda d: "done=approved" in d.current_url)
        driver.save_screenshot(str(shots / "approved.png"))
        # The page after the post-redirect-get shows the decision, and no buttons any more.
        assert not driver.find_elements(By.ID, "approve")
        return driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.quit()


async def test_the_console_in_chromium_approves_a_held_call(
    launcher: Launcher, fixtures: FixtureServers, tmp_path: Path
):
    fixture = fixtures.http()
    token = secrets.token_urlsafe(24)
    port = free_port()
    store = f"store:\n  path: {tmp_path / 'state.db'}\n"
    gateway = start(launcher, config(fixture.url, port, token, store))
    admin = Admin(f"127.0.0.1:{port}", token)
    with anyio.fail_after(TEST_TIMEOUT_S):
        async with open_http(f"{gateway.url}/mcp/tools", timeout=60) as session:
            await taint(session)
            held = HeldCall()
            async with anyio.create_task_group() as group:
                group.start_soon(held.run, session)
                [approval] = await anyio.to_thread.run_sync(admin.wait_pending)
                page = await anyio.to_thread.run_sync(
                    approve_in_browser, f"http://{admin.addr}", token, approval["id"], tmp_path
                )
                assert "approved" in page.lower(), page
                with anyio.fail_after(WAIT_S):
                    await held.done.wait()
            assert not held.result.is_error, content_text(held.result.content)
            assert content_text(held.result.content) == "sent"
    status, body = admin.request("GET", f"/admin/v1/approvals/{approval['id']}")
    assert status == 200 and body["status"] == "approved" and body["decided_by"] == "alice"
