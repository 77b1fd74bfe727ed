"""Helpers around the official MCP Python SDK client (`mcp` 2.x) for the MCP tests.

No pytest here: these are plain async functions and context managers. Run them under anyio
(`@pytest.mark.anyio` with the `anyio` pytest plugin that ships with anyio, or `anyio.run`).

SDK names used (mcp 2.3.0; the 1.x names differ, see each docstring):

- `mcp.ClientSession(read_stream, write_stream, read_timeout_seconds=...)`, an async context
  manager, then `await session.initialize()`: always the legacy handshake (`initialize` at
  protocol 2025-11-25, then `notifications/initialized`). The high-level `mcp.Client` is
  avoided on purpose: its default `mode="auto"` first probes the 2026-07-28 era with
  `server/discover`.
- `mcp.client.streamable_http.streamable_http_client(url, http_client=..., terminate_on_close=...)`
  yields a 2-tuple `(read_stream, write_stream)` (1.x: `streamablehttp_client`, a 3-tuple).
- `mcp.stdio_client(mcp.StdioServerParameters(command=..., args=..., env=..., cwd=...), errlog=...)`
  yields `(read_stream, write_stream)`.
- `httpx2.AsyncClient` (the SDK's HTTP client package; 1.x used `httpx`).
- `session.list_tools() -> mcp.types.ListToolsResult` (`.tools[i].name`, `.description`,
  `.input_schema`), `session.call_tool(name, arguments) -> mcp.types.CallToolResult`
  (`.content`, `.is_error`, `.structured_content`; 1.x: `.isError`, `.structuredContent`),
  `session.read_resource(uri)`, `session.get_prompt(name, arguments)`.
- A JSON-RPC error answer raises `mcp.MCPError` (1.x: `McpError`) with `.error.code`. An HTTP
  4xx/5xx whose body is an `application/json` JSON-RPC error raises that error (its id
  replaced by the request's); otherwise a 404 raises `MCPError(-32600, "Session terminated")`
  once a session id is known (-32601 before), and any other status `MCPError(-32603, ...)`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent, TextResourceContents

#: `mcp_fixture_server.py`, next to this file.
FIXTURE_SERVER = Path(__file__).resolve().with_name("mcp_fixture_server.py")
#: Bound on the fixture server accepting connections after it was started.
STARTUP_TIMEOUT_S = 15.0
#: Bound on a process exiting after SIGTERM before it gets SIGKILL.
STOP_TIMEOUT_S = 5.0

#: Bound on every request (and on connecting) so that a hanging server fails a test instead of
#: stalling it.
DEFAULT_TIMEOUT_S = 10.0


@dataclass
class HttpExchange:
    """One HTTP response seen by `open_http(..., record=...)`."""

    method: str
    url: str
    status: int
    request_headers: dict[str, str]
    response_headers: dict[str, str]


@dataclass
class HttpRecord:
    """Every HTTP exchange of one `open_http` connection, in order (headers lower-cased)."""

    exchanges: list[HttpExchange] = field(default_factory=list)

    def session_ids(self) -> list[str]:
        """The distinct `mcp-session-id` values the server sent, in order of appearance."""
        seen: list[str] = []
        for exchange in self.exchanges:
            sid = exchange.response_headers.get("mcp-session-id")
            if sid and sid not in seen:
                seen.append(sid)
        return seen


@asynccontextmanager
async def open_http(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    terminate_on_close: bool = True,
    record: HttpRecord | None = None,
    sampling_callback: Any = None,
) -> AsyncIterator[ClientSession]:
    """An initialized `ClientSession` over Streamable HTTP to `url` (e.g. `http://127.0.0.1:P/mcp`).

    Uses `streamable_http_client(url, http_client=httpx2.AsyncClient(...),
    terminate_on_close=terminate_on_close)`, then `ClientSession(read, write,
    read_timeout_seconds=timeout)` and `await session.initialize()` (legacy handshake at
    2025-11-25, never the 2026 `server/discover` probe). The HTTP client ignores proxy
    settings from the environment (`trust_env=False`) and sends `headers` on every request
    (the SDK adds `accept: application/json, text/event-stream`, `content-type`,
    `mcp-session-id` and `mcp-protocol-version` itself). With `record`, every response is
    appended to `record.exchanges`. On exit the SDK sends `DELETE` for the session if
    `terminate_on_close`.
    """

    async def on_response(response: httpx2.Response) -> None:
        if record is not None:
            record.exchanges.append(
                HttpExchange(
                    method=response.request.method,
                    url=str(response.request.url),
                    status=response.status_code,
                    request_headers={k.lower(): v for k, v in response.request.headers.items()},
                    response_headers={k.lower(): v for k, v in response.headers.items()},
                )
            )

    http_client = httpx2.AsyncClient(
        headers=dict(headers or {}),
        timeout=httpx2.Timeout(timeout),
        trust_env=False,
        event_hooks={"response": [on_response]},
    )
    async with http_client:
        async with streamable_http_client(
            url, http_client=http_client, terminate_on_close=terminate_on_close
        ) as (read_stream, write_stream):
            async with ClientSession(
                read_stream,
                write_stream,
                read_timeout_seconds=timeout,
                sampling_callback=sampling_callback,
            ) as session:
                await session.initialize()
                yield session


def stdio_parameters(
    command: str,
    args: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> StdioServerParameters:
    """`StdioServerParameters(command=, args=, env=, cwd=)`. The SDK starts the child with only
    an allow-listed environment (HOME, LOGNAME, PATH, SHELL, TERM, USER) plus `env`."""
    return StdioServerParameters(
        command=command, args=list(args or []), env=dict(env) if env is not None else None, cwd=cwd
    )


@asynccontextmanager
async def open_stdio(
    command: str,
    args: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    cwd: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    errlog: TextIO | None = None,
) -> AsyncIterator[ClientSession]:
    """An initialized `ClientSession` to a child process speaking MCP on stdin/stdout.

    Uses `stdio_client(StdioServerParameters(...), errlog=errlog or sys.stderr)`, then
    `ClientSession(read, write, read_timeout_seconds=timeout)` and `await session.initialize()`.
    The child's stderr goes to `errlog` (it must have a real file descriptor). On exit the SDK
    closes the child's stdin, then terminates its process group if it does not exit.
    """
    params = stdio_parameters(command, args, env, cwd)
    async with stdio_client(params, errlog=errlog or sys.stderr) as (read_stream, write_stream):
        async with ClientSession(
            read_stream, write_stream, read_timeout_seconds=timeout
        ) as session:
            await session.initialize()
            yield session


def content_text(content: list[Any]) -> str:
    """The `text` of every `TextContent` block in `content`, joined with newlines (other
    block types are skipped)."""
    return "\n".join(block.text for block in content if isinstance(block, TextContent))


async def call_tool_text(
    session: ClientSession, name: str, args: Mapping[str, Any] | None = None
) -> tuple[bool, str]:
    """`session.call_tool(name, args)` as `(is_error, text)`: `result.is_error` (a tool error
    result, not a JSON-RPC error; those raise `mcp.MCPError`) and the text blocks of
    `result.content` joined with newlines. `result.structured_content` is ignored."""
    result = await session.call_tool(name, dict(args or {}))
    return bool(result.is_error), content_text(result.content)


async def tool_descriptions(session: ClientSession) -> dict[str, str | None]:
    """`{tool.name: tool.description}` from `session.list_tools()` (one page, no cursor)."""
    listing = await session.list_tools()
    return {tool.name: tool.description for tool in listing.tools}


async def read_resource_text(session: ClientSession, uri: str) -> str:
    """The text contents of `session.read_resource(uri)`, joined with newlines."""
    result = await session.read_resource(uri)
    return "\n".join(c.text for c in result.contents if isinstance(c, TextResourceContents))


async def get_prompt_text(
    session: ClientSession, name: str, args: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """`(role, text)` for each text message of `session.get_prompt(name, args)`."""
    result = await session.get_prompt(name, dict(args or {}))
    return [
        (message.role, message.content.text)
        for message in result.messages
        if isinstance(message.content, TextContent)
    ]


# --- fixture server processes -------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago: bind port 0, read the port, close. (Another process
    could take it before the caller binds it; on a test machine that is rare enough.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def fixture_stdio_argv(*flags: str) -> list[str]:
    """`[python, mcp_fixture_server.py, --transport, stdio, *flags]`, with this interpreter."""
    return [sys.executable, str(FIXTURE_SERVER), "--transport", "stdio", *flags]


@dataclass
class FixtureHttpServer:
    """A `mcp_fixture_server.py --transport http` child process."""

    popen: subprocess.Popen
    host: str
    port: int
    log_path: Path | None

    @property
    def url(self) -> str:
        """The MCP endpoint, `http://HOST:PORT/mcp`."""
        return f"http://{self.host}:{self.port}/mcp"

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    def log(self) -> str:
        """What the server wrote to stderr so far (empty if it was not sent to a file)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after `STOP_TIMEOUT_S`; returns the exit code."""
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGTERM)
                self.popen.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(STOP_TIMEOUT_S)
            except ProcessLookupError:
                self.popen.wait(STOP_TIMEOUT_S)
        return self.popen.returncode


def wait_for_port(host: str, port: int, timeout: float, alive=lambda: True) -> None:
    """Poll until `host:port` accepts a TCP connection, at most `timeout` seconds; raise
    `TimeoutError` then, or `RuntimeError` as soon as `alive()` turns false."""
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise RuntimeError(f"the server exited before it listened on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing listened on {host}:{port} within {timeout:.0f} s")
        time.sleep(0.02)


def start_fixture_http(
    *flags: str,
    host: str = "127.0.0.1",
    port: int | None = None,
    log_path: Path | None = None,
    timeout: float = STARTUP_TIMEOUT_S,
) -> FixtureHttpServer:
    """Start `mcp_fixture_server.py --transport http --host HOST --port PORT *flags` (a free
    port if none is given) and return once the port accepts connections (uvicorn binds only
    after the app's startup, so the MCP endpoint is ready then). stderr goes to `log_path`
    (or is discarded), stdout is discarded. The caller must `stop()` it; it is stopped here
    if it does not come up."""
    port = port or free_port(host)
    argv = [
        sys.executable,
        str(FIXTURE_SERVER),
        "--transport",
        "http",
        "--host",
        host,
        "--port",
        str(port),
        *flags,
    ]
    log_file: IO[bytes] | int = open(log_path, "wb") if log_path else subprocess.DEVNULL
    try:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            env={k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")},
        )
    finally:
        if not isinstance(log_file, int):
            log_file.close()
    server = FixtureHttpServer(popen, host, port, log_path)
    try:
        wait_for_port(host, port, timeout, alive=lambda: popen.poll() is None)
    except BaseException as error:
        server.stop()
        if isinstance(error, Exception):
            raise RuntimeError(
                f"{error}\ncommand: {' '.join(argv)}\n{server.log()[-4000:]}"
            ) from error
        raise
    return server


class FixtureServers:
    """Starts `mcp_fixture_server.py --transport http` processes, each logging to its own
    file in `log_dir`; `stop_all` stops every one (tests call it at teardown)."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: list[FixtureHttpServer] = []

    def http(self, *flags: str, port: int | None = None) -> FixtureHttpServer:
        log_path = self.log_dir / f"mcp-fixture-{len(self.started) + 1}.log"
        server = start_fixture_http(*flags, port=port, log_path=log_path)
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        while self.started:
            self.started.pop().stop()
