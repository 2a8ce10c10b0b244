"""A real Kamailio on loopback: registrar, presence server and TLS endpoint for the tests.

`KamailioServer` writes a configuration (kamailio.cfg next to this file) into a private state
dir, starts ``kamailio -DD -E`` on free loopback ports (UDP and TCP share one port, TLS has its
own), waits until it answers OPTIONS, and drives it at run time through ``kamcmd``: accounts,
fault switches and the registrar's bindings. Everything it starts is stopped by ``stop()``
(SIGTERM, then SIGKILL of the whole process group), at interpreter exit, or when the starting
process dies.

Run ``python -m tests.harness.kamailio --demo`` for a server with demo accounts and published
presence on the usual ports (5060/5061 when free), stopped with Ctrl-C.
"""

from __future__ import annotations

import argparse
import atexit
from collections.abc import Iterable, Mapping
import contextlib
import ctypes
from dataclasses import dataclass
import json
import os
from pathlib import Path
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from types import TracebackType
from typing import Self
import weakref

from tests.harness.certs import TlsFiles, make_tls_files

DOMAIN = "sip.test"
REALM = "sip.test"
HOST = "127.0.0.1"

#: The test accounts every server starts with (user -> password).
TEST_ACCOUNTS: Mapping[str, str] = {
    "alice": "alice-secret",
    "bob": "bob-secret",
    "carol": "carol-secret",
    "dave": "dave-secret",
}

#: The demo server's accounts, and the presence it publishes for some of them.
DEMO_ACCOUNTS: Mapping[str, str] = {
    "demo1": "demo1-pass",
    "demo2": "demo2-pass",
    "demo3": "demo3-pass",
}

TEMPLATE = Path(__file__).with_name("kamailio.cfg")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
_PR_SET_PDEATHSIG = 1


class KamailioError(RuntimeError):
    """Kamailio could not be started, or refused a control command."""


class KamailioUnavailable(KamailioError):
    """Kamailio (or one of its module packages) is not installed here."""


@dataclass(frozen=True)
class Binding:
    """One contact the registrar holds for an address of record."""

    contact: str
    expires: int  # seconds left
    q: float | None
    instance: str | None  # +sip.instance, e.g. "<urn:uuid:...>"
    reg_id: int | None
    received: str | None
    user_agent: str | None
    socket: str | None


def pidf(entity: str, basic: str = "open", note: str | None = None) -> str:
    """A minimal PIDF document (RFC 3863) for entity, e.g. ``sip:demo2@sip.test``."""
    note_xml = f"<note>{note}</note>" if note else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="{entity}">'
        f'<tuple id="t{secrets.token_hex(4)}"><status><basic>{basic}</basic></status>'
        f"{note_xml}</tuple></presence>\n"
    )


DEMO_PRESENCE: Mapping[str, str] = {
    "demo2": pidf("sip:demo2@sip.test", "open", "Available"),
    "demo3": pidf("sip:demo3@sip.test", "closed", "Away"),
}


# --------------------------------------------------------------------------- installation


def _find_program(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        candidate = Path(folder, name)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _find_dir(env: str, patterns: Iterable[str], marker: str) -> Path | None:
    if os.environ.get(env):
        return Path(os.environ[env])
    for pattern in patterns:
        for candidate in sorted(Path("/").glob(pattern.lstrip("/"))):
            if (candidate / marker).exists():
                return candidate
    return None


@dataclass(frozen=True)
class Installation:
    """Where this machine keeps Kamailio's programs, modules and SQL schemas."""

    kamailio: str
    kamcmd: str
    modules: Path
    schemas: Path


def find_installation() -> Installation:
    """Locate Kamailio, or raise KamailioUnavailable saying what is missing."""
    kamailio = _find_program("kamailio")
    kamcmd = _find_program("kamcmd")
    if kamailio is None or kamcmd is None:
        raise KamailioUnavailable(
            "kamailio/kamcmd not installed (scripts/setup installs the Debian packages)"
        )
    modules = _find_dir(
        "SIP_PROFILES_KAMAILIO_MODULES",
        (
            "/usr/lib/*/kamailio/modules",
            "/usr/lib/kamailio/modules",
            "/usr/local/lib*/kamailio/modules",
        ),
        "presence_xml.so",
    )
    if modules is None:
        raise KamailioUnavailable("Kamailio presence modules not installed")
    for module in ("tls.so", "db_sqlite.so", "presence_dialoginfo.so", "presence_mwi.so"):
        if not (modules / module).exists():
            raise KamailioUnavailable(f"Kamailio module {module} not installed")
    schemas = _find_dir(
        "SIP_PROFILES_KAMAILIO_SCHEMAS",
        ("/usr/share/kamailio/db_sqlite", "/usr/local/share/kamailio/db_sqlite"),
        "presence-create.sql",
    )
    if schemas is None:
        raise KamailioUnavailable("Kamailio's SQLite schemas not installed")
    return Installation(kamailio, kamcmd, modules, schemas)


# --------------------------------------------------------------------------- ports


def _port_free(port: int, *, udp: bool, tcp: bool) -> bool:
    kinds = ([socket.SOCK_DGRAM] if udp else []) + ([socket.SOCK_STREAM] if tcp else [])
    held: list[socket.socket] = []
    try:
        for kind in kinds:
            sock = socket.socket(socket.AF_INET, kind)
            held.append(sock)
            sock.bind((HOST, port))
    except OSError:
        return False
    else:
        return True
    finally:
        for sock in held:
            sock.close()


def _free_ports() -> tuple[int, int]:
    """A port free for both UDP and TCP, and another free for TCP."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = int(udp.getsockname()[1])
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                    tcp.bind((HOST, port))
            except OSError:
                continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tls:
            tls.bind((HOST, 0))
            tls_port = int(tls.getsockname()[1])
        if tls_port != port:
            return port, tls_port


# --------------------------------------------------------------------------- kamcmd output


def _parse_value(raw: str) -> str | int | float:
    value = raw.strip()
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    if re.fullmatch(r"-?\d+\.\d+", value):
        return float(value)
    return value


def parse_bindings(output: str) -> list[Binding]:
    """Parse the Contacts of ``kamcmd ul.lookup`` (binrpc's indented ``key: value`` text)."""
    bindings: list[Binding] = []
    current: dict[str, str | int | float] | None = None
    for line in output.splitlines():
        match = re.match(r"^\s*([A-Za-z][\w\-]*):\s?(.*)$", line)
        if match is None:
            continue
        key, value = match.group(1), match.group(2)
        if key == "Address":
            current = {"Address": value.strip()}
            bindings.append(_binding_placeholder())
        if current is None:
            continue
        current[key] = _parse_value(value)
        bindings[-1] = _binding_from(current)
    return bindings


def _binding_placeholder() -> Binding:
    return Binding("", 0, None, None, None, None, None, None)


def _text(fields: Mapping[str, str | int | float], key: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    text = str(value).strip()
    return None if text in {"", "[not set]", "<null>"} else text


def _binding_from(fields: Mapping[str, str | int | float]) -> Binding:
    q_raw = fields.get("Q")
    q = float(q_raw) if isinstance(q_raw, (int, float)) and q_raw >= 0 else None
    expires_raw = fields.get("Expires", 0)
    reg_id = fields.get("Reg-Id")
    return Binding(
        contact=str(fields.get("Address", "")),
        expires=int(expires_raw) if isinstance(expires_raw, (int, float)) else 0,
        q=q,
        instance=_text(fields, "Instance"),
        reg_id=int(reg_id) if isinstance(reg_id, int) and reg_id > 0 else None,
        received=_text(fields, "Received"),
        user_agent=_text(fields, "User-Agent"),
        socket=_text(fields, "Socket"),
    )


# --------------------------------------------------------------------------- the server

_RUNNING: weakref.WeakSet[KamailioServer] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop()


def process_group_alive(pgid: int) -> bool:
    """Whether any process of group pgid still runs (zombies waiting to be reaped do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError, IndexError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class KamailioServer:
    """One Kamailio process tree serving ``sip.test`` on loopback.

    Ports given as 0 are chosen free at start (and chosen again if another process takes them
    first); ``restart()`` keeps them. Test accounts are TEST_ACCOUNTS unless given.
    """

    def __init__(
        self,
        *,
        accounts: Mapping[str, str] | None = None,
        presence: Mapping[str, str] | None = None,
        port: int = 0,
        tls_port: int = 0,
        fix_nated_contact: bool = True,
        state_dir: Path | None = None,
        shared_memory_mb: int = 64,
        receive_buffer: int = 262144,
    ) -> None:
        """Prepare (not start) a server; see the class docstring.

        ``shared_memory_mb`` and ``receive_buffer`` (Kamailio's ``-m`` and ``maxbuffer``) are
        sized for the tests; a server that takes the requests of hundreds of profiles at once
        needs more (sipdump queues every message in shared memory).
        """
        self.installation = find_installation()
        self.domain = DOMAIN
        self.realm = REALM
        self.host = HOST
        self.accounts: dict[str, str] = dict(TEST_ACCOUNTS if accounts is None else accounts)
        self.presence: dict[str, str] = dict(presence or {})
        self.fix_nated_contact = fix_nated_contact
        self.shared_memory_mb = shared_memory_mb
        self.receive_buffer = receive_buffer
        self._fixed_ports = (port, tls_port)
        self.port = port
        self.tls_port = tls_port
        self._own_state_dir = state_dir is None
        # short path: the control socket's path must fit in sun_path
        self.state_dir = state_dir or Path(tempfile.mkdtemp(prefix="kamailio-"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_file = self.state_dir / "kamailio.log"
        self.config_file = self.state_dir / "kamailio.cfg"
        self.pid_file = self.state_dir / "kamailio.pid"
        self.control = f"unix:{self.state_dir / 'kamailio.ctl'}"
        self.tls: TlsFiles = make_tls_files(self.state_dir / "tls")
        self._process: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ addresses

    @property
    def ca_file(self) -> Path:
        """The CA certificate that signed the server's TLS certificate."""
        return self.tls.ca_file

    def address(self, transport: str = "udp") -> tuple[str, int]:
        """(host, port) for transport "udp", "tcp" or "tls"."""
        return (self.host, self.tls_port if transport.lower() == "tls" else self.port)

    def aor(self, user: str) -> str:
        """The address of record of user, e.g. ``sip:alice@sip.test``."""
        return f"sip:{user}@{self.domain}"

    @property
    def pid(self) -> int | None:
        """The main process id (also its process group id) while started."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        """Whether the main process is alive."""
        return self._process is not None and self._process.poll() is None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> Self:
        """Start and wait until OPTIONS is answered; raise KamailioError if it will not."""
        if self.running:
            return self
        attempts = 1 if all(self._fixed_ports) else 5
        for attempt in range(attempts):
            if not self.port or not self.tls_port or attempt > 0:
                chosen, chosen_tls = _free_ports()
                self.port = self._fixed_ports[0] or chosen
                self.tls_port = self._fixed_ports[1] or chosen_tls
            try:
                self._launch()
            except KamailioError:
                self.stop()
                if attempt == attempts - 1 or "Address already in use" not in self.log_tail():
                    raise
            else:
                return self
        raise KamailioError("unreachable")  # pragma: no cover

    def _write_config(self) -> None:
        template = TEMPLATE.read_text(encoding="utf-8")
        replacements = {
            "SP_STATE": str(self.state_dir),
            "SP_MODULES": str(self.installation.modules),
            "SP_TLS_PORT": str(self.tls_port),
            "SP_PORT": str(self.port),
            "SP_FIX_CONTACT": "1" if self.fix_nated_contact else "0",
            "SP_RECEIVE_BUFFER": str(self.receive_buffer),
        }
        for word, value in replacements.items():
            template = template.replace(word, value)
        lines = ["", "route[LOAD_ACCOUNTS] {"]
        for user, password in self.accounts.items():
            lines.append(f"\t$sht(accounts=>{_cfg_str(user)}) = {_cfg_quote(password)};")
        lines.append("}")
        self.config_file.write_text(template + "\n".join(lines) + "\n", encoding="utf-8")
        (self.state_dir / "tls.cfg").write_text(
            "[server:default]\n"
            "method = TLSv1.2+\n"
            "verify_certificate = no\n"
            "require_certificate = no\n"
            f"certificate = {self.tls.cert_file}\n"
            f"private_key = {self.tls.key_file}\n"
            f"ca_list = {self.tls.ca_file}\n"
            "\n[client:default]\n"
            "method = TLSv1.2+\n"
            "verify_certificate = no\n"
            "require_certificate = no\n",
            encoding="utf-8",
        )
        (self.state_dir / "sipdump").mkdir(exist_ok=True)

    def _write_database(self) -> None:
        database = self.state_dir / "presence.db"
        if not database.exists():
            with contextlib.closing(sqlite3.connect(database)) as db:
                for schema in ("standard-create.sql", "presence-create.sql"):
                    db.executescript((self.installation.schemas / schema).read_text())
                db.commit()
        if not self.presence:
            return
        now = int(time.time())
        with contextlib.closing(sqlite3.connect(database)) as db:
            for user, body in self.presence.items():
                db.execute(
                    "DELETE FROM presentity WHERE username = ? AND domain = ? AND event = ?",
                    (user, self.domain, "presence"),
                )
                db.execute(
                    "INSERT INTO presentity (username, domain, event, etag, expires,"
                    " received_time, body, sender, priority)"
                    " VALUES (?, ?, 'presence', ?, ?, ?, ?, ?, 0)",
                    (
                        user,
                        self.domain,
                        f"seed{secrets.token_hex(6)}",
                        now + 10 * 365 * 86400,
                        now,
                        body.encode(),
                        f"sip:{user}@{self.domain}",
                    ),
                )
            db.commit()

    def _launch(self) -> None:
        self._write_config()
        self._write_database()
        self.pid_file.unlink(missing_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"==== starting on udp/tcp {self.port}, tls {self.tls_port}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [
                    self.installation.kamailio,
                    "-f",
                    str(self.config_file),
                    "-P",
                    str(self.pid_file),
                    "-DD",
                    "-E",
                    "-m",
                    str(self.shared_memory_mb),
                    "-M",
                    "8",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.state_dir,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl, no locks taken
            )
        _RUNNING.add(self)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise KamailioError(
                    f"kamailio exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            if self.ping(timeout=0.2):
                return
        raise KamailioError(f"kamailio did not answer OPTIONS in time:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL to the whole group after STOP_TIMEOUT."""
        process, self._process = self._process, None
        _RUNNING.discard(self)
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT)
        # children that outlived the main process (it was killed, or crashed)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_TIMEOUT
        while process_group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self) -> None:
        """Stop, then start on the same ports: bindings are gone, stored presence stays."""
        self.stop()
        self._fixed_ports = (self.port, self.tls_port)
        self.start()

    def close(self) -> None:
        """Stop and remove the state dir if the server made it."""
        self.stop()
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        """Start; the server stops and cleans up when the block ends."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop and clean up."""
        self.close()

    # ------------------------------------------------------------------ probing

    def ping(self, timeout: float = 1.0) -> bool:
        """Send one OPTIONS over UDP; True if a 200 came back within timeout."""
        call_id = secrets.token_hex(8)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((HOST, 0))
            local_port = sock.getsockname()[1]
            request = (
                f"OPTIONS sip:{self.host}:{self.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{local_port};branch=z9hG4bK{call_id};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:probe@{self.domain}>;tag={call_id[:6]}\r\n"
                f"To: <sip:{self.host}:{self.port}>\r\n"
                f"Call-ID: {call_id}\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            sock.settimeout(timeout)
            try:
                sock.sendto(request.encode(), (self.host, self.port))
                deadline = time.monotonic() + timeout
                while (left := deadline - time.monotonic()) > 0:
                    sock.settimeout(left)
                    data = sock.recv(65535)
                    if call_id.encode() in data:
                        return data.startswith(b"SIP/2.0 200 ")
            except OSError:
                return False
        return False

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the server's log (its stderr), for failure reports."""
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------------ control

    def kamcmd(self, *args: str) -> str:
        """Run a control command; raise KamailioError when kamcmd reports an error."""
        if not self.running:
            raise KamailioError("kamailio is not running")
        result = subprocess.run(
            [self.installation.kamcmd, "-s", self.control, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        output = result.stdout + result.stderr
        if result.returncode != 0 or re.search(r"^error:", output, re.MULTILINE):
            raise KamailioError(f"kamcmd {args[0]} failed: {output.strip()}")
        return result.stdout

    def _set_int(self, table: str, key: str, value: int) -> None:
        self.kamcmd("htable.seti", f"s:{table}", f"s:{key}", str(int(value)))

    def set_password(self, user: str, password: str) -> None:
        """Create the account user, or change its password, while the server runs."""
        self.accounts[user] = password
        if self.running:
            self.kamcmd("htable.sets", "s:accounts", f"s:{user}", f"s:{password}")

    def new_account(self, prefix: str) -> str:
        """Create an account no earlier test has used, ``prefix`` plus a random suffix.

        Its password is its name followed by ``-secret``. Presence a test leaves behind (the
        server caches publications) cannot reach a later test that watches a new account.
        """
        user = f"{prefix}-{secrets.token_hex(4)}"
        self.set_password(user, f"{user}-secret")
        return user

    def remove_account(self, user: str) -> None:
        """Delete the account user (its REGISTERs get 404, its credentials 403)."""
        self.accounts.pop(user, None)
        if self.running:
            self.kamcmd("htable.delete", "s:accounts", f"s:{user}")

    def set_register_503(self, retry_after: int) -> None:
        """Answer every REGISTER with 503 and ``Retry-After: retry_after`` (0: off)."""
        self._set_int("faults", "register_503", retry_after)

    def set_drop_every(self, every: int) -> None:
        """Drop every Nth request from now on without an answer (0: off)."""
        self._set_int("faults", "seen", 0)
        self._set_int("faults", "drop_every", every)

    def set_auth_403(self, enabled: bool) -> None:
        """Answer a wrong password with 403 instead of a fresh 401 challenge."""
        self._set_int("faults", "auth_403", 1 if enabled else 0)

    def set_no_mwi(self, enabled: bool) -> None:
        """Answer message-summary SUBSCRIBE and PUBLISH with 489 (no voicemail offered)."""
        self._set_int("faults", "no_mwi", 1 if enabled else 0)

    def set_proxy_auth(self, enabled: bool) -> None:
        """Challenge SUBSCRIBE, PUBLISH and MESSAGE with 407 (REGISTER stays 401)."""
        self._set_int("settings", "proxy_auth", 1 if enabled else 0)

    def set_fix_nated_contact(self, enabled: bool) -> None:
        """Send NOTIFYs to the SUBSCRIBE's source (True) or to its Contact as sent (False)."""
        self._set_int("settings", "fix_contact", 1 if enabled else 0)

    def reset_faults(self) -> None:
        """Switch every fault off and restore the settings the server started with."""
        self.set_register_503(0)
        self.set_drop_every(0)
        self.set_auth_403(False)
        self.set_no_mwi(False)
        self.set_proxy_auth(False)
        self.set_fix_nated_contact(self.fix_nated_contact)

    def bindings(self, aor: str) -> list[Binding]:
        """The registrar's current contacts for aor (``alice``, ``alice@sip.test`` or a URI)."""
        user = aor.removeprefix("sips:").removeprefix("sip:").split("@", 1)[0]
        try:
            output = self.kamcmd("ul.lookup", "location", f"s:{user}")
        except KamailioError as err:
            if "404" in str(err) or "not found" in str(err).lower():
                return []
            raise
        return parse_bindings(output)

    def clear_publications(self) -> None:
        """Forget every publication the server holds, except the seeded presence."""
        seeded = list(self.presence)
        with contextlib.closing(sqlite3.connect(self.state_dir / "presence.db", timeout=5)) as db:
            db.execute(
                "DELETE FROM presentity WHERE username NOT IN"
                f" ({', '.join('?' for _ in seeded) or 'NULL'})",
                seeded,
            )
            db.commit()

    def remove_bindings(self, aor: str) -> None:
        """Delete every binding of aor at the registrar (the client is not told)."""
        user = aor.removeprefix("sips:").removeprefix("sip:").split("@", 1)[0]
        with contextlib.suppress(KamailioError):
            self.kamcmd("ul.rm", "location", f"s:{user}")


def _cfg_str(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.+\-]+", value):
        raise ValueError(f"account name {value!r} must be plain letters, digits or ._+-")
    return value


def _cfg_quote(value: str) -> str:
    if '"' in value or "\\" in value or "$" in value or "\n" in value:
        raise ValueError("password must not contain quotes, backslashes, $ or newlines")
    return f'"{value}"'


# --------------------------------------------------------------------------- demo


def _demo(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir) if args.state_dir else None
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
    port = args.port if _port_free(args.port, udp=True, tcp=True) else 0
    tls_port = args.tls_port if _port_free(args.tls_port, udp=False, tcp=True) else 0
    server = KamailioServer(
        accounts=DEMO_ACCOUNTS,
        presence=DEMO_PRESENCE,
        port=port,
        tls_port=tls_port,
        state_dir=state_dir,
    )
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.start()
        info = {
            "domain": server.domain,
            "host": server.host,
            "port": server.port,
            "tls_port": server.tls_port,
            "ca_file": str(server.ca_file),
            "log_file": str(server.log_file),
            "accounts": dict(server.accounts),
            "presence": sorted(server.presence),
        }
        print(f"Demo SIP server for {server.domain} (log: {server.log_file})")
        print(f"  registrar {server.host}:{server.port} (UDP, TCP), TLS {server.tls_port}")
        print(f"  TLS CA file: {server.ca_file}")
        for user, password in server.accounts.items():
            status = " (presence published)" if user in server.presence else ""
            print(f"  {server.aor(user)}  password {password}{status}")
        sys.stdout.flush()
        if args.info:
            Path(args.info).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        while not stopping and server.running:
            time.sleep(0.2)
    finally:
        if state_dir is None:
            server.close()
        else:
            server.stop()
        if args.info:
            Path(args.info).unlink(missing_ok=True)
    return 0 if stopping else 1


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--demo`` runs the demo server until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m tests.harness.kamailio", description=__doc__)
    parser.add_argument("--demo", action="store_true", help="run the demo server")
    parser.add_argument("--port", type=int, default=5060, help="UDP/TCP port (free one if taken)")
    parser.add_argument("--tls-port", type=int, default=5061, help="TLS port (free one if taken)")
    parser.add_argument("--state-dir", help="keep config, log and database here")
    parser.add_argument("--info", help="write the ports and accounts as JSON here when ready")
    args = parser.parse_args(argv)
    if not args.demo:
        parser.print_help()
        return 2
    return _demo(args)


if __name__ == "__main__":
    sys.exit(main())
