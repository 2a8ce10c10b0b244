"""The Kamailio harness behaves as documented, checked with a raw client written here.

The client below is deliberately independent of the product's SIP code: plain sockets, ssl
and an MD5 digest, so these tests check the server and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import hashlib
import json
import re
import secrets
import socket
import ssl
import time

import pytest

from tests.harness.develop import CONFIGURATION_YAML
from tests.harness.hass import ROOT, HassProcess, prepare_config
from tests.harness.kamailio import (
    KamailioServer,
    KamailioUnavailable,
    parse_bindings,
    pidf,
    process_group_alive,
)

# --------------------------------------------------------------------------- raw client


@dataclass
class Response:
    status: int
    headers: dict[str, list[str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


@dataclass
class Message:
    first_line: str
    headers: dict[str, list[str]]
    body: bytes
    raw: bytes


def parse_message(raw: bytes) -> Message:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return Message(lines[0], headers, body, raw)


@dataclass
class RawClient:
    server: KamailioServer
    user: str
    password: str
    transport: str = "udp"
    sock: socket.socket = field(init=False)
    buffer: bytes = b""
    cseq: int = 0
    call_id: str = field(default_factory=lambda: secrets.token_hex(8))
    notifies: list[Message] = field(default_factory=list)

    def __post_init__(self) -> None:
        address = self.server.address(self.transport)
        if self.transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
        else:
            self.sock = socket.create_connection(address, timeout=5)
            if self.transport == "tls":
                context = ssl.create_default_context(cafile=str(self.server.ca_file))
                self.sock = context.wrap_socket(self.sock, server_hostname="sip.test")
        self.local = self.sock.getsockname()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        if self.transport == "udp":
            self.sock.sendto(data, self.server.address("udp"))
        else:
            self.sock.sendall(data)

    def receive(self, timeout: float = 3.0) -> Message | None:
        deadline = time.monotonic() + timeout
        while True:
            if self.transport != "udp" and b"\r\n\r\n" in self.buffer:
                head = self.buffer.split(b"\r\n\r\n", 1)[0]
                length = int(re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)[1])
                total = len(head) + 4 + length
                if len(self.buffer) >= total:
                    raw, self.buffer = self.buffer[:total], self.buffer[total:]
                    return parse_message(raw)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                return None
            if self.transport == "udp":
                return parse_message(data)
            self.buffer += data

    def build(
        self, method: str, uri: str, headers: list[str], body: bytes = b""
    ) -> tuple[str, bytes]:
        self.cseq += 1
        branch = f"z9hG4bK{secrets.token_hex(8)}"
        host, port = self.local[:2]
        to_uri = f"sip:{self.user}@sip.test" if method == "REGISTER" else uri
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/{self.transport.upper()} {host}:{port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@sip.test>;tag={self.call_id[:8]}",
            f"To: <{to_uri}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} {method}",
            *headers,
            f"Content-Length: {len(body)}",
        ]
        return branch, "\r\n".join(lines).encode() + b"\r\n\r\n" + body

    def request(
        self, method: str, uri: str, headers: list[str], body: bytes = b"", timeout: float = 3.0
    ) -> Response | None:
        """Send once; return the final response to it, or None if none came in time."""
        branch, data = self.build(method, uri, headers, body)
        self.send(data)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is None:
                return None
            if message.first_line.startswith("SIP/2.0 ") and branch in message.raw.decode():
                status = int(message.first_line.split()[1])
                if status >= 200:
                    return Response(status, message.headers, message.body)
            elif not message.first_line.startswith("SIP/2.0"):
                self.answer(message)
        return None

    def answer(self, request: Message) -> None:
        """Answer an in-coming request (a NOTIFY) with 200 OK and keep it for inspection."""
        self.notifies.append(request)
        keep = ("via", "from", "to", "call-id", "cseq")
        lines = ["SIP/2.0 200 OK"]
        lines += [f"{name}: {value}" for name in keep for value in request.headers.get(name, [])]
        self.send("\r\n".join([*lines, "Content-Length: 0"]).encode() + b"\r\n\r\n")

    def authorization(self, challenge: str, method: str, uri: str, password: str) -> str:
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        ha1 = md5(f"{self.user}:{params['realm']}:{password}")
        ha2 = md5(f"{method}:{uri}")
        cnonce, nc = secrets.token_hex(4), "00000001"
        fields = (
            f'Digest username="{self.user}", realm="{params["realm"]}", '
            f'nonce="{params["nonce"]}", uri="{uri}", algorithm=MD5'
        )
        if "qop" in params:
            digest = md5(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}")
            return f'{fields}, qop=auth, nc={nc}, cnonce="{cnonce}", response="{digest}"'
        return f'{fields}, response="{md5(f"{ha1}:{params['nonce']}:{ha2}")}"'

    def authed(
        self,
        method: str,
        uri: str,
        headers: list[str],
        body: bytes = b"",
        password: str | None = None,
    ) -> Response:
        """Send, answer a 401/407 challenge once with the (given) password, return the final."""
        response = self.request(method, uri, headers, body)
        assert response is not None, f"no answer to {method}"
        if response.status not in {401, 407}:
            return response
        www = response.status == 401
        challenge = response.header("www-authenticate" if www else "proxy-authenticate")
        assert challenge is not None
        assert challenge.startswith("Digest ")
        credentials = self.authorization(challenge, method, uri, password or self.password)
        name = "Authorization" if www else "Proxy-Authorization"
        retry = self.request(method, uri, [*headers, f"{name}: {credentials}"], body)
        assert retry is not None, f"no answer to the authenticated {method}"
        return retry

    def register(
        self, expires: int = 300, contact: str | None = "", password: str | None = None
    ) -> Response:
        host, port = self.local[:2]
        headers = []
        if contact == "":
            contact = f"<sip:{self.user}@{host}:{port};transport={self.transport}>"
        if contact is not None:
            headers.append(f"Contact: {contact}")
        if expires >= 0:
            headers.append(f"Expires: {expires}")
        return self.authed("REGISTER", "sip:sip.test", headers, password=password)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@pytest.fixture
def clients(kamailio_clean: KamailioServer):
    made: list[RawClient] = []

    def make(user: str, transport: str = "udp", password: str | None = None) -> RawClient:
        client = RawClient(
            kamailio_clean, user, password or kamailio_clean.accounts[user], transport
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
    for user in {client.user for client in made}:
        kamailio_clean.remove_bindings(user)


# --------------------------------------------------------------------------- registrar


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_register_with_digest_creates_a_binding(clients, kamailio_clean, transport):
    alice = clients("alice", transport)
    instance = f"<urn:uuid:{secrets.token_hex(4)}-0000-4000-8000-{secrets.token_hex(6)}>"
    host, port = alice.local[:2]
    contact = f'<sip:alice@{host}:{port};transport={transport}>;+sip.instance="{instance}";q=0.7'

    response = alice.register(expires=300, contact=contact)

    assert response.status == 200
    [binding] = kamailio_clean.bindings("sip:alice@sip.test")
    assert binding.contact == f"sip:alice@{host}:{port};transport={transport}"
    assert 290 <= binding.expires <= 300
    assert binding.q == pytest.approx(0.7)
    assert binding.instance == instance


def test_tls_certificate_is_verified_against_the_harness_ca(kamailio_clean):
    with socket.create_connection(kamailio_clean.address("tls"), timeout=5) as raw:
        context = ssl.create_default_context()  # the system's CAs do not know the harness CA
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(raw, server_hostname="sip.test")
    for name in ("sip.test", "localhost", "127.0.0.1"):
        with socket.create_connection(kamailio_clean.address("tls"), timeout=5) as raw:
            context = ssl.create_default_context(cafile=str(kamailio_clean.ca_file))
            with context.wrap_socket(raw, server_hostname=name) as tls:
                assert tls.version() in {"TLSv1.2", "TLSv1.3"}


def test_wrong_password_gets_a_fresh_challenge(clients, kamailio_clean):
    alice = clients("alice")
    response = alice.register(password="not-the-password")
    assert response.status == 401
    assert response.header("www-authenticate").startswith("Digest ")
    assert 'realm="sip.test"' in response.header("www-authenticate")
    assert kamailio_clean.bindings("alice") == []


def test_unknown_user_and_foreign_credentials_are_refused(clients, kamailio_clean):
    nobody = RawClient(kamailio_clean, "nobody", "x")
    try:
        assert nobody.register().status == 404
    finally:
        nobody.close()
    # bob's valid credentials for alice's address of record
    bob = clients("bob")
    response = bob.request("REGISTER", "sip:sip.test", ["Contact: <sip:bob@127.0.0.1:9>"])
    assert response is not None
    challenge = response.header("www-authenticate")
    credentials = bob.authorization(challenge, "REGISTER", "sip:sip.test", bob.password)
    _, data = bob.build("REGISTER", "sip:sip.test", [f"Authorization: {credentials}"])
    bob.send(data.replace(b"To: <sip:bob@sip.test>", b"To: <sip:alice@sip.test>"))
    answer = bob.receive()
    assert answer is not None
    assert answer.first_line.startswith("SIP/2.0 403")


def test_expires_limits_and_binding_queries(clients, kamailio_clean):
    alice = clients("alice")
    too_brief = alice.register(expires=30)
    assert too_brief.status == 423
    assert too_brief.header("min-expires") == "60"

    granted = alice.register(expires=7200)
    assert granted.status == 200
    assert re.search(r";expires=3600\b", granted.header("contact"))

    query = alice.register(expires=-1, contact=None)
    assert query.status == 200
    assert f"{alice.local[1]}" in query.header("contact")

    removed = alice.authed("REGISTER", "sip:sip.test", ["Contact: *", "Expires: 0"])
    assert removed.status == 200
    assert kamailio_clean.bindings("alice") == []


def test_password_change_at_run_time(clients, kamailio_clean):
    kamailio_clean.set_password("erin", "first")
    assert clients("erin", password="first").register().status == 200
    kamailio_clean.set_password("erin", "second")
    assert clients("erin", password="first").register().status == 401
    assert clients("erin", password="second").register().status == 200


# --------------------------------------------------------------------------- faults


def test_register_503_with_retry_after(clients, kamailio_clean):
    kamailio_clean.set_register_503(42)
    response = clients("alice").register()
    assert response.status == 503
    assert response.header("retry-after") == "42"

    kamailio_clean.reset_faults()
    assert clients("alice").register().status == 200


def test_drop_every_second_request(clients, kamailio_clean):
    kamailio_clean.set_drop_every(2)
    alice = clients("alice")
    answered = []
    for _ in range(4):
        # one at a time: the server's workers may take requests sent together in any order
        alice.call_id = secrets.token_hex(8)
        branch, data = alice.build("OPTIONS", "sip:sip.test", [])
        alice.send(data)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if any(
                "dropping OPTIONS" in line and alice.call_id in line
                for line in kamailio_clean.log_tail(20).splitlines()
            ):
                answered.append(False)
                break
            message = alice.receive(0.05)
            if message is not None and branch in message.raw.decode():
                answered.append(message.first_line.startswith("SIP/2.0 200"))
                break
        else:
            pytest.fail("neither an answer nor a logged drop")
    assert answered == [True, False, True, False]
    assert alice.receive(0.3) is None  # the dropped ones stay unanswered

    kamailio_clean.set_drop_every(0)
    assert alice.request("OPTIONS", "sip:sip.test", []).status == 200


def test_auth_403_refuses_a_wrong_password_outright(clients, kamailio_clean):
    kamailio_clean.set_auth_403(True)
    alice = clients("alice")
    assert alice.register(password="wrong").status == 403
    assert alice.register().status == 200


def test_restart_forgets_bindings_and_keeps_ports(clients, kamailio_clean):
    assert clients("alice").register().status == 200
    assert len(kamailio_clean.bindings("alice")) == 1
    port, tls_port = kamailio_clean.port, kamailio_clean.tls_port

    kamailio_clean.restart()

    assert (kamailio_clean.port, kamailio_clean.tls_port) == (port, tls_port)
    assert kamailio_clean.bindings("alice") == []
    assert clients("alice").register().status == 200


# --------------------------------------------------------------------------- presence


def subscribe(client: RawClient, target: str, event: str = "presence") -> Response:
    host, port = client.local[:2]
    accept = {
        "presence": "application/pidf+xml",
        "dialog": "application/dialog-info+xml",
        "presence.winfo": "application/watcherinfo+xml",
    }[event]
    return client.authed(
        "SUBSCRIBE",
        target,
        [
            f"Contact: <sip:{client.user}@{host}:{port};transport={client.transport}>",
            f"Event: {event}",
            f"Accept: {accept}",
            "Expires: 120",
        ],
    )


def wait_for_notify(client: RawClient, predicate, timeout: float = 10.0) -> Message:
    deadline = time.monotonic() + timeout
    while not any(predicate(n) for n in client.notifies):
        left = deadline - time.monotonic()
        assert left > 0, f"no matching NOTIFY; got {[n.body for n in client.notifies]}"
        message = client.receive(left)
        if message is not None and not message.first_line.startswith("SIP/2.0"):
            client.answer(message)
    return next(n for n in client.notifies if predicate(n))


@pytest.mark.parametrize("transport", ["udp", "tls"])
def test_publish_reaches_a_subscriber(clients, transport):
    bob, alice = clients("bob", transport), clients("alice", transport)
    note = f"note-{secrets.token_hex(3)}"
    published = bob.authed(
        "PUBLISH",
        "sip:bob@sip.test",
        ["Event: presence", "Expires: 120", "Content-Type: application/pidf+xml"],
        pidf("sip:bob@sip.test", "open", note).encode(),
    )
    assert published.status == 200
    assert published.header("sip-etag")

    assert subscribe(alice, "sip:bob@sip.test").status in {200, 202}
    notify = wait_for_notify(alice, lambda n: note.encode() in n.body)
    assert notify.first_line.startswith("NOTIFY ")
    assert notify.headers["event"] == ["presence"]
    assert notify.headers["subscription-state"][0].startswith("active")


def test_dialog_and_winfo_events_are_offered(clients):
    alice = clients("alice")
    assert subscribe(alice, "sip:bob@sip.test", "dialog").status in {200, 202}
    assert subscribe(alice, "sip:alice@sip.test", "presence.winfo").status in {200, 202}
    unknown = alice.authed(
        "SUBSCRIBE", "sip:bob@sip.test", ["Contact: <sip:alice@127.0.0.1:9>", "Event: nonsense"]
    )
    assert unknown.status == 489


def test_seeded_presence_is_notified_and_stop_leaves_no_process(socket_enabled):
    try:
        server = KamailioServer(presence={"bob": pidf("sip:bob@sip.test", "open", "seeded")})
    except KamailioUnavailable as err:
        pytest.skip(f"real SIP server unavailable: {err}")
    with server:
        group = server.pid
        assert group is not None
        alice = RawClient(server, "alice", server.accounts["alice"])
        try:
            assert subscribe(alice, "sip:bob@sip.test").status in {200, 202}
            wait_for_notify(alice, lambda n: b"seeded" in n.body)
        finally:
            alice.close()
    assert not server.running
    assert not process_group_alive(group)
    assert not server.state_dir.exists()


@pytest.mark.parametrize("fix", [True, False])
def test_fix_nated_contact_decides_where_notify_goes(clients, kamailio_clean, fix):
    kamailio_clean.set_fix_nated_contact(fix)
    alice = clients("alice")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as elsewhere:
        elsewhere.bind(("127.0.0.1", 0))
        elsewhere.settimeout(5)
        contact = f"<sip:alice@127.0.0.1:{elsewhere.getsockname()[1]}>"
        response = alice.authed(
            "SUBSCRIBE",
            "sip:bob@sip.test",
            [f"Contact: {contact}", "Event: presence", "Expires: 120"],
        )
        assert response.status in {200, 202}
        if fix:
            notify = wait_for_notify(alice, lambda n: n.first_line.startswith("NOTIFY"))
            assert notify.headers["event"] == ["presence"]
        else:
            data = elsewhere.recv(65535)
            assert data.startswith(b"NOTIFY ")
            assert alice.receive(0.3) is None  # nothing came to the source socket


def test_proxy_auth_switch_challenges_subscribe_with_407(clients, kamailio_clean):
    kamailio_clean.set_proxy_auth(True)
    alice = clients("alice")
    challenged = alice.request(
        "SUBSCRIBE", "sip:bob@sip.test", ["Contact: <sip:alice@127.0.0.1:9>", "Event: presence"]
    )
    assert challenged is not None
    assert challenged.status == 407
    assert challenged.header("proxy-authenticate").startswith("Digest ")
    assert alice.register().status == 200  # REGISTER keeps 401
    assert subscribe(alice, "sip:bob@sip.test").status in {200, 202}


# --------------------------------------------------------------------------- parsing


def test_parse_bindings_reads_kamcmd_output():
    output = """{
	AoR: alice
	HashID: 123
	Contacts: {
		Contact: {
			Address: sip:alice@127.0.0.1:5070;transport=udp
			Expires: 297
			Q: -1
			Call-ID: abc
			CSeq: 2
			User-Agent: raw
			Received: [not set]
			Path: [not set]
			State: CS_NEW
			Flags: 0
			CFlags: 0
			Socket: udp:127.0.0.1:5060
			Methods: 4294967295
			Ruid: uloc-1
			Instance: <urn:uuid:1>
			Reg-Id: 0
		}
		Contact: {
			Address: sip:alice@127.0.0.1:5080
			Expires: 60
			Q: 0.5
		}
	}
}
"""
    first, second = parse_bindings(output)
    assert first.contact == "sip:alice@127.0.0.1:5070;transport=udp"
    assert (first.expires, first.q, first.instance, first.reg_id) == (
        297,
        None,
        "<urn:uuid:1>",
        None,
    )
    assert (first.received, first.user_agent, first.socket) == (None, "raw", "udp:127.0.0.1:5060")
    assert (second.contact, second.expires, second.q) == ("sip:alice@127.0.0.1:5080", 60, 0.5)


# --------------------------------------------------------------------------- development config


def test_develop_config_keeps_home_assistant_on_loopback(tmp_path):
    config = tmp_path / "config"
    assert prepare_config(config, 8124, CONFIGURATION_YAML) == 8124

    stored = json.loads((config / ".storage" / "http").read_text())
    assert stored["key"] == "http"
    assert stored["data"]["stable"]["server_host"] == ["127.0.0.1"]
    assert stored["data"]["stable"]["server_port"] == 8124
    assert stored["data"]["pending"] is None
    assert stored["data"]["yaml_migration_done"] is True
    onboarding = json.loads((config / ".storage" / "onboarding").read_text())
    assert "user" not in onboarding["data"]["done"]
    assert "core_config" in onboarding["data"]["done"]
    yaml_text = (config / "configuration.yaml").read_text()
    assert "custom_components.sip_profiles: debug" in yaml_text
    assert "\nhttp:" not in yaml_text
    link = config / "custom_components" / "sip_profiles"
    assert link.resolve() == (ROOT / "custom_components" / "sip_profiles").resolve()

    (config / "configuration.yaml").write_text("homeassistant:\n")
    # a second run keeps what is there, and says which port the stored settings use
    assert prepare_config(config, 9999, CONFIGURATION_YAML) == 8124
    assert (config / "configuration.yaml").read_text() == "homeassistant:\n"
    again = json.loads((config / ".storage" / "http").read_text())
    assert again["data"]["stable"]["server_port"] == 8124


def test_hass_log_lines_finds_errors_with_their_tracebacks(tmp_path):
    process = HassProcess(tmp_path, 8123)
    assert process.log_lines("ERROR") == []
    (tmp_path / "home-assistant.log").write_text(
        "2026-12-03 23:08:39.248+00:00 WARNING (MainThread) [homeassistant.bootstrap] Skipping\n"
        "2026-12-03 23:08:40.443+00:00 ERROR (MainThread) [haffmpeg.core] FFmpeg fails\n"
        "Traceback (most recent call last):\n"
        '  File "core.py", line 130, in open\n'
        "2026-12-03 23:08:41.000+00:00 INFO (MainThread) [x] not an ERROR (MainThread) line\n"
        "  nor its continuation\n"
        "2026-12-03 23:08:42.000+00:00 ERROR (SyncWorker_1) [custom_components.x] Failed\n"
    )

    errors = process.log_lines("ERROR")

    assert [line.splitlines()[0] for line in errors] == [
        "2026-12-03 23:08:40.443+00:00 ERROR (MainThread) [haffmpeg.core] FFmpeg fails",
        "2026-12-03 23:08:42.000+00:00 ERROR (SyncWorker_1) [custom_components.x] Failed",
    ]
    assert errors[0].splitlines()[1:] == [
        "Traceback (most recent call last):",
        '  File "core.py", line 130, in open',
    ]
    assert len(process.log_lines("WARNING")) == 1
