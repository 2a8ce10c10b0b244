"""The development server behind scripts/develop: the demo SIP server and Home Assistant.

Prepares ``config/`` (kept if it exists): a configuration.yaml that loads the frontend, the
stored HTTP settings pinned to 127.0.0.1 (so Home Assistant never falls back to listening on
every interface), onboarding marked done except for the owner account, and a link
``config/custom_components/sip_profiles`` to the working tree. Then starts the demo Kamailio and
``hass -c config``, creates the development owner account on the first run, prints how to log in
and which SIP accounts to use, and stops both on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time
from typing import Any
import urllib.error
import urllib.parse
import urllib.request

from tests.harness.kamailio import process_group_alive

ROOT = Path(__file__).resolve().parents[2]
HTTP_HOST = "127.0.0.1"
DEV_USER = "dev"
DEV_PASSWORD = "sip-profiles-dev"
CLIENT_ID = "http://127.0.0.1:8123/"
STOP_TIMEOUT = 30.0

CONFIGURATION_YAML = """\
# Home Assistant for developing sip_profiles (made by scripts/develop; edit freely).
# The HTTP server's settings live in .storage/http (127.0.0.1:8123), not here: Home Assistant
# 2026.10 moves an http: section into storage on the first start and treats it as a trial.
homeassistant:
  name: sip_profiles development
  unit_system: metric
  time_zone: UTC

# The integrations behind the frontend and the config-entry UI (no default_config: it would
# start network discovery on every interface).
frontend:
config:
api:
websocket_api:
onboarding:
diagnostics:
repairs:
system_log:
history:
logbook:

logger:
  default: info
  logs:
    custom_components.sip_profiles: debug
"""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def log(message: str) -> None:
    """Print a progress line."""
    print(f"\033[1m[develop]\033[0m {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- config dir


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    path.chmod(0o600)


def prepare_config(config: Path, http_port: int) -> None:
    """Create what is missing in config/; never overwrite the user's files."""
    storage = config / ".storage"
    storage.mkdir(parents=True, exist_ok=True)
    yaml_file = config / "configuration.yaml"
    if not yaml_file.exists():
        yaml_file.write_text(CONFIGURATION_YAML, encoding="utf-8")
        log(f"wrote {yaml_file}")

    link = config / "custom_components" / "sip_profiles"
    target = ROOT / "custom_components" / "sip_profiles"
    link.parent.mkdir(exist_ok=True)
    if link.is_symlink() and link.resolve() != target.resolve():
        link.unlink()
    if not link.exists() and not link.is_symlink():
        link.symlink_to(target, target_is_directory=True)
    elif not link.is_symlink():
        log(f"{link} is a real folder, not the working tree: leaving it alone")

    http_store = storage / "http"
    if not http_store.exists():
        from homeassistant.components.http.config import (  # noqa: PLC0415 - only here
            HTTP_STORAGE_SCHEMA,
            STORAGE_MINOR_VERSION,
            STORAGE_VERSION,
        )

        stable = dict(HTTP_STORAGE_SCHEMA({"server_host": [HTTP_HOST], "server_port": http_port}))
        stable.update(
            created_at=datetime.datetime.now(datetime.UTC).isoformat(),
            error=None,
            error_message=None,
        )
        _write_json(
            http_store,
            {
                "version": STORAGE_VERSION,
                "minor_version": STORAGE_MINOR_VERSION,
                "key": "http",
                "data": {"stable": stable, "pending": None, "yaml_migration_done": True},
            },
        )
    else:
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


# --------------------------------------------------------------------------- HTTP


def _request(
    url: str,
    data: dict[str, Any] | None = None,
    *,
    form: bool = False,
    token: str | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
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
    request = urllib.request.Request(url, body, headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError, urllib.error.URLError:
        return 0, b""


def wait_for_http(base: str, hass: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait until the frontend is served (``/`` and ``/manifest.json`` answer 200)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and hass.poll() is None:
        status, page = _request(f"{base}/")
        if status == 200 and b"<html" in page.lower():
            manifest, _ = _request(f"{base}/manifest.json")
            if manifest == 200:
                return True
        time.sleep(0.5)
    return False


def login(base: str) -> str | None:
    """Create the development owner if onboarding asks for one; return an access token."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # 200: the onboarding steps; 404: onboarding is over (its views are gone)
        status, body = _request(f"{base}/api/onboarding")
        if status in {200, 404}:
            break
        time.sleep(0.5)
    else:
        return None
    steps = {step["step"]: step["done"] for step in json.loads(body)} if status == 200 else {}
    code: str | None = None
    if not steps.get("user", True):
        status, body = _request(
            f"{base}/api/onboarding/users",
            {
                "client_id": CLIENT_ID,
                "name": "Developer",
                "username": DEV_USER,
                "password": DEV_PASSWORD,
                "language": "en",
            },
        )
        if status != 200:
            log(f"could not create the development owner (HTTP {status})")
            return None
        code = json.loads(body)["auth_code"]
        log(f"created the development owner {DEV_USER!r}")
    else:
        status, body = _request(
            f"{base}/auth/login_flow",
            {
                "client_id": CLIENT_ID,
                "handler": ["homeassistant", None],
                "redirect_uri": CLIENT_ID,
            },
        )
        if status != 200:
            return None
        flow = json.loads(body)["flow_id"]
        status, body = _request(
            f"{base}/auth/login_flow/{flow}",
            {"client_id": CLIENT_ID, "username": DEV_USER, "password": DEV_PASSWORD},
        )
        result = json.loads(body) if status == 200 else {}
        if result.get("type") != "create_entry":
            return None
        code = result["result"]
    status, body = _request(
        f"{base}/auth/token",
        {"grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID},
        form=True,
    )
    if status != 200:
        return None
    token: str = json.loads(body)["access_token"]
    return token


def integration_listed(base: str, token: str) -> bool | None:
    """Whether sip_profiles is offered in "Add integration" (None if it could not be asked)."""
    status, body = _request(f"{base}/api/config/config_entries/flow_handlers", token=token)
    if status != 200:
        return None
    return "sip_profiles" in json.loads(body)


# --------------------------------------------------------------------------- processes


def _start(command: list[str], output: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with output.open("ab") as out:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl, no locks taken
        )


def _stop(process: subprocess.Popen[bytes] | None, name: str) -> None:
    if process is None:
        return
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop in {STOP_TIMEOUT:.0f} s: killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT
    while process_group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    """Run until Ctrl-C or SIGTERM; return non-zero if something could not start."""
    parser = argparse.ArgumentParser(prog="scripts/develop", description=__doc__)
    parser.add_argument("--config", default=str(ROOT / "config"), help="Home Assistant config dir")
    parser.add_argument("--http-port", type=int, default=8123, help="for a fresh config dir")
    parser.add_argument("--start-timeout", type=float, default=600, help="seconds to wait for HTTP")
    args = parser.parse_args(argv)

    config = Path(args.config).resolve()
    state = ROOT / ".develop"
    state.mkdir(exist_ok=True)
    prepare_config(config, args.http_port)
    stored = json.loads((config / ".storage" / "http").read_text(encoding="utf-8"))["data"]
    port = (stored.get("pending") or stored["stable"]).get("server_port", args.http_port)
    base = f"http://{HTTP_HOST}:{port}"

    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    sip: subprocess.Popen[bytes] | None = None
    hass: subprocess.Popen[bytes] | None = None
    info_file = state / "kamailio.json"
    try:
        info_file.unlink(missing_ok=True)
        log("starting the demo SIP server")
        sip = _start(
            [
                sys.executable,
                "-m",
                "tests.harness.kamailio",
                "--demo",
                "--state-dir",
                str(state / "kamailio"),
                "--info",
                str(info_file),
            ],
            state / "kamailio.out",
            ROOT,
        )
        deadline = time.monotonic() + 30
        while not info_file.exists() and sip.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if not info_file.exists():
            log(f"the demo SIP server did not start; see {state / 'kamailio.out'}")
            return 1
        sip_info = json.loads(info_file.read_text(encoding="utf-8"))

        log(f"starting Home Assistant (log: {config / 'home-assistant.log'})")
        hass = _start(
            [str(Path(sys.executable).with_name("hass")), "-c", str(config)],
            state / "hass.out",
            ROOT,
        )
        started = time.monotonic()
        if not wait_for_http(base, hass, args.start_timeout):
            if not stopping:
                log(f"Home Assistant did not answer at {base}; see {config / 'home-assistant.log'}")
            return 1
        log(f"Home Assistant answered after {time.monotonic() - started:.1f} s")
        token = login(base)
        listed = integration_listed(base, token) if token else None

        lines = [
            "",
            f"Home Assistant: {base}",
            f"  log in as {DEV_USER} / {DEV_PASSWORD}"
            if token
            else "  log in with your own account",
            "  sip_profiles in Add integration: "
            + {True: "yes", False: "not listed", None: "unknown"}[listed],
            f"Demo SIP server (domain {sip_info['domain']}, log {sip_info['log_file']}):",
            f"  registrar {sip_info['host']}:{sip_info['port']} over UDP or TCP,"
            f" TLS on port {sip_info['tls_port']} (CA {sip_info['ca_file']})",
        ]
        for user, password in sip_info["accounts"].items():
            extra = "  (presence published)" if user in sip_info["presence"] else ""
            lines.append(f"  sip:{user}@{sip_info['domain']}  password {password}{extra}")
        lines += ["Stop everything with Ctrl-C.", ""]
        print("\n".join(lines), flush=True)

        while not stopping:
            if hass.poll() is not None:
                log(f"Home Assistant exited ({hass.returncode})")
                return 1
            if sip.poll() is not None:
                log(f"the demo SIP server exited ({sip.returncode})")
                return 1
            time.sleep(0.5)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log("stopping")
        _stop(hass, "Home Assistant")
        _stop(sip, "the demo SIP server")


if __name__ == "__main__":
    sys.exit(main())
