"""A user agent under test with canned server answers and a driven clock."""

from __future__ import annotations

from dataclasses import dataclass, field
import random

from custom_components.sip_profiles.sip.auth import Credentials
from custom_components.sip_profiles.sip.message import Request, parse_message
from custom_components.sip_profiles.sip.registration import RegistrationChanged, RegistrationStatus
from custom_components.sip_profiles.sip.target import Target, Transport
from custom_components.sip_profiles.sip.uri import parse_sip_uri
from custom_components.sip_profiles.sip.useragent import (
    Transmit,
    UserAgent,
    UserAgentEvent,
    UserAgentSettings,
)

SERVER = Target(Transport.UDP, "127.0.0.1", 5060)
LOCAL = ("127.0.0.1", 5070)
CHALLENGE = 'Digest realm="sip.test", nonce="n1", qop="auth", algorithm=MD5'


def settings(**overrides: object) -> UserAgentSettings:
    values: dict[str, object] = {
        "aor": parse_sip_uri("sip:alice@sip.test"),
        "credentials": (Credentials("alice", "secret-pw"),),
    }
    values.update(overrides)
    return UserAgentSettings(**values)  # type: ignore[arg-type]


def reply(request: Request, status: int, reason: str, *headers: str) -> bytes:
    """A response to ``request`` as a registrar would write it."""
    lines = [f"SIP/2.0 {status} {reason}"]
    lines += [f"Via: {via}" for via in request.headers.get_all("Via")]
    lines += [
        f"From: {request.headers.get('From')}",
        f"To: {request.headers.get('To')};tag=srv",
        f"Call-ID: {request.call_id}",
        f"CSeq: {request.cseq.number} {request.cseq.method}",
        *headers,
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def ok_for(request: Request, expires: int = 3600, *others: str) -> bytes:
    """A 200 that lists the request's Contact with ``expires`` (and other bindings)."""
    contact = request.headers.get("Contact")
    listed = [f"Contact: {c}" for c in others]
    if contact and contact != "*":
        uri = contact.split(">")[0].lstrip("<")
        listed.insert(0, f"Contact: <{uri}>;expires={expires}")
    return reply(request, 200, "OK", *listed)


@dataclass
class Harness:
    """Owns the user agent, the clock and everything it sent and reported."""

    user_agent: UserAgent
    now: float = 1000.0
    sent: list[Transmit] = field(default_factory=list)
    events: list[UserAgentEvent] = field(default_factory=list)

    @classmethod
    def create(
        cls, targets: list[Target] | None = None, *, connected: bool = True, **overrides: object
    ) -> Harness:
        """A user agent whose flow is up, unless ``connected`` is False."""
        user_agent = UserAgent(settings(**overrides), targets or [SERVER], rng=random.Random(7))
        harness = cls(user_agent)
        if connected:
            user_agent.connection_up(LOCAL, harness.now)
        harness.drain()
        return harness

    def drain(self) -> None:
        self.sent += self.user_agent.take_transmits()
        self.events += self.user_agent.take_events()

    def requests(self) -> list[Request]:
        """Every request sent so far (retransmissions included)."""
        out: list[Request] = []
        for transmit in self.sent:
            if transmit.data.strip():
                message = parse_message(transmit.data)
                if isinstance(message, Request):
                    out.append(message)
        return out

    def last_request(self) -> Request:
        return self.requests()[-1]

    def answer(self, data: bytes, source: Target = SERVER) -> None:
        self.user_agent.receive(data, source, self.now)
        self.drain()

    def advance(self, seconds: float) -> None:
        """Move the clock forward, firing every deadline on the way in order."""
        end = self.now + seconds
        while (deadline := self.user_agent.next_deadline()) is not None and deadline <= end:
            self.now = max(self.now, deadline)
            self.user_agent.handle_timers(self.now)
            self.drain()
        self.now = end

    def statuses(self) -> list[RegistrationStatus]:
        return [e.status for e in self.events if isinstance(e, RegistrationChanged)]

    @property
    def status(self) -> RegistrationStatus:
        return self.user_agent.registration.status

    def register_through_challenge(self, expires: int = 3600) -> None:
        """REGISTER -> 401 -> REGISTER with credentials -> 200."""
        self.user_agent.register(self.now)
        self.drain()
        self.answer(
            reply(self.last_request(), 401, "Unauthorized", f"WWW-Authenticate: {CHALLENGE}")
        )
        self.answer(ok_for(self.last_request(), expires))
