"""The server side of one profile: every request it receives is answered here.

Each request gets its server transaction (RFC 3261 §17.2), so a retransmission is answered with
the same response and reaches nothing twice. Who decides the answer:

- NOTIFY: the subscription whose dialog it names (through ``notify``, the clients' entry); one
  that names none may be a ``message-summary`` sent to a registered contact without a SUBSCRIBE
  (RFC 3842 §3.2, the way Asterisk and many PBXs send message-waiting): taken (200) only from our
  registrar or outbound proxy, refused (403) from anywhere else, 481 for any other package;
- INVITE, ACK and CANCEL: the calls, watched and never answered (:mod:`.calls`);
- MESSAGE: ``text/plain`` to our user while registered is taken (:func:`.messaging.read_message`);
  another user gets 404, an unregistered profile 480;
- the rest: OPTIONS 200, BYE 481 (no dialog of ours), other methods 405 or 501.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .calls import CallEvent, IncomingCalls
from .grammar import param
from .headers import Via
from .message import Request, Response
from .messaging import MessageReceived, read_message
from .responses import build_response
from .target import Flow, Target
from .transaction import ServerTransaction, TimerSettings, TransactionTable
from .uri import SipUri

ALLOWED_METHODS = ("OPTIONS", "NOTIFY", "INVITE", "ACK", "CANCEL", "MESSAGE")
KNOWN_METHODS = frozenset(
    {
        "ACK", "BYE", "CANCEL", "INFO", "INVITE", "MESSAGE", "NOTIFY", "OPTIONS",
        "PRACK", "PUBLISH", "REFER", "REGISTER", "SUBSCRIBE", "UPDATE",
    }
)  # fmt: skip
ANSWERS = {"OPTIONS": 200, "BYE": 481}
"""The status for requests nobody takes (BYE: no dialog of ours matches)."""

UNSOLICITED_PACKAGE = "message-summary"
"""The one event package PBXs NOTIFY to a registered contact without a SUBSCRIBE."""


@dataclass(frozen=True, slots=True)
class UnsolicitedNotify:
    """A message-summary NOTIFY outside any subscription, from our registrar or proxy."""

    content_type: str | None
    body: bytes


InboundEvent = CallEvent | MessageReceived | UnsolicitedNotify


class Inbound:
    """The server side of one profile."""

    def __init__(
        self,
        user: str | None,
        timers: TimerSettings,
        new_token: Callable[[int], str],
        transactions: TransactionTable[Any],
        notify: Callable[[Request, float], int],
        *,
        show_calls: bool,
        user_agent: str,
    ) -> None:
        """Requests for ``user`` are ours; ``show_calls``: INVITEs ring (180) rather than 480.

        Server transactions are kept in ``transactions`` (the user agent runs their timers);
        ``notify(request, now)`` hands a NOTIFY to the subscriptions and returns its status.
        """
        self._user = user
        self._show_calls = show_calls
        self._timers = timers
        self._new_token = new_token
        self._transactions = transactions
        self._notify = notify
        self._user_agent = user_agent
        self.calls = IncomingCalls(timers, new_token)
        self._transmits: list[tuple[Target, bytes]] = []
        self._events: list[InboundEvent] = []

    def answer_copy(self, raw: bytes) -> bool:
        """Whether ``raw`` is a request answered before, octet for octet (a retransmission).

        If so its answer goes again, and nothing else happens: it need not even be parsed.
        """
        server = self._transactions.server_of_copy(raw)
        if server is None:
            return False
        self._answer_again(server)
        return True

    def on_request(
        self,
        request: Request,
        source: Target,
        now: float,
        flow: Flow,
        *,
        registered: bool,
        raw: bytes,
    ) -> bool:
        """Answer ``request`` from ``source``; False when it needed no new answer.

        ``flow`` is the profile's flow (our Contact, our servers' addresses); ``registered``
        whether the profile is; ``raw`` the request as it arrived. Raises RemoteProtocolError
        for fields that cannot be read.
        """
        method = request.method
        if method == "ACK":
            self.calls.on_ack(request, now)  # the INVITE transaction it belongs to absorbs it
            return False
        via = request.top_via
        reply_to = _response_target(via, source)
        if method == "INVITE":
            # INVITEs have server transactions of their own, in the calls.
            contact = None if flow.local is None else flow.contact(self._user)
            self.calls.on_invite(
                request,
                reply_to,
                now,
                for_us=self._for_us(request),
                show=self._show_calls and registered,
                contact=None if contact is None else str(contact),
            )
            return True
        key = (via.branch or "", f"{via.host}:{via.port}", method)
        existing = self._transactions.server.get(key)
        if existing is not None:
            self._answer_again(existing)
            return False
        server = ServerTransaction(reply_to, self._timers, raw)
        response = self._answer(request, source, now, flow, registered=registered)
        self._transmits.append((reply_to, server.respond(response, now)))
        self._transactions.add_server(key, server)
        return True

    def take_transmits(self) -> list[tuple[Target, bytes]]:
        """Answers to send, with where they go."""
        out = [*self._transmits, *self.calls.take_transmits()]
        self._transmits = []
        return out

    def take_events(self) -> list[InboundEvent]:
        """What arrived since the last call: calls first, then messages and summaries."""
        out: list[InboundEvent] = [*self.calls.take_events(), *self._events]
        self._events = []
        return out

    def _answer_again(self, server: ServerTransaction) -> None:
        """A request came again: repeat its transaction's last answer, if it has one."""
        if (repeated := server.on_retransmission()) is not None:
            self._transmits.append((server.source, repeated))

    def _answer(
        self, request: Request, source: Target, now: float, flow: Flow, *, registered: bool
    ) -> Response:
        method = request.method
        accept = None
        if method == "NOTIFY":
            status = self._notify(request, now)
            if status == 481:
                from_our_server = flow.includes_host(source.host)
                status = self._on_unsolicited_notify(request, from_our_server=from_our_server)
        elif method == "CANCEL":
            status = self.calls.on_cancel(request, now)
        elif method == "MESSAGE":
            status, accept = self._on_message(request, registered=registered)
        else:
            status = ANSWERS.get(method) or (405 if method in KNOWN_METHODS else 501)
        response = build_response(request, status, self._new_token(8))
        if response.status in (200, 405, 501):
            response.headers.add("Allow", ", ".join(ALLOWED_METHODS))
        if accept is not None:
            response.headers.add("Accept", accept)
        response.headers.add("User-Agent", self._user_agent)
        return response

    def _on_message(self, request: Request, *, registered: bool) -> tuple[int, str | None]:
        """A MESSAGE: the status to answer, and the ``Accept`` to add (for a 415)."""
        if not self._for_us(request):
            return 404, None
        if not registered:
            return 480, None
        status, received = read_message(request)
        if received is not None:
            self._events.append(received)
        return status, "text/plain" if status == 415 else None

    def _on_unsolicited_notify(self, request: Request, *, from_our_server: bool) -> int:
        """A NOTIFY that names no subscription of ours: the status to answer it with."""
        event = request.event
        if event is None or event.package.lower() != UNSOLICITED_PACKAGE:
            return 481
        if not from_our_server:
            return 403
        content_type = request.content_type
        self._events.append(
            UnsolicitedNotify(content_type.mime if content_type else None, request.body)
        )
        return 200

    def discard(self) -> None:
        """Forget every call without answering (the profile stops)."""
        self.calls.discard()
        self._transmits.clear()
        self._events.clear()

    def _for_us(self, request: Request) -> bool:
        """The Request-URI names our address of record or our Contact (its user is ours)."""
        uri = request.uri
        return isinstance(uri, SipUri) and uri.user == self._user


def _response_target(via: Via, source: Target) -> Target:
    """Where a response to a request that came from ``source`` goes (RFC 3261 §18.2.2, 3581)."""
    if source.transport.reliable or param(via.params, "rport") is not None:
        return source
    host = via.received or source.host
    return Target(source.transport, host, via.port or source.transport.default_port)


__all__ = [
    "ALLOWED_METHODS",
    "UNSOLICITED_PACKAGE",
    "Inbound",
    "InboundEvent",
    "UnsolicitedNotify",
]
