"""kill -9 under load loses nothing that was acknowledged.

One `portcullis serve` with the SQLite store, the audit log to the store and a JSONL file, signed
checkpoints, and the admin API takes chat traffic from four threads and MCP calls held for approval.
While it runs, a watcher records what the gateway has *acknowledged*:

- audit records: `portcullis_audit_records_written_total`, which counts a record only after every
  sink has it (the JSONL file synced, the store committed);
- approvals: every id the admin API has listed (the API reads the store).

Then the process gets SIGKILL in the middle of that load. Afterwards:

- the store holds at least as many records of the killed instance as were acknowledged, and
  `portcullis audit export` of the store passes `portcullis audit verify` with the signing key's
  public half (chain and checkpoint signatures intact);
- the JSONL file holds at least as many complete records, and verifies too (a line cut by the
  kill can only be the last one, after every acknowledged record: it is cut off and reported);
- a gateway started again on the same store lists every approval that had been listed, and its
  own new chain verifies after the old one.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import secrets
import signal
import subprocess
import threading
import time
from pathlib import Path

import anyio
import pytest
from conftest import Binaries, Launcher
from mcp_client import FixtureServers, free_port, open_http

pytestmark = pytest.mark.anyio

TOOL_LABELS = "{fetch_url: [untrusted_source], send_email: [external_sink]}"
#: How long the load runs before the kill.
LOAD_S = 3.0
#: Held calls started before the kill.
HELD_CALLS = 4
WRITTEN_RE = re.compile(r"^portcullis_audit_records_written_total (\d+)", re.M)


def get(addr: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    host, port = addr.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


class Watcher(threading.Thread):
    """Records the highest acknowledged audit count and every listed approval id."""

    def __init__(self, addr: str, admin: str, token: str):
        super().__init__(daemon=True)
        self.addr, self.admin, self.token = addr, admin, token
        self.written = 0
        self.approvals: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                status, body = get(self.addr, "/metrics")
                match = WRITTEN_RE.search(body.decode())
                if status == 200 and match:
                    self.written = max(self.written, int(match.group(1)))
                status, body = get(
                    self.admin,
                    "/admin/v1/approvals?status=pending",
                    {"authorization": f"Bearer {self.token}"},
                )
                if status == 200:
                    self.approvals.update(a["id"] for a in json.loads(body)["data"])
            except OSError:
                pass
            time.sleep(0.02)


def chat_load(
    addr: str, stop: threading.Event, counts: list[int], failures: list
) -> None:
    body = json.dumps(
        {"model": "mock-1", "messages": [{"role": "user", "content": "What time does the bakery open on Sundays?"}]}
    )
    while not stop.is_set():
        host, port = addr.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            connection.request(
                "POST", "/v1/chat/completions", body=body,
                headers={"content-type": "application/json"},
            )
            response = connection.getresponse()
            data = response.read()
            if response.status == 200:
                counts.append(1)
            else:
                failures.append((response.status, data[:300]))
        except OSError:
            return
        finally:
            connection.close()


def cli(binaries: Binaries, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(binaries.gateway), *args], capture_output=True, text=True, timeout=60, check=False
    )


def records_of(lines: list[str], instance: str) -> int:
    return sum(
        1
        for line in lines
        if line.strip()
        and (parsed := json.loads(line)).get("type") == "record"
        and parsed.get("instance") == instance
    )


async def test_kill_9_under_load_loses_no_acknowledged_audit_record_or_approval(
    launcher: Launcher, binaries: Binaries, fixtures: FixtureServers, tmp_path: Path
):
    fixture = fixtures.http()
    mock = launcher.mock()
    token = secrets.token_urlsafe(24)
    seed = secrets.token_bytes(32)
    key_file = tmp_path / "audit.key"
    key_file.write_text(seed.hex(), encoding="utf-8")
    jsonl = tmp_path / "audit.jsonl"
    admin_port = free_port()
    config = launcher.config_file(
        f"default_upstream: mock\nupstreams:\n  - name: mock\n    url: {mock.base_url}\n"
        "mcp:\n  servers:\n"
        f"    - name: tools\n      url: {fixture.url}\n      tools: {TOOL_LABELS}\n"
        f"store:\n  path: {tmp_path / 'state.db'}\n"
        "audit:\n  sinks: [store, jsonl]\n"
        f"  jsonl_path: {jsonl}\n  signing_key_file: {key_file}\n"
        "  checkpoint_every_records: 25\n"
        "approvals:\n  timeout_ms: 600000\n"
        f"admin:\n  listen: 127.0.0.1:{admin_port}\n  tokens:\n"
        f"    - name: ops\n      role: viewer\n"
        f"      sha256: {hashlib.sha256(token.encode()).hexdigest()}\n"
    )
    gateway = launcher.gateway(config=config)
    started = gateway.process.wait_for_line(
        "stderr",
        lambda line: json.loads(line) if '"audit log started"' in line else None,
        10,
    )
    instance, public_key = started["instance"], started["public_key"]
    admin = f"127.0.0.1:{admin_port}"
    watcher = Watcher(gateway.addr, admin, token)
    watcher.start()
    stop = threading.Event()
    counts: list[int] = []
    failures: list = []
    threads = [
        threading.Thread(
            target=chat_load, args=(gateway.addr, stop, counts, failures), daemon=True
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()

    async def held_call() -> None:
        # The connection dies with the process: whatever the client sees is fine here.
        try:
            async with open_http(f"{gateway.url}/mcp/tools", timeout=60) as session:
                await session.call_tool("fetch_url", {"url": "https://bakery.test/"})
                await session.call_tool("send_email", {"to": "a@example.com", "body": "x"})
        except BaseException:  # noqa: BLE001 - the kill ends these calls any way it likes
            pass

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            for _ in range(HELD_CALLS):
                group.start_soon(held_call)
            deadline = time.monotonic() + 15
            while len(watcher.approvals) < HELD_CALLS and time.monotonic() < deadline:
                await anyio.sleep(0.05)
            await anyio.sleep(LOAD_S)
            assert counts, f"no chat request succeeded under load: {failures[:5]}"
            # Kill in the middle of the load: no drain, no final checkpoint.
            gateway.process.popen.send_signal(signal.SIGKILL)
            gateway.process.popen.wait(timeout=10)
            stop.set()
            watcher.stop.set()
            watcher.join(timeout=5)
            group.cancel_scope.cancel()
    for thread in threads:
        thread.join(timeout=10)
    acknowledged, approvals = watcher.written, set(watcher.approvals)
    assert acknowledged > 50, f"too little load to test anything: {acknowledged} records"
    assert len(approvals) == HELD_CALLS, approvals

    # The store: every acknowledged record is there, and the chain and signatures hold.
    export = tmp_path / "export.jsonl"
    done = cli(binaries, "audit", "export", "--config", str(config), "--output", str(export))
    assert done.returncode == 0, done.stderr
    exported = export.read_text(encoding="utf-8").splitlines()
    in_store = records_of(exported, instance)
    assert in_store >= acknowledged, (in_store, acknowledged)
    verified = cli(binaries, "audit", "verify", "--key", public_key, str(export))
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # The JSONL file: as many complete records; only a final, unacknowledged line may be cut.
    raw = jsonl.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    torn = raw[len(complete):]
    assert records_of(complete.decode().splitlines(), instance) >= acknowledged
    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(complete)
    verified = cli(binaries, "audit", "verify", "--key", public_key, str(whole))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    print(
        f"acknowledged {acknowledged}, store {in_store}, "
        f"torn tail {len(torn)} bytes, approvals {len(approvals)}"
    )

    # Restart on the same store: every approval is still there, and a new chain follows.
    again = launcher.gateway(config=config)
    headers = {"authorization": f"Bearer {token}"}
    status, body = get(admin, "/admin/v1/approvals?limit=100", headers)
    assert status == 200, body
    after = {a["id"]: a for a in json.loads(body)["data"]}
    assert approvals <= set(after), approvals - set(after)
    for approval_id in approvals:
        assert after[approval_id]["tool"] == "send_email"
    status, _ = get(again.addr, "/healthz")
    assert status == 200
    again.stop()
    done = cli(binaries, "audit", "export", "--config", str(config), "--output", str(export))
    assert done.returncode == 0, done.stderr
    verified = cli(binaries, "audit", "verify", "--key", public_key, str(export))
    assert verified.returncode == 0, verified.stdout + verified.stderr
