"""Profiles and buddies at scale in a real Home Assistant, with the recorder on.

Run with ``python -m benchmarks.ha_scale`` (200 profiles x 10 buddies over UDP; ``--profiles 20
--buddies 5`` for a quick check, ``--transport tcp`` or ``tls`` for every profile over a stream).
It starts the test Kamailio and a real ``hass`` process on loopback (the Home Assistant of
``--hass-python``; by default the newest release's virtualenv made by scripts/setup-hass),
measures a bare Home Assistant, creates every profile through the config flow and every buddy
through the buddy subentry flow, then prints:

- after a restart: the time until every profile is registered and every buddy subscribed, and
  the SUBSCRIBEs the server received per subscription meanwhile (Kamailio's own counter);
- idle, from 32 s after the restart calmed down (when its last transactions have ended): Home
  Assistant's CPU (beside the bare Home Assistant's, measured the same way before the profiles
  were made) and the state writes per minute; its resident memory per buddy over
  the bare Home Assistant (both with jemalloc preloaded, as Home Assistant's container and OS
  run it; ``--allocator glibc`` as a Core install in a virtualenv does);
- bursts (``--bursts``, 3 by default, one after another): a publisher process PUBLISHes a new
  presence for every buddy at once, so the server NOTIFYs every watcher (profiles x buddies
  NOTIFYs). Over all bursts: PUBLISH->state latency (the publisher's send time travels in the
  PIDF note, Home Assistant's ``last_updated`` ends it), state writes per change (and to
  entities other than the changed buddy), Home Assistant's CPU per change above idle, the event
  loop's round trip (websocket ``ping`` every 100 ms) and the NOTIFYs the server sent again
  because their answer was late (from Kamailio's sipdump; apart, those it sent again before it
  had read any answer, and the NOTIFYs no one answered: subscriptions an earlier stop left);
  with tcpdump run as root (scripts/bench installs it), when each answer was on the wire;
- the stop: seconds until the process exited and until the last SIP request reached the server,
  errors logged, bindings left at the registrar;
- the peer (over UDP only): Home Assistant stopped, the same accounts watch the same buddies
  through bare user agents (the SIP core and its asyncio runner) in this process, and the same
  bursts are measured again: what the server retransmits to them is what it retransmits however
  fast it is answered.

Each number is printed beside its target with "met" or "NOT met". Buddy j of profile i is
``b{(i + j) % profiles}``: each buddy is watched by ``buddies`` profiles. The run stops by itself
after ``--deadline`` seconds at the latest. All traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
import contextlib
import ctypes.util
from dataclasses import dataclass, field
import datetime
import functools
import json
import os
from pathlib import Path
import re
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks.presence_subscriptions import make_runner, password, published, wait_until
from custom_components.sip_profiles.sip.documents.pidf import MyPresence
from custom_components.sip_profiles.sip.subscription import NotifyReceived, SubscriptionState
from custom_components.sip_profiles.sip.uri import parse_sip_uri
from custom_components.sip_profiles.sip.useragent import UserAgentEvent
from tests.harness.hass import (
    BASE_INTEGRATIONS,
    HassClient,
    HassProcess,
    HassWebsocket,
    ProcessSample,
    configuration_yaml,
    prepare_config,
)
from tests.harness.kamailio import KamailioServer

ROOT = Path(__file__).resolve().parents[1]
SETTLE = 20.0
"""Seconds a bare Home Assistant is left alone after its start before it is measured."""
QUIET_CPU = 0.02
"""Home Assistant is quiet when it used less than 2 % of a core over QUIET_WINDOW seconds: the
idle measurement waits for that (a restart leaves a backlog of late NOTIFYs behind)."""
QUIET_WINDOW = 5.0
BURST_TAIL = 6.0
"""Seconds counted after the last buddy changed: one recorder commit (every 5 s) and stragglers."""
PING_EVERY = 0.1
TRANSACTIONS_END = 32.0
"""Seconds after the restart's last NOTIFY until its server transaction ends (Timer J over UDP)."""
BURSTS = ((MyPresence.BUSY, "busy"), (MyPresence.AVAILABLE, "online"))
"""What the bursts publish in turn, and the state every watcher's presence sensor then shows."""
CAPTURE_FLUSH = 2.0
"""Seconds libpcap may hold captured packets in the kernel's ring before tcpdump sees them."""
SERVER_T1 = 0.5
"""The server's first retransmission of an unanswered NOTIFY over UDP (T1, RFC 3261 17.1.2.2)."""
JEMALLOC_CONF = "background_thread:true,metadata_thp:auto,dirty_decay_ms:20000,muzzy_decay_ms:20000"
"""The MALLOC_CONF of Home Assistant's container image (and so of Home Assistant OS), which
preloads jemalloc; a Core install in a virtualenv runs on glibc's malloc."""


def profile_user(index: int) -> str:
    return f"p{index:03d}"


def buddy_user(index: int) -> str:
    return f"b{index:03d}"


def log(message: str) -> None:
    print(f"[ha_scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def is_presence(entity_id: str) -> bool:
    """Whether entity_id is a buddy's presence sensor."""
    return entity_id.startswith("sensor.") and entity_id.endswith("_presence")


def sent_at(note: object, default: float) -> float:
    """The publisher's send time from the PIDF note, default where the note does not carry it."""
    try:
        return float(str(note))
    except ValueError:
        return default


def timestamp(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso).timestamp()


# ------------------------------------------------------------------------------ publisher


async def publish(host: str, port: int, buddies: int) -> None:
    """The publisher process: a presence for every buddy at once, each time stdin names one."""
    runners = [make_runner(host, port, buddy_user(index)) for index in range(buddies)]
    changed = asyncio.Event()

    def on_event(_event: UserAgentEvent) -> None:
        changed.set()

    for runner in runners:
        runner.add_listener(on_event)
        await runner.start()

    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
        presence = MyPresence(line)
        for runner in runners:
            runner.publish(presence, f"{time.time():.6f}")
        await wait_until(changed, functools.partial(published, runners, presence))
        print("published", flush=True)
    for runner in runners:
        await runner.stop(unregister=False)


class Publisher:
    """The publisher process, driven line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, server: KamailioServer, buddies: int) -> Publisher:
        host, port = server.address("udp")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.ha_scale",
            "--publish",
            host,
            str(port),
            str(buddies),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        publisher = cls(process)
        await publisher._expect(b"ready")
        return publisher

    async def _expect(self, word: bytes) -> None:
        assert self.process.stdout is not None
        async with asyncio.timeout(300):
            line = await self.process.stdout.readline()
        if line.strip() != word:
            raise RuntimeError(f"publisher said {line!r}, not {word!r}")

    async def publish(self, presence: MyPresence) -> None:
        """Publish presence for every buddy; return once the server accepted each."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{presence.value}\n".encode())
        await self.process.stdin.drain()
        await self._expect(b"published")

    async def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                await self.process.wait()
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


# ------------------------------------------------------------------------------ server side


@dataclass
class SipDump:
    """Kamailio's sipdump files: every message it received or sent, with its time."""

    folder: Path

    def messages(
        self, since: float, until: float = float("inf")
    ) -> Iterator[tuple[str, float, str]]:
        """(rcv or snd, time, message text) of the messages between since and until."""
        for data in sorted(self.folder.glob("*.data")):
            text = data.read_text(encoding="utf-8", errors="replace")
            for record in text.split("====================\n"):
                head, _, message = record.partition("~~~~~~~~~~~~~~~~~~~~\n")
                tag = re.search(r"^tag: (\w+)$", head, re.MULTILINE)
                stamp = re.search(r"^time: ([\d.]+)$", head, re.MULTILINE)
                if tag is None or stamp is None:
                    continue
                when = float(stamp.group(1))
                if since <= when <= until:
                    yield tag.group(1), when, message

    def notifies(self, since: float, until: float) -> NotifyTraffic:
        """The NOTIFYs the server sent in the window, and when their answers reached it."""
        sends: Counter[tuple[str, str]] = Counter()
        first_sent: dict[tuple[str, str], float] = {}
        answered: dict[tuple[str, str], float] = {}
        first_answer_read = float("inf")
        for tag, when, message in self.messages(since, until):
            key = notify_key(message)
            if key is None:
                continue
            if tag == "snd" and message.startswith("NOTIFY "):
                sends[key] += 1
                first_sent.setdefault(key, when)
            elif tag == "rcv" and message.startswith("SIP/2.0 ") and key in first_sent:
                answered.setdefault(key, when)
                first_answer_read = min(first_answer_read, when)
        return NotifyTraffic(
            sent=sum(sends[key] for key in answered),
            again=sum(sends[key] - 1 for key in answered),
            unanswered=sum(sends[key] for key in sends if key not in answered),
            answer_delays=[answered[key] - first_sent[key] for key in answered],
            first_answer_read_after=first_answer_read - min(first_sent.values(), default=0.0),
            again_before_first_answer=sum(
                sends[key] - 1
                for key in answered
                if first_sent[key] + SERVER_T1 < first_answer_read
            ),
        )

    def last_request(self, since: float) -> float | None:
        """When the last request reached the server after since."""
        last = None
        for tag, when, message in self.messages(since):
            if tag == "rcv" and not message.startswith("SIP/2.0"):
                last = when
        return last


@dataclass(frozen=True)
class NotifyTraffic:
    """The NOTIFYs of a window: those that were answered (each Call-ID and CSeq as often as the
    server sent it, ``again`` the repeats), the seconds until each answer, and the NOTIFYs no one
    answered (to subscriptions a stopped process left at the server, the server gave up on them).
    """

    sent: int
    again: int
    unanswered: int
    answer_delays: list[float]
    first_answer_read_after: float
    """Seconds from the server's first NOTIFY until it read the first answer."""
    again_before_first_answer: int
    """Repeats of NOTIFYs sent over T1 before the server read any answer: its one UDP worker
    reads the burst's PUBLISHes first, and answers queue behind them however early they came."""

    @property
    def again_percent(self) -> float:
        return self.again * 100 / max(self.sent, 1)

    @property
    def again_before_first_answer_percent(self) -> float:
        return self.again_before_first_answer * 100 / max(self.sent, 1)


class WireCapture:
    """tcpdump on the loopback, of the server's UDP port: when each NOTIFY and its answer were
    on the wire, before either side's queues (Kamailio's sipdump tells when it handled them)."""

    def __init__(self, path: Path, process: asyncio.subprocess.Process) -> None:
        self.path = path
        self.process = process

    @classmethod
    async def start(cls, path: Path, port: int) -> WireCapture | None:
        """Capturing from now on, or None (with a note) where tcpdump cannot run here."""
        if shutil.which("tcpdump") is None or os.geteuid() != 0:
            log("no tcpdump run as root: the answers' times on the wire are not measured")
            return None
        process = await asyncio.create_subprocess_exec(
            "tcpdump", "-i", "lo", "-U", "-s", "0", "-w", str(path), f"udp port {port}",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        assert process.stderr is not None
        async with asyncio.timeout(10):
            while b"listening on" not in await process.stderr.readline():
                pass
        return cls(path, process)

    def end(self) -> None:
        """Stop capturing (again: a no-op)."""
        if self.process.returncode is None:
            self.process.terminate()

    async def stop(self) -> list[float]:
        """Stop; the seconds from each NOTIFY's first copy on the wire to its answer's."""
        await asyncio.sleep(CAPTURE_FLUSH)
        self.end()
        await self.process.wait()
        first_sent: dict[tuple[str, str], float] = {}
        delays: list[float] = []
        for when, payload in udp_payloads(self.path.read_bytes()):
            message = payload.decode("latin-1")
            key = notify_key(message)
            if key is None:
                continue
            if message.startswith("NOTIFY "):
                first_sent.setdefault(key, when)
            elif message.startswith("SIP/2.0 ") and key in first_sent:
                delays.append(when - first_sent.pop(key))
        return delays


SIP_CALL_ID = re.compile(r"^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)", re.MULTILINE | re.IGNORECASE)
SIP_NOTIFY_CSEQ = re.compile(r"^CSeq[ \t]*:[ \t]*(\d+)[ \t]+NOTIFY", re.MULTILINE | re.IGNORECASE)


def notify_key(message: str) -> tuple[str, str] | None:
    """(Call-ID, CSeq number) of a NOTIFY or of an answer to one; None for anything else."""
    call_id = SIP_CALL_ID.search(message)
    cseq = SIP_NOTIFY_CSEQ.search(message)
    if call_id is None or cseq is None:
        return None
    return call_id.group(1), cseq.group(1)


def udp_payloads(pcap: bytes) -> Iterator[tuple[float, bytes]]:
    """(time, payload) of each IPv4 UDP packet of a pcap file captured on Linux's loopback."""
    magic, link_type = struct.unpack_from("<I16xI", pcap)
    scale = {0xA1B2C3D4: 1e-6, 0xA1B23C4D: 1e-9}[magic]
    if link_type != 1:  # Ethernet framing, which tcpdump gives the loopback
        raise ValueError(f"unexpected link type {link_type}")
    offset = 24
    while offset + 16 <= len(pcap):
        seconds, fraction, length = struct.unpack_from("<III", pcap, offset)
        frame = pcap[offset + 16 : offset + 16 + length]
        offset += 16 + length
        if frame[12:14] != b"\x08\x00" or frame[23] != socket.IPPROTO_UDP:
            continue
        udp = 14 + (frame[14] & 0x0F) * 4
        yield seconds + fraction * scale, frame[udp + 8 :]


def subscribes_received(server: KamailioServer) -> int:
    output = server.kamcmd("stats.get_statistics", "rcv_requests_subscribe")
    return int(output.rsplit("=", 1)[1])


# ------------------------------------------------------------------------------ Home Assistant


@dataclass(frozen=True)
class StateWrite:
    """One state the recorder stored: a state write of Home Assistant."""

    entity_id: str
    state: str
    last_updated: float
    attributes: dict[str, Any]


class Recorder:
    """The recorder's database, read beside Home Assistant (which a websocket subscription to
    every state change would load, and which closes it when thousands of changes queue up)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def writes(self, since: float, until: float = float("inf")) -> list[StateWrite]:
        """The states written between since and until (wall-clock seconds)."""
        if not self.path.exists():
            return []
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db:
            rows = db.execute(
                "SELECT m.entity_id, s.state, s.last_updated_ts, a.shared_attrs"
                " FROM states s JOIN states_meta m ON s.metadata_id = m.metadata_id"
                " LEFT JOIN state_attributes a ON s.attributes_id = a.attributes_id"
                " WHERE s.last_updated_ts >= ? AND s.last_updated_ts <= ?",
                (since, min(until, 1e12)),
            ).fetchall()
        return [
            StateWrite(entity_id, state, updated, json.loads(attributes or "{}"))
            for entity_id, state, updated, attributes in rows
        ]


@dataclass(frozen=True)
class Census:
    """How many profiles are registered, subscriptions active and buddies in each state."""

    registered: int
    subscribed: int
    presence: Counter[str]

    def __str__(self) -> str:
        return f"{self.registered} registered, {self.subscribed} subscribed"


def census(states: list[dict[str, Any]]) -> Census:
    registered = subscribed = 0
    presence: Counter[str] = Counter()
    for state in states:
        entity_id = state["entity_id"]
        if not entity_id.startswith("sensor."):
            continue
        if entity_id.endswith("_registration"):
            registered += state["state"] == "registered"
        elif is_presence(entity_id):
            # available while its subscription is up (the subscription sensors are disabled)
            subscribed += state["state"] != "unavailable"
            presence[state["state"]] += 1
    return Census(registered, subscribed, presence)


class Hass:
    """One Home Assistant process with its REST client, its recorder and a websocket to ping."""

    def __init__(self, process: HassProcess) -> None:
        self.process = process
        self.client = HassClient(process.base)
        self.recorder = Recorder(process.config / "home-assistant_v2.db")
        self.websocket: HassWebsocket | None = None
        self.census = Census(0, 0, Counter())

    async def start(self) -> tuple[float, float]:
        """Start and log in; the launch's wall-clock time and the seconds until HTTP answered."""
        launched = time.time()
        self.process.start("--skip-pip")
        if not await asyncio.to_thread(self.process.wait_for_http, 600):
            raise RuntimeError(f"Home Assistant did not start; see {self.process.log_file}")
        answered = time.time() - launched
        await asyncio.to_thread(self.client.login)
        assert self.client.token is not None
        self.websocket = HassWebsocket(self.process.base, self.client.token)
        await self.websocket.connect()
        return launched, answered

    async def stop(self) -> float:
        if self.websocket is not None:
            await self.websocket.close()
            self.websocket = None
        return await asyncio.to_thread(self.process.stop, 300, log)

    def sample(self) -> ProcessSample:
        return self.process.sample()

    async def wait_for(self, done: Callable[[Census], bool], seconds: float, what: str) -> None:
        """Ask for every state once a second until done says so."""
        deadline = time.monotonic() + seconds
        while True:
            self.census = census(await asyncio.to_thread(self.client.states))
            if done(self.census):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not within {seconds:.0f} s ({self.census})")
            await asyncio.sleep(1)


def all_up(profiles: int, buddies: int) -> Callable[[Census], bool]:
    def done(found: Census) -> bool:
        return found.registered >= profiles and found.subscribed >= profiles * buddies

    return done


# ------------------------------------------------------------------------------ report


@dataclass
class Report:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(
        self,
        what: str,
        value: float,
        unit: str,
        target: float | None = None,
        *,
        most: bool = True,
        digits: int = 2,
    ) -> None:
        shown = f"{value:.{digits}f} {unit}".strip()
        if target is None:
            self.rows.append((what, shown, "", ""))
            return
        met = value <= target if most else value >= target
        sign = "<=" if most else ">="
        self.rows.append(
            (what, shown, f"{sign} {target:g} {unit}".strip(), "met" if met else "NOT met")
        )

    def print(self) -> None:
        width = max(len(row[0]) for row in self.rows)
        value_width = max(len(row[1]) for row in self.rows)
        print()
        for what, value, target, verdict in self.rows:
            line = f"{what:<{width}}  {value:>{value_width}}"
            if target:
                line += f"   target {target:<14} {verdict}"
            print(line.rstrip(), flush=True)


# ------------------------------------------------------------------------------ the run


def create_profiles(
    client: HassClient, server: KamailioServer, profiles: int, buddies: int, transport: str
) -> None:
    """Each profile through the config flow, then each buddy through the subentry flow."""
    host, port = server.address(transport)
    # the test server's certificate is self-signed
    advanced = {"registrar": f"{host}:{port}", "transport": transport, "verify_tls": False}

    def create_profile(index: int) -> str:
        user = profile_user(index)
        result = client.config_flow(
            "sip_profiles",
            "manual",
            {
                "aor": server.aor(user),
                "password": password(user),
                "advanced": advanced,
            },
        )
        if result.get("type") != "create_entry":
            raise RuntimeError(f"profile {user}: {result}")
        return str(result["result"]["entry_id"])

    def add_buddies(job: tuple[int, str]) -> None:
        index, entry_id = job
        for offset in range(buddies):
            buddy = buddy_user((index + offset) % profiles)
            result = client.subentry_flow(
                entry_id,
                "buddy",
                {
                    "uri": server.aor(buddy),
                    "name": f"{profile_user(index)} {buddy}",
                    "watch": "presence",
                },
            )
            if result.get("type") != "create_entry":
                raise RuntimeError(f"buddy {buddy} of {profile_user(index)}: {result}")

    with ThreadPoolExecutor(4) as pool:
        entry_ids = list(pool.map(create_profile, range(profiles)))
        log(f"{profiles} profiles created")
        list(pool.map(add_buddies, enumerate(entry_ids)))
    log(f"{profiles * buddies} buddies added")


async def run(args: argparse.Namespace) -> None:
    profiles, buddies = args.profiles, args.buddies
    subscriptions = profiles * buddies
    accounts = {u: password(u) for i in range(profiles) for u in (profile_user(i), buddy_user(i))}
    python = Path(args.hass_python)
    workdir = Path(tempfile.mkdtemp(prefix="ha-scale-"))
    report = Report()
    # Provisioned as a server for hundreds of phones is: the stop and the restart bring it
    # thousands of requests within a second (with the tests' 64 MB, sipdump's queue runs out of
    # shared memory and requests are answered 500; with the default buffer, they are dropped).
    server = KamailioServer(
        accounts=accounts,
        state_dir=workdir / "kamailio",
        shared_memory_mb=1024,
        receive_buffer=4 * 2**20,
    )
    hass: Hass | None = None
    publisher: Publisher | None = None
    wire: WireCapture | None = None
    try:
        server.start()
        dump = SipDump(server.state_dir / "sipdump")
        config = workdir / "config"
        port = prepare_config(
            config,
            free_port(),
            configuration_yaml(
                "sip_profiles scale benchmark",
                integrations=(*BASE_INTEGRATIONS, "recorder"),
                default_level="warning",
            ),
            python=python,
        )
        hass = Hass(HassProcess(config, port, python=python, env=allocator_env(args.allocator)))
        version = hass.process.version()
        log(f"Home Assistant {version} on {args.allocator}'s malloc in {workdir};"
            f" Kamailio on {server.address('udp')}")  # fmt: skip

        await hass.start()
        await asyncio.sleep(SETTLE)
        bare = hass.sample()
        log(f"bare Home Assistant: {bare.rss_bytes / 2**20:.0f} MiB; idle for {args.idle:g} s")
        await asyncio.sleep(args.idle)
        bare_idle_cpu = (hass.sample().cpu_seconds - bare.cpu_seconds) / args.idle
        report.add("idle: CPU of the bare Home Assistant", bare_idle_cpu * 100, "%")

        await asyncio.to_thread(
            create_profiles, hass.client, server, profiles, buddies, args.transport
        )
        await hass.wait_for(all_up(profiles, buddies), args.wait, "all up")
        log(f"all up: {hass.census}")
        await hass.stop()

        # -- restart
        before = subscribes_received(server)
        launched, answered = await hass.start()
        try:
            await hass.wait_for(all_up(profiles, buddies), args.wait, "restart")
        finally:
            log(f"after the restart: {hass.census}")
        up = time.time() - launched
        await asyncio.sleep(BURST_TAIL)  # retransmissions still under way count too
        restart_subscribes = subscribes_received(server) - before
        report.add("restart: Home Assistant answered HTTP after", answered, "s")
        report.add("restart: all registered and subscribed after", up, "s")
        report.add(
            "restart: SUBSCRIBEs per subscription", restart_subscribes / subscriptions, "", 2.05
        )

        # -- idle
        quiet = await wait_quiet(hass, args.wait)
        report.add("restart: Home Assistant quiet after", quiet - launched, "s")
        # The restart's last transactions end first: a NOTIFY's server transaction over UDP
        # keeps its answer for retransmissions 64 x T1 = 32 s (Timer J, RFC 3261 17.2.2).
        await asyncio.sleep(TRANSACTIONS_END)
        log(f"idle for {args.idle:g} s")
        idle_start, idle_sample = time.time(), hass.sample()
        await asyncio.sleep(args.idle)
        idle_end, idle_sample_end = time.time(), hass.sample()
        idle_seconds = idle_end - idle_start
        idle_cpu = (idle_sample_end.cpu_seconds - idle_sample.cpu_seconds) / idle_seconds
        await asyncio.sleep(BURST_TAIL)  # the recorder commits every 5 s
        idle_writes = len(hass.recorder.writes(idle_start, idle_end)) * 60 / idle_seconds
        report.add("idle: CPU", idle_cpu * 100, "%", 0.1)
        report.add("idle: CPU above the bare Home Assistant", (idle_cpu - bare_idle_cpu) * 100, "%")
        report.add("idle: state writes", idle_writes, "/min", 0, digits=1)
        rss_per_buddy = (idle_sample_end.rss_bytes - bare.rss_bytes) / subscriptions
        report.add(
            f"RSS per buddy over a bare Home Assistant ({args.allocator} malloc)",
            rss_per_buddy / 1000,
            "KB",
            60,
            digits=1,
        )

        # -- burst
        publisher = await Publisher.start(server, profiles)
        await publisher.publish(MyPresence.AVAILABLE)  # the nonces, and a known state
        await hass.wait_for(
            lambda found: found.presence["online"] >= subscriptions, args.wait, "warm-up"
        )
        await asyncio.sleep(BURST_TAIL)
        if args.transport == "udp":  # over a stream, a packet is no message
            wire = await WireCapture.start(workdir / "burst.pcap", server.port)
        notifies = await burst(
            hass, publisher, dump, report, subscriptions, args.wait, idle_cpu, args.bursts, wire
        )
        await publisher.close()
        publisher = None

        # -- stop
        stop_started = time.time()
        stop_seconds = await hass.stop()
        last_request = dump.last_request(stop_started)
        sip_work = 0.0 if last_request is None else last_request - stop_started
        errors = hass.process.log_lines("ERROR")
        stop_errors = [line for line in errors if timestamp(line[:29]) >= stop_started]
        left = sum(len(server.bindings(profile_user(i))) for i in range(profiles))
        report.add("stop: process exited after", stop_seconds, "s")
        report.add("stop: SIP work done after", sip_work, "s", 5)
        report.add("stop: errors logged", len(stop_errors), "", 0, digits=0)
        report.add("errors logged from the restart to the end", len(errors), "", 0, digits=0)
        report.add("stop: bindings left", left, "", 0, digits=0)
        if errors:
            log("first error: " + errors[0][:1000])

        # -- the same bursts to the bare user agents (over UDP, where the server retransmits)
        if args.transport == "udp":
            log("peer burst")
            peer = await peer_burst(
                server, report, profiles, buddies, args.wait, args.bursts, workdir / "peer.pcap"
            )
            if peer.again:
                report.add(
                    "burst: NOTIFYs retransmitted, Home Assistant / peer",
                    notifies.again_percent / peer.again_percent,
                    "",
                )
        print(
            f"\nHome Assistant {version}, {profiles} profiles x {buddies} buddies,"
            f" recorder on, {args.transport.upper()}, Kamailio on loopback"
        )
        report.print()
    finally:
        if wire is not None:
            wire.end()
        if publisher is not None:
            await publisher.close()
        if hass is not None:
            await hass.stop()
        server.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def wait_quiet(hass: Hass, seconds: float) -> float:
    """Wait until Home Assistant used less than QUIET_CPU over QUIET_WINDOW; return when."""
    deadline = time.monotonic() + seconds
    before = hass.sample().cpu_seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(QUIET_WINDOW)
        after = hass.sample().cpu_seconds
        if after - before < QUIET_CPU * QUIET_WINDOW:
            return time.time()
        before = after
    raise RuntimeError(f"Home Assistant was not quiet within {seconds:.0f} s")


async def burst(
    hass: Hass,
    publisher: Publisher,
    dump: SipDump,
    report: Report,
    subscriptions: int,
    wait: float,
    idle_cpu: float,
    count: int,
    wire: WireCapture | None,
) -> NotifyTraffic:
    """PUBLISH a new presence for every buddy at once, ``count`` times (busy, available, busy,
    ...); measure each until every watcher's state shows it."""
    assert hass.websocket is not None
    websocket = hass.websocket
    round_trips: list[float] = []
    pinging = True

    async def ping() -> None:
        while pinging:
            round_trips.append(await websocket.ping())
            await asyncio.sleep(PING_EVERY)

    def first_writes(writes: list[StateWrite], state: str) -> dict[str, StateWrite]:
        """The first write of ``state`` to each buddy's presence sensor."""
        first: dict[str, StateWrite] = {}
        for write in sorted(writes, key=lambda w: w.last_updated):
            if is_presence(write.entity_id) and write.state == state:
                first.setdefault(write.entity_id, write)
        return first

    latencies: list[float] = []
    changes = writes_count = other_count = 0
    cpu = measured = 0.0
    pinger = asyncio.create_task(ping())
    first_started = time.time()
    for index in range(count):
        presence, state = BURSTS[index % len(BURSTS)]
        started, cpu_before = time.time(), hass.sample().cpu_seconds
        await publisher.publish(presence)
        deadline = time.monotonic() + wait
        while (
            len(first_writes(await asyncio.to_thread(hass.recorder.writes, started), state))
            < subscriptions
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"burst {index + 1}: not every buddy {state} within {wait:.0f} s"
                )
            await asyncio.sleep(1)
        await asyncio.sleep(BURST_TAIL)
        ended, cpu_after = time.time(), hass.sample().cpu_seconds
        await asyncio.sleep(BURST_TAIL)  # the recorder commits every 5 s
        writes = await asyncio.to_thread(hass.recorder.writes, started, ended)
        changed = first_writes(writes, state)
        latencies += [
            write.last_updated - sent_at(write.attributes.get("note"), started)
            for write in changed.values()
        ]
        changes += len(changed)
        writes_count += len(writes)
        other_count += sum(not is_presence(w.entity_id) for w in writes)
        cpu += cpu_after - cpu_before
        measured += ended - started
        once = dump.notifies(started, ended)
        print(
            f"\nburst {index + 1} ({state}): {len(changed)} buddy changes, {len(writes)} state"
            f" writes, {once.sent} NOTIFYs answered ({once.again_percent:.1f} % retransmitted)"
            f" and {once.unanswered} not",
            flush=True,
        )
    pinging = False
    await pinger

    notifies = dump.notifies(first_started, time.time())
    await add_wire(report, "burst", wire)
    cpu_per_change = (cpu - idle_cpu * measured) / changes
    report.add("burst: PUBLISH->state latency p50", quantile(latencies, 0.5), "s")
    report.add("burst: PUBLISH->state latency p99", quantile(latencies, 0.99), "s", 1.5)
    report.add("burst: PUBLISH->state latency max", max(latencies), "s")
    report.add("burst: state writes per change", writes_count / changes, "", 1)
    report.add("burst: writes to other entities per change", other_count / changes, "", 0)
    report.add("burst: HA CPU per change (above idle)", cpu_per_change * 1000, "ms", 1.5)
    report.add("burst: event-loop round trip p99", quantile(round_trips, 0.99), "s", digits=3)
    report.add("burst: event-loop round trip max", max(round_trips), "s", 1, digits=3)
    report.add("burst: NOTIFYs retransmitted by the server", notifies.again_percent, "%", 1)
    add_answers(report, "burst", notifies)
    return notifies


async def add_wire(report: Report, phase: str, wire: WireCapture | None) -> None:
    """When the answers were on the wire: what the client alone decides."""
    if wire is None:
        return
    delays = await wire.stop()
    for q in (0.5, 0.99):
        report.add(f"{phase}: NOTIFY->answer on the wire p{q * 100:.0f}", quantile(delays, q), "s")
    report.add(f"{phase}: NOTIFY->answer on the wire max", max(delays, default=0.0), "s")
    late = sum(delay > SERVER_T1 for delay in delays) * 100 / max(len(delays), 1)
    report.add(f"{phase}: NOTIFYs answered on the wire after T1", late, "%")


def add_answers(report: Report, phase: str, notifies: NotifyTraffic) -> None:
    """Why NOTIFYs were sent again, when the server saw the answers, and those no one answered."""
    report.add(
        f"{phase}: of those, sent over T1 before the server read any answer",
        notifies.again_before_first_answer_percent,
        "%",
    )
    report.add(
        f"{phase}: the server read its first answer after", notifies.first_answer_read_after, "s"
    )
    for q in (0.5, 0.99):
        report.add(
            f"{phase}: NOTIFY->answer at the server p{q * 100:.0f}",
            quantile(notifies.answer_delays, q),
            "s",
        )
    report.add(
        f"{phase}: NOTIFYs to subscriptions an earlier stop left", notifies.unanswered, "", digits=0
    )


async def peer_burst(
    server: KamailioServer,
    report: Report,
    profiles: int,
    buddies: int,
    wait: float,
    count: int,
    capture: Path,
) -> NotifyTraffic:
    """The same bursts to bare user agents in this process: the core without Home Assistant.

    Each profile's account watches the same buddies as in Home Assistant, through a
    UserAgentRunner of its own, and answers every NOTIFY as soon as it is read. What the server
    retransmits to these is what it retransmits however fast its NOTIFYs are answered.
    """
    host, port = server.address("udp")
    dump = SipDump(server.state_dir / "sipdump")
    runners = [make_runner(host, port, profile_user(index)) for index in range(profiles)]
    changed = asyncio.Event()
    bodies: list[float] = []

    def on_event(event: UserAgentEvent) -> None:
        if isinstance(event, NotifyReceived) and event.body:
            bodies.append(time.time())
        changed.set()

    for index, runner in enumerate(runners):
        runner.add_listener(on_event)
        await runner.start()
        for offset in range(buddies):
            buddy = buddy_user((index + offset) % profiles)
            runner.subscribe(parse_sip_uri(server.aor(buddy)), "presence")
    subscriptions = profiles * buddies

    def all_active() -> bool:
        return all(
            status.state is SubscriptionState.ACTIVE
            for runner in runners
            for status in runner.user_agent.subscriptions.values()
        )

    async def notified(since: float) -> None:
        async with asyncio.timeout(wait):
            while sum(arrived >= since for arrived in bodies) < subscriptions:
                changed.clear()
                await changed.wait()

    publisher = await Publisher.start(server, profiles)
    wire: WireCapture | None = None
    try:
        async with asyncio.timeout(wait):
            while not all_active():
                changed.clear()
                await changed.wait()
        warm = time.time()
        await publisher.publish(MyPresence.AVAILABLE)
        await notified(warm)
        await asyncio.sleep(BURST_TAIL)
        wire = await WireCapture.start(capture, port)
        started = time.time()
        for index in range(count):
            since = time.time()
            await publisher.publish(BURSTS[index % len(BURSTS)][0])
            await notified(since)
            await asyncio.sleep(BURST_TAIL)
            once = dump.notifies(since, time.time())
            log(f"peer burst {index + 1}: {once.again_percent:.1f} % retransmitted")
        notifies = dump.notifies(started, time.time())
    finally:
        if wire is not None:
            wire.end()
        await publisher.close()
        for runner in runners:
            await runner.stop(unregister=False)
    report.add("peer burst: NOTIFYs retransmitted by the server", notifies.again_percent, "%")
    add_answers(report, "peer burst", notifies)
    await add_wire(report, "peer burst", wire)
    return notifies


def allocator_env(allocator: str) -> dict[str, str]:
    """The environment that makes Home Assistant allocate with ``allocator``."""
    if allocator == "glibc":
        return {}
    library = ctypes.util.find_library("jemalloc")
    if library is None:
        raise SystemExit("jemalloc not found: install libjemalloc2, or pass --allocator glibc")
    return {"LD_PRELOAD": library, "MALLOC_CONF": JEMALLOC_CONF}


def hass_python() -> str:
    """The newest release's interpreter (scripts/setup-hass makes its virtualenv if missing)."""
    if found := os.environ.get("SIP_PROFILES_HASS_PYTHON"):
        return found
    return subprocess.run(
        [str(ROOT / "scripts" / "setup-hass")], capture_output=True, text=True, check=True
    ).stdout.strip()


def main(argv: list[str]) -> None:
    if argv[:1] == ["--publish"]:
        host, port, buddies = argv[1:4]
        asyncio.run(publish(host, int(port), int(buddies)))
        return
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ha_scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--profiles", type=int, default=200)
    parser.add_argument("--buddies", type=int, default=10, help="per profile")
    parser.add_argument(
        "--transport", choices=("udp", "tcp", "tls"), default="udp", help="of every profile"
    )
    parser.add_argument("--idle", type=float, default=60, help="seconds of idle measured")
    parser.add_argument("--bursts", type=int, default=3, help="bursts measured, one after another")
    parser.add_argument("--wait", type=float, default=600, help="seconds any one step may take")
    parser.add_argument("--deadline", type=float, default=2400, help="seconds the run may take")
    parser.add_argument("--hass-python", help="the Home Assistant's interpreter")
    parser.add_argument("--keep", action="store_true", help="keep the config dir and logs")
    parser.add_argument(
        "--allocator",
        choices=("jemalloc", "glibc"),
        default="jemalloc",
        help="Home Assistant's malloc: jemalloc as its container and OS run it, or glibc's"
        " as a Core install in a virtualenv does",
    )
    args = parser.parse_args(argv)
    if args.buddies > args.profiles:
        parser.error("--buddies must not exceed --profiles (buddy j of profile i is b(i+j))")
    args.hass_python = args.hass_python or hass_python()

    async def bounded() -> None:
        async with asyncio.timeout(args.deadline):
            await run(args)

    asyncio.run(bounded())


if __name__ == "__main__":
    main(sys.argv[1:])
