"""What reaches a profile outside its own dialogs: calls, messages and message-waiting.

The profile's own requests and the NOTIFYs of its subscriptions belong to its clients
(:mod:`.clients`); everything else a registered contact is sent ends here:

- INVITE, ACK and CANCEL: the calls watched and never answered (:mod:`.calls`);
- MESSAGE: ``text/plain`` to our user while registered is taken (:func:`.messaging.read_message`);
  another user gets 404, an unregistered profile 480;
- a ``message-summary`` NOTIFY that names no subscription of ours (RFC 3842 §3.2, the way
  Asterisk and many PBXs send message-waiting to a registered contact): taken (200) only from
  our registrar or outbound proxy, refused (403) from anywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .calls import CallEvent, IncomingCalls
from .message import Request
from .messaging import MessageReceived, read_message
from .target import Target
from .transaction import TimerSettings
from .uri import SipUri

UNSOLICITED_PACKAGE = "message-summary"
"""The one event package PBXs NOTIFY to a registered contact without a SUBSCRIBE."""


@dataclass(frozen=True, slots=True)
class UnsolicitedNotify:
    """A message-summary NOTIFY outside any subscription, from our registrar or proxy."""

    content_type: str | None
    body: bytes


InboundEvent = CallEvent | MessageReceived | UnsolicitedNotify


class Inbound:
    """The server side of one profile, for the requests no client of ours takes."""

    def __init__(
        self,
        user: str | None,
        timers: TimerSettings,
        new_token: Callable[[int], str],
        *,
        show_calls: bool,
    ) -> None:
        """Requests for ``user`` are ours; ``show_calls``: INVITEs ring (180) rather than 480."""
        self._user = user
        self._show_calls = show_calls
        self.calls = IncomingCalls(timers, new_token)
        self._events: list[InboundEvent] = []

    @property
    def deadline(self) -> float | None:
        """When ``on_timer`` has work to do."""
        return self.calls.deadline

    def on_timer(self, now: float) -> None:
        """Retransmit answers to calls and end calls that rang too long."""
        self.calls.on_timer(now)

    def take_transmits(self) -> list[tuple[Target, bytes]]:
        """Answers to send, with where they go."""
        return self.calls.take_transmits()

    def take_events(self) -> list[InboundEvent]:
        """What arrived since the last call: calls first, then messages and summaries."""
        out: list[InboundEvent] = [*self.calls.take_events(), *self._events]
        self._events = []
        return out

    def on_invite(
        self,
        request: Request,
        reply_to: Target,
        now: float,
        *,
        registered: bool,
        contact: SipUri | None,
    ) -> None:
        """An INVITE (or a copy of one): it rings while registered and shown, else 480."""
        self.calls.on_invite(
            request,
            reply_to,
            now,
            for_us=self._for_us(request),
            show=self._show_calls and registered,
            contact=None if contact is None else str(contact),
        )

    def on_ack(self, request: Request, now: float) -> None:
        """An ACK: absorbed by the INVITE transaction it belongs to."""
        self.calls.on_ack(request, now)

    def on_cancel(self, request: Request, now: float) -> int:
        """A CANCEL: the status to answer it with."""
        return self.calls.on_cancel(request, now)

    def on_message(self, request: Request, *, registered: bool) -> tuple[int, str | None]:
        """A MESSAGE: the status to answer, and the ``Accept`` to add (for a 415)."""
        if not self._for_us(request):
            return 404, None
        if not registered:
            return 480, None
        status, received = read_message(request)
        if received is not None:
            self._events.append(received)
        return status, "text/plain" if status == 415 else None

    def on_unsolicited_notify(self, request: Request, *, from_our_server: bool) -> int:
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
        self._events.clear()

    def _for_us(self, request: Request) -> bool:
        """The Request-URI names our address of record or our Contact (its user is ours)."""
        uri = request.uri
        return isinstance(uri, SipUri) and uri.user == self._user


__all__ = ["UNSOLICITED_PACKAGE", "Inbound", "InboundEvent", "UnsolicitedNotify"]
