"""A real Home Assistant process for the development server, the smoke test and the benchmarks.

`prepare_config` makes a config dir: a configuration.yaml, the stored HTTP settings pinned to
loopback (Home Assistant treats an ``http:`` section as a trial and reverts it after five
minutes), onboarding marked done except for the owner account, and a link to this working tree's
integration. `HassProcess` starts ``hass -c CONFIG`` from any virtualenv, waits for its HTTP
server and stops it. `HassClient` onboards or logs in over REST and drives config entries,
config flows and subentry flows. `HassWebsocket` (asyncio) sends commands and measures the event
loop's round trip with the websocket ``ping``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
import contextlib
import ctypes
from dataclasses import dataclass
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time
from typing import Any, cast
import urllib.error
import urllib.parse
import urllib.request

import aiohttp

from tests.harness.kamailio import process_group_alive

ROOT = Path(__file__).resolve().parents[2]
INTEGRATION = ROOT / "custom_components" / "sip_profiles"
HTTP_HOST = "127.0.0.1"
OWNER = "dev"
OWNER_PASSWORD = "sip-profiles-dev"
STOP_TIMEOUT = 30.0

#: The integrations behind the frontend and the config-entry UI; no default_config, which would
#: start network discovery on every interface.
BASE_INTEGRATIONS = (
    "frontend",
    "config",
    "api",
    "websocket_api",
    "onboarding",
    "diagnostics",
    "repairs",
    "system_log",
)

# Runs in the Home Assistant's own interpreter: the stored format of the HTTP settings changes
# between releases (2026.10 stores version 2, 2026.11 version 3).
_HTTP_STORE_WRITER = """\
import datetime, json, sys
from homeassistant.components.http.config import (
    HTTP_STORAGE_SCHEMA, STORAGE_MINOR_VERSION, STORAGE_VERSION)
path, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
stable = dict(HTTP_STORAGE_SCHEMA({"server_host": [host], "server_port": port}))
stable.update(created_at=datetime.datetime.now(datetime.UTC).isoformat(),
              error=None, error_message=None)
data = {"stable": stable, "pending": None, "yaml_migration_done": True}
with open(path, "w", encoding="utf-8") as out:
    json.dump({"version": STORAGE_VERSION, "minor_version": STORAGE_MINOR_VERSION,
               "key": "http", "data": data}, out, indent=2)
"""


def configuration_yaml(
    name: str,
    *,
    integrations: Iterable[str] = BASE_INTEGRATIONS,
    logs: Mapping[str, str] | None = None,
    default_level: str = "info",
) -> str:
    """A configuration.yaml that loads integrations (each with its defaults) and sets log levels."""
    lines = [
        f"# Home Assistant for {name} (made by tests/harness/hass.py; edit freely).",
        "# The HTTP server's settings live in .storage/http (loopback), not here: Home Assistant",
        "# moves an http: section into storage on the first start and treats it as a trial.",
        "homeassistant:",
        f"  name: {name}",
        "  unit_system: metric",
        "  time_zone: UTC",
        "",
        *(f"{integration}:" for integration in integrations),
        "",
        "logger:",
        f"  default: {default_level}",
    ]
    if logs:
        lines.append("  logs:")
        lines += [f"    {logger}: {level}" for logger, level in logs.items()]
    return "\n".join(lines) + "\n"


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    path.chmod(0o600)


def prepare_config(
    config: Path,
    http_port: int,
    configuration: str,
    *,
    python: Path | None = None,
    log: Callable[[str], None] = lambda _message: None,
) -> int:
    """Create what is missing in config (never overwriting a file); return the HTTP port in use.

    python is the interpreter of the Home Assistant that will run (it writes the stored HTTP
    settings in its own format); the current one by default.
    """
    storage = config / ".storage"
    storage.mkdir(parents=True, exist_ok=True)
    yaml_file = config / "configuration.yaml"
    if not yaml_file.exists():
        yaml_file.write_text(configuration, encoding="utf-8")
        log(f"wrote {yaml_file}")

    link = config / "custom_components" / "sip_profiles"
    link.parent.mkdir(exist_ok=True)
    if link.is_symlink() and link.resolve() != INTEGRATION.resolve():
        link.unlink()
    if not link.exists() and not link.is_symlink():
        link.symlink_to(INTEGRATION, target_is_directory=True)
    elif not link.is_symlink():
        log(f"{link} is a real folder, not the working tree: leaving it alone")

    http_store = storage / "http"
    if not http_store.exists():
        subprocess.run(
            [
                str(python or sys.executable),
                "-c",
                _HTTP_STORE_WRITER,
                str(http_store),
                HTTP_HOST,
                str(http_port),
            ],
            check=True,
        )
        http_store.chmod(0o600)
    stored = json.loads(http_store.read_text(encoding="utf-8"))["data"]
    active = stored.get("pending") or stored["stable"]
    if active.get("server_host") != [HTTP_HOST]:
        log(f"note: {http_store} makes Home Assistant listen on {active.get('server_host')}")

    onboarding = storage / "onboarding"
    if not onboarding.exists():
        # every step but the owner account: core_config would add cloud-backed integrations
        _write_json(
            onboarding,
            {
                "version": 4,
                "minor_version": 1,
                "key": "onboarding",
                "data": {"done": ["core_config", "analytics", "integration"]},
            },
        )
    return int(active.get("server_port", http_port))


# --------------------------------------------------------------------------- processes


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def start_process(
    command: list[str], output: Path, cwd: Path = ROOT, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start command in its own process group, output appended to output; it dies with us.

    ``env`` is added to this process's environment.
    """
    with output.open("ab") as out:
        return subprocess.Popen(
            command,
            env=None if env is None else {**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl, no locks taken
        )


def stop_process(
    process: subprocess.Popen[bytes] | None,
    timeout: float = STOP_TIMEOUT,
    log: Callable[[str], None] = lambda _message: None,
    name: str = "the process",
) -> float:
    """SIGTERM, then SIGKILL of the whole group after timeout; return the seconds to exit."""
    if process is None:
        return 0.0
    started = time.monotonic()
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop in {timeout:.0f} s: killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)
    stopped = time.monotonic() - started
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while process_group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return stopped


def request(
    url: str,
    data: Mapping[str, Any] | None = None,
    *,
    form: bool = False,
    token: str | None = None,
    method: str | None = None,
    timeout: float = 30.0,
) -> tuple[int, bytes]:
    """One HTTP request; (status, body), status 0 when nothing answered."""
    body: bytes | None = None
    headers = {}
    if data is not None:
        if form:
            body = urllib.parse.urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            body = json.dumps(data).encode()
            headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, body, headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError, urllib.error.URLError:
        return 0, b""


class HassError(RuntimeError):
    """Home Assistant did not start, answer or do what was asked."""


@dataclass(frozen=True)
class ProcessSample:
    """CPU seconds (user + system, every thread) and resident memory of a process."""

    cpu_seconds: float
    rss_bytes: int


def sample_process(pid: int) -> ProcessSample:
    """Read /proc/<pid>/stat and /proc/<pid>/status."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return ProcessSample(cpu, rss)


class HassProcess:
    """``hass -c config`` from the virtualenv of python, on loopback."""

    def __init__(
        self,
        config: Path,
        port: int,
        *,
        python: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Prepare (not start); python is the Home Assistant's interpreter, env added to ours."""
        self.config = config
        self.python = python or Path(sys.executable)
        self.env = env
        self.base = f"http://{HTTP_HOST}:{port}"
        self.log_file = config / "home-assistant.log"
        self.output = config / "hass.out"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The running process's id."""
        if self.process is None:
            raise HassError("Home Assistant is not running")
        return self.process.pid

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def version(self) -> str:
        """The Home Assistant version of this interpreter."""
        return subprocess.run(
            [str(self.python), "-c", "import homeassistant.const as c; print(c.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    def start(self, *args: str) -> None:
        """Launch; args go to hass (e.g. ``--skip-pip``)."""
        hass = self.python.with_name("hass")
        command = [str(hass), "-c", str(self.config), *args]
        self.process = start_process(command, self.output, env=self.env)

    def wait_for_http(self, timeout: float) -> bool:
        """Wait until the frontend is served (``/`` and ``/manifest.json`` answer 200)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running:
            status, page = request(f"{self.base}/", timeout=5)
            if status == 200 and b"<html" in page.lower():
                manifest, _ = request(f"{self.base}/manifest.json", timeout=5)
                if manifest == 200:
                    return True
            time.sleep(0.25)
        return False

    def stop(self, timeout: float = STOP_TIMEOUT, log: Callable[[str], None] = print) -> float:
        """Stop (SIGTERM, as a service manager does); return the seconds it took to exit."""
        process, self.process = self.process, None
        return stop_process(process, timeout, log, "Home Assistant")

    def sample(self) -> ProcessSample:
        """CPU time and resident memory of the running process."""
        return sample_process(self.pid)

    def log_lines(self, level: str = "ERROR") -> list[str]:
        """The log's lines (of this start) at level, e.g. ``ERROR``, with what follows them."""
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        found: list[str] = []
        current: list[str] | None = None
        for line in text.splitlines():
            if line[:4].isdigit():  # "2026-12-03 23:08:40.443+00:00 ERROR (MainThread) [...]"
                current = [line] if line.split(" ", 3)[2:3] == [level] else None
                if current is not None:
                    found.append(line)
            elif current is not None:
                found[-1] += "\n" + line
        return found


# --------------------------------------------------------------------------- REST


class HassClient:
    """Home Assistant's REST API, as the frontend uses it."""

    def __init__(self, base: str) -> None:
        """Talk to base, e.g. ``http://127.0.0.1:8123``."""
        self.base = base
        self.client_id = f"{base}/"
        self.token: str | None = None

    def call(
        self, path: str, data: Mapping[str, Any] | None = None, *, method: str | None = None
    ) -> Any:
        """Request path with the access token; the decoded JSON answer, HassError if not 200."""
        status, body = request(f"{self.base}{path}", data, token=self.token, method=method)
        if status != 200:
            raise HassError(f"{method or ('POST' if data is not None else 'GET')} {path}:"
                            f" HTTP {status} {body[:500]!r}")  # fmt: skip
        return json.loads(body) if body else None

    def login(
        self, username: str = OWNER, password: str = OWNER_PASSWORD, timeout: float = 60
    ) -> str:
        """Create the owner if onboarding asks for one, else log in; keep and return a token."""
        deadline = time.monotonic() + timeout
        while True:
            # 200: the onboarding steps; 404: onboarding is over (its views are gone)
            status, body = request(f"{self.base}/api/onboarding")
            if status in {200, 404}:
                break
            if time.monotonic() > deadline:
                raise HassError(f"onboarding did not answer (HTTP {status})")
            time.sleep(0.25)
        steps = {step["step"]: step["done"] for step in json.loads(body)} if status == 200 else {}
        if not steps.get("user", True):
            status, body = request(
                f"{self.base}/api/onboarding/users",
                {
                    "client_id": self.client_id,
                    "name": "Owner",
                    "username": username,
                    "password": password,
                    "language": "en",
                },
            )
            if status != 200:
                raise HassError(f"could not create the owner (HTTP {status} {body[:200]!r})")
            code = json.loads(body)["auth_code"]
        else:
            status, body = request(
                f"{self.base}/auth/login_flow",
                {
                    "client_id": self.client_id,
                    "handler": ["homeassistant", None],
                    "redirect_uri": self.client_id,
                },
            )
            if status != 200:
                raise HassError(f"no login flow (HTTP {status})")
            flow = json.loads(body)["flow_id"]
            status, body = request(
                f"{self.base}/auth/login_flow/{flow}",
                {"client_id": self.client_id, "username": username, "password": password},
            )
            result = json.loads(body) if status == 200 else {}
            if result.get("type") != "create_entry":
                raise HassError(f"login refused for {username!r}")
            code = result["result"]
        status, body = request(
            f"{self.base}/auth/token",
            {"grant_type": "authorization_code", "code": code, "client_id": self.client_id},
            form=True,
        )
        if status != 200:
            raise HassError(f"no token (HTTP {status})")
        self.token = cast(str, json.loads(body)["access_token"])
        return self.token

    # -- config entries and flows ----------------------------------------------------------

    def flow_handlers(self) -> list[str]:
        """The integrations offered in "Add integration"."""
        return cast(list[str], self.call("/api/config/config_entries/flow_handlers"))

    def _drive(self, path: str, start: Mapping[str, Any], steps: Iterable[Any]) -> dict[str, Any]:
        result = cast(dict[str, Any], self.call(path, start))
        for step in steps:
            if result.get("type") not in {"form", "menu"}:
                break
            payload = {"next_step_id": step} if result["type"] == "menu" else step
            result = cast(dict[str, Any], self.call(f"{path}/{result['flow_id']}", payload))
        return result

    def config_flow(self, handler: str, *steps: Any) -> dict[str, Any]:
        """Run a config flow: each step is a form's input, or a menu's choice (a str)."""
        return self._drive("/api/config/config_entries/flow", {"handler": handler}, steps)

    def subentry_flow(self, entry_id: str, subentry_type: str, *steps: Any) -> dict[str, Any]:
        """Run a subentry flow of entry_id, steps as in config_flow."""
        return self._drive(
            "/api/config/config_entries/subentries/flow",
            {"handler": [entry_id, subentry_type]},
            steps,
        )

    def entries(self, domain: str | None = None) -> list[dict[str, Any]]:
        """The config entries of domain (of every domain by default), with their state."""
        query = "" if domain is None else f"?domain={urllib.parse.quote(domain)}"
        return cast(list[dict[str, Any]], self.call(f"/api/config/config_entries/entry{query}"))

    def started(self) -> bool:
        """Whether Home Assistant has finished starting.

        Until then SIGTERM kills it at once: its signal handlers are installed when the start
        is over, so nothing of a stop (unregistering included) would run.
        """
        return bool(self.call("/api/config")["state"] == "RUNNING")

    def settled(self) -> bool:
        """Whether no config entry is still being set up (Home Assistant's own ones included)."""
        return all(entry["state"] != "setup_in_progress" for entry in self.entries())

    def reload(self, entry_id: str) -> dict[str, Any]:
        """Reload a config entry; the answer says whether it needs a restart."""
        return cast(
            dict[str, Any], self.call(f"/api/config/config_entries/entry/{entry_id}/reload", {})
        )

    def states(self) -> list[dict[str, Any]]:
        """Every entity's state."""
        return cast(list[dict[str, Any]], self.call("/api/states"))

    def state(self, entity_id: str) -> dict[str, Any] | None:
        """One entity's state, None if it has none."""
        status, body = request(f"{self.base}/api/states/{entity_id}", token=self.token)
        return json.loads(body) if status == 200 else None

    def wait_for(self, check: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll check every 0.2 s until true; the seconds it took, HassError after timeout."""
        started = time.monotonic()
        while not check():
            if time.monotonic() - started > timeout:
                raise HassError(f"{what}: not within {timeout:.0f} s")
            time.sleep(0.2)
        return time.monotonic() - started


# --------------------------------------------------------------------------- websocket


class HassWebsocket:
    """The websocket API: commands and the ``ping`` round trip."""

    def __init__(self, base: str, token: str) -> None:
        """Connect with connect()."""
        self.url = base.replace("http", "ws", 1) + "/api/websocket"
        self.token = token
        self._session: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        """Open and authenticate."""
        self._session = aiohttp.ClientSession()
        self._socket = await self._session.ws_connect(self.url, max_msg_size=0, heartbeat=None)
        await self._socket.receive_json()  # auth_required
        await self._socket.send_json({"type": "auth", "access_token": self.token})
        answer = await self._socket.receive_json()
        if answer.get("type") != "auth_ok":
            raise HassError(f"websocket authentication failed: {answer}")
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        """Close the socket and the session."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._socket is not None:
            await self._socket.close()
        if self._session is not None:
            await self._session.close()

    async def _read(self) -> None:
        assert self._socket is not None
        async for message in self._socket:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            payload = json.loads(message.data)
            for item in payload if isinstance(payload, list) else [payload]:
                if (future := self._pending.pop(item["id"], None)) and not future.done():
                    future.set_result(item)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(HassError("websocket closed"))

    async def send(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Send a command; its answer (HassError if it failed)."""
        assert self._socket is not None
        self._next_id += 1
        ident = self._next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        await self._socket.send_json({**message, "id": ident})
        answer = await future
        if answer.get("type") == "result" and not answer.get("success"):
            raise HassError(f"{message.get('type')}: {answer.get('error')}")
        return answer

    async def ping(self) -> float:
        """Seconds from ``ping`` to ``pong``: how long the event loop takes to answer."""
        started = time.monotonic()
        await self.send({"type": "ping"})
        return time.monotonic() - started
