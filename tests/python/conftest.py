"""Fixtures: the mock upstream and the gateway as real processes on ephemeral ports.

Both binaries come from the debug build (`cargo build -p portcullis-cli -p portcullis-testkit`),
the same profile the Rust tests use. Every process is started with a bounded wait for its
readiness signal (never a fixed sleep) and is always stopped: SIGTERM, then SIGKILL.

The mock numbers its ids per process (`chatcmpl-mock-1`, `-2`, ...), so a comparison of a reply
through the gateway with the same reply straight from the mock needs two fresh mocks that have
seen the same requests in the same order: the `pair` fixture provides exactly that.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import openai
import pytest
from mcp_client import FixtureServers

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_HINT = "cargo build -p portcullis-cli -p portcullis-testkit"

#: Bound on a process becoming ready (address line printed, `/readyz` answering 200).
STARTUP_TIMEOUT_S = 10.0
#: Bound on a process exiting after SIGTERM before it gets SIGKILL.
STOP_TIMEOUT_S = 5.0
#: Bound on any one SDK call, so that a hanging gateway fails a test instead of stalling it.
CLIENT_TIMEOUT_S = 10.0
#: Pause between two `/readyz` polls.
READY_POLL_S = 0.01

T = TypeVar("T")


def bin_dir() -> Path:
    """`target/debug` of this repository, or `$CARGO_TARGET_DIR/debug`, or `$PORTCULLIS_BIN_DIR`."""
    override = os.environ.get("PORTCULLIS_BIN_DIR")
    if override:
        return Path(override)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or "target")
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "debug"


class StartupError(Exception):
    pass


class Process:
    """A child process whose stdout and stderr are read line by line by background threads."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ):
        self.name = name
        self.argv = argv
        self._cond = threading.Condition()
        self._lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._closed: set[str] = set()
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd or REPO_ROOT,
        )
        self._readers = [
            threading.Thread(
                target=self._drain, args=(stream, pipe), name=f"{name}-{stream}", daemon=True
            )
            for stream, pipe in (("stdout", self.popen.stdout), ("stderr", self.popen.stderr))
        ]
        for reader in self._readers:
            reader.start()

    def _drain(self, stream: str, pipe) -> None:
        with pipe:
            for raw in pipe:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self._cond:
                    self._lines[stream].append(line)
                    self._cond.notify_all()
        with self._cond:
            self._closed.add(stream)
            self._cond.notify_all()

    def lines(self, stream: str) -> list[str]:
        with self._cond:
            return list(self._lines[stream])

    def wait_for_line(self, stream: str, parse: Callable[[str], T | None], timeout: float) -> T:
        """The first non-None `parse(line)` over the lines of `stream`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        checked = 0
        with self._cond:
            while True:
                lines = self._lines[stream]
                while checked < len(lines):
                    value = parse(lines[checked])
                    checked += 1
                    if value is not None:
                        return value
                if stream in self._closed:
                    raise StartupError(f"{self.name} closed its {stream} before it was ready")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StartupError(f"{self.name} was not ready within {timeout:.0f} s")
                self._cond.wait(remaining)

    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after `STOP_TIMEOUT_S`; returns the exit code (negative if a
        signal ended it)."""
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGTERM)
                self.popen.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(STOP_TIMEOUT_S)
            except ProcessLookupError:
                self.popen.wait(STOP_TIMEOUT_S)
        # The pipes close when the process exits; after this every line is in `lines()`.
        for reader in self._readers:
            reader.join(STOP_TIMEOUT_S)
        return self.popen.returncode

    def describe(self) -> str:
        """The command, exit status and last output lines, for failure messages."""
        status = self.popen.poll()
        parts = [
            f"command: {' '.join(self.argv)}",
            f"exit code: {'still running' if status is None else status}",
        ]
        for stream in ("stdout", "stderr"):
            tail = self.lines(stream)[-20:]
            parts.append(f"last {stream} lines:\n  " + "\n  ".join(tail or ["(none)"]))
        return "\n".join(parts)


@dataclass
class Mock:
    """A `portcullis-mock-upstream` process."""

    process: Process
    addr: str

    @property
    def base_url(self) -> str:
        return f"http://{self.addr}/v1"


@dataclass
class Gateway:
    """A `portcullis serve` process."""

    process: Process
    addr: str

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    @property
    def base_url(self) -> str:
        return f"http://{self.addr}/v1"

    def log_lines(self) -> list[str]:
        """Everything written to stderr so far (stop the gateway first to get all of it)."""
        return self.process.lines("stderr")

    def log_records(self) -> list[dict]:
        records = []
        for line in self.log_lines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def stop(self) -> int:
        return self.process.stop()


def parse_addr_line(line: str) -> str | None:
    """The mock's one stdout line: `{"addr":"127.0.0.1:PORT"}`."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record.get("addr") if isinstance(record, dict) else None


def parse_listening_line(line: str) -> str | None:
    """The gateway's JSON log line `{"message":"listening","addr":"127.0.0.1:PORT",...}`."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if isinstance(record, dict) and record.get("message") == "listening":
        return record.get("addr")
    return None


def http_get_status(addr: str, path: str, timeout: float) -> int | None:
    host, port = addr.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        connection.close()


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any `PORTCULLIS_*` setting (they would override the
    command line's config, log format or level), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env.update(extra or {})
    return env


class Launcher:
    """Starts mocks and gateways; `stop_all` stops every one of them, newest first."""

    def __init__(self, binaries: Binaries, work_dir: Path):
        self.binaries = binaries
        self.work_dir = work_dir
        self._processes: list[Process] = []
        self._configs = 0

    def _start(
        self, name: str, argv: list[str], env: dict[str, str] | None, cwd: Path | None = None
    ) -> Process:
        process = Process(name, argv, env, cwd)
        self._processes.append(process)
        return process

    def _fail(self, process: Process, error: Exception) -> None:
        description = process.describe()
        process.stop()
        pytest.fail(f"{error}\n{description}", pytrace=False)

    def mock(self, *args: str) -> Mock:
        """A fresh mock upstream; `args` are extra flags such as `--stream-chunks 3`."""
        argv = [str(self.binaries.mock), "--listen", "127.0.0.1:0", *args]
        process = self._start("portcullis-mock-upstream", argv, clean_env())
        try:
            addr = process.wait_for_line("stdout", parse_addr_line, STARTUP_TIMEOUT_S)
        except StartupError as error:
            self._fail(process, error)
        return Mock(process, addr)

    def config_file(self, text: str) -> Path:
        self._configs += 1
        path = self.work_dir / f"portcullis-{self._configs}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    def gateway(
        self,
        *,
        upstream: list[str] | None = None,
        config: Path | None = None,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> Gateway:
        """A gateway on an ephemeral port with `--upstream` values or a `--config` file, ready
        (`GET /readyz` answered 200) when this returns."""
        argv = [
            str(self.binaries.gateway),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--log-level",
            "info",
            # A test never edits the config file; SIGHUP would still reload.
            "--watch-interval-ms",
            "0",
        ]
        if config is not None:
            argv += ["--config", str(config)]
        for value in upstream or []:
            argv += ["--upstream", value]
        argv += list(args)
        # In the test's own directory: the embedded store (`store.path`, default
        # `portcullis.db`) is per test, never shared through the checkout.
        process = self._start("portcullis serve", argv, clean_env(env), self.work_dir)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        try:
            addr = process.wait_for_line("stderr", parse_listening_line, STARTUP_TIMEOUT_S)
            while True:
                remaining = deadline - time.monotonic()
                if not process.running():
                    raise StartupError("the gateway exited before it was ready")
                if remaining <= 0:
                    raise StartupError(
                        f"GET /readyz did not answer 200 within {STARTUP_TIMEOUT_S:.0f} s"
                    )
                if http_get_status(addr, "/readyz", timeout=min(remaining, 1.0)) == 200:
                    break
                time.sleep(READY_POLL_S)
        except StartupError as error:
            self._fail(process, error)
        return Gateway(process, addr)

    def stop_all(self) -> None:
        while self._processes:
            self._processes.pop().stop()


@dataclass(frozen=True)
class Binaries:
    mock: Path
    gateway: Path


def make_client(base_url: str, api_key: str = "test") -> openai.OpenAI:
    """An SDK client that never retries (a retry would hide the first answer) and ignores proxy
    settings from the environment (every address is 127.0.0.1)."""
    return openai.OpenAI(
        base_url=base_url,
        api_key=api_key,
        max_retries=0,
        timeout=CLIENT_TIMEOUT_S,
        http_client=openai.DefaultHttpxClient(trust_env=False),
    )


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    directory = bin_dir()
    found = Binaries(mock=directory / "portcullis-mock-upstream", gateway=directory / "portcullis")
    missing = [str(p) for p in (found.mock, found.gateway) if not os.access(p, os.X_OK)]
    if missing:
        pytest.exit(
            "Portcullis binaries not found: "
            + ", ".join(missing)
            + f"\nBuild them first (debug profile), from {REPO_ROOT}:\n    {BUILD_HINT}",
            returncode=4,
        )
    return found


@pytest.fixture
def launcher(binaries: Binaries, tmp_path: Path) -> Iterator[Launcher]:
    """Processes started through this are stopped when the test ends."""
    launcher = Launcher(binaries, tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.fixture(scope="session")
def session_launcher(binaries: Binaries, tmp_path_factory) -> Iterator[Launcher]:
    launcher = Launcher(binaries, tmp_path_factory.mktemp("portcullis"))
    try:
        yield launcher
    finally:
        launcher.stop_all()


@dataclass
class Pair:
    """The same mock reached two ways: `direct` talks to one fresh mock, `via` talks to the gateway
    in front of another fresh mock. Same requests in the same order give the same ids."""

    direct: openai.OpenAI
    via: openai.OpenAI
    gateway: Gateway
    direct_mock: Mock
    gateway_mock: Mock


@pytest.fixture
def pair(launcher: Launcher) -> Iterator[Pair]:
    direct_mock = launcher.mock()
    gateway_mock = launcher.mock()
    gateway = launcher.gateway(upstream=[gateway_mock.base_url])
    direct = make_client(direct_mock.base_url)
    via = make_client(gateway.base_url)
    try:
        yield Pair(direct, via, gateway, direct_mock, gateway_mock)
    finally:
        direct.close()
        via.close()


@dataclass
class Routed:
    """A gateway that routes only `mock-*` models (others get 404), plus a direct client to the
    mock behind it. Shared by the whole session: only for tests that do not compare ids."""

    direct: openai.OpenAI
    via: openai.OpenAI
    gateway: Gateway
    mock: Mock


@pytest.fixture(scope="session")
def routed(session_launcher: Launcher) -> Iterator[Routed]:
    mock = session_launcher.mock()
    gateway = session_launcher.gateway(upstream=[f"mock-*={mock.base_url}"])
    direct = make_client(mock.base_url)
    via = make_client(gateway.base_url)
    try:
        yield Routed(direct, via, gateway, mock)
    finally:
        direct.close()
        via.close()


@pytest.fixture
def anyio_backend() -> str:
    """The event loop for `@pytest.mark.anyio` tests (the MCP SDK tests): asyncio."""
    return "asyncio"


@pytest.fixture
def fixtures(tmp_path: Path) -> Iterator[FixtureServers]:
    """MCP fixture servers (official SDK) for one test, all stopped when it ends."""
    servers = FixtureServers(tmp_path)
    try:
        yield servers
    finally:
        servers.stop_all()


@pytest.fixture(scope="session")
def k8s_apiserver():
    """A real kube-apiserver (v1.20) and etcd on 127.0.0.1:6443 for the whole session, started
    and stopped with `../shared/tools/k8s-testenv.sh` (see `k8s_env`); one already answering
    there with the test token is reused and left running. Without a built API server the tests
    using this are skipped, unless PORTCULLIS_REQUIRE_K8S is set (as CI does): then they fail."""
    import k8s_env

    if not k8s_env.api_server_binary().exists() and not k8s_env.api_server_ready():
        reason = (
            f"the test API server is not built ({k8s_env.api_server_binary()} is missing); "
            f"build it with: bash {k8s_env.testenv_script()} build"
        )
        if os.environ.get("PORTCULLIS_REQUIRE_K8S"):
            pytest.fail(reason + " (PORTCULLIS_REQUIRE_K8S is set)", pytrace=False)
        pytest.skip(reason)
    server = k8s_env.start_api_server()
    try:
        yield server
    finally:
        k8s_env.stop_api_server(server)
