"""Incoming calls, watched and never answered: the INVITE server side, as sans-I/O state machines.

A profile that shows incoming calls answers an INVITE ``180 Ringing`` and never 200, so the other
phones of the account ring as usual while the call is watched. The call ends when the caller or
the PBX CANCELs it (``Reason: SIP;cause=200`` means another phone took it, RFC 3326), when we
decline it (``603 Decline``, a global answer that stops every phone of the call, RFC 3261 §16.7),
or when it rang longer than the INVITE's ``Expires`` or :data:`RING_LIMIT` allows.

:class:`InviteServerTransaction` is RFC 3261 §17.2.1 (figure 7): the last response is repeated
for every retransmitted INVITE; a final response is retransmitted by Timer G until the ACK comes,
and given up after Timer H (64·T1); the ACK is absorbed and Timer I lets late copies of it die.

:class:`IncomingCalls` decides what each INVITE gets, in this order: a To tag (a re-INVITE; we
hold no dialog) 481; another address 404; a copy that reached us by a second path (merged, §8.2.2.2)
482; calls not shown (option off, or not registered) 480; too many ringing at once 486; otherwise
180 and an :class:`IncomingCall` event. Beyond :data:`MAX_TRANSACTIONS` transactions an INVITE
gets 486 and no transaction. Nothing of the session description is kept.
"""

from __future__ import annotations

from collections.abc import Callable
import contextlib
from dataclasses import dataclass, replace
from enum import StrEnum

from .errors import RemoteProtocolError
from .grammar import param, parse_params
from .headers import NameAddr, parse_name_addr
from .message import Request
from .responses import build_response
from .target import Target
from .transaction import TimerSettings, earliest
from .uri import SipUri

RING_LIMIT = 300.0
"""Seconds a call may ring without an ``Expires`` of its own: longer than a proxy's Timer C
(more than 3 minutes, RFC 3261 §16.6), so the PBX normally ends the call first."""
MAX_RINGING = 16
"""Calls ringing at once; more get 486 Busy Here."""
MAX_TRANSACTIONS = 64
"""INVITE transactions kept at once (ringing, or answered and waiting for their ACK); beyond
them an INVITE is answered 486 without a transaction, so a flood cannot grow memory."""


class CallOutcome(StrEnum):
    """How a watched call ended; the values are the event types the entities fire."""

    ANSWERED_ELSEWHERE = "answered_elsewhere"
    MISSED = "missed"
    DECLINED = "declined"


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A call started ringing."""

    call_id: str
    caller_number: str
    """The user part of the caller's SIP URI (or the whole URI of another scheme)."""
    caller_name: str | None
    called: str
    """The address the caller dialled (To)."""


@dataclass(frozen=True, slots=True)
class CallEnded:
    """A watched call stopped ringing."""

    call_id: str
    outcome: CallOutcome


CallEvent = IncomingCall | CallEnded


class InviteState(StrEnum):
    """States of an INVITE server transaction (RFC 3261 figure 7)."""

    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class InviteServerTransaction:
    """One incoming INVITE: its responses, their retransmissions and the ACK to a final one."""

    def __init__(self, source: Target, timers: TimerSettings) -> None:
        """Remember where responses go; ``respond`` sends the first one."""
        self.source = source
        self.state = InviteState.PROCEEDING
        self._timers = timers
        self._last_response = b""
        self._interval = timers.t1
        self._retransmit_at: float | None = None
        self._give_up_at: float | None = None
        self._terminate_at: float | None = None

    @property
    def deadline(self) -> float | None:
        """When ``on_timer`` has work to do."""
        return earliest(self._retransmit_at, self._give_up_at, self._terminate_at)

    def respond(self, data: bytes, status: int, now: float) -> bytes:
        """Record a response; a final one starts Timers G (unreliable flows only) and H."""
        self._last_response = data
        if status >= 200 and self.state is InviteState.PROCEEDING:
            self.state = InviteState.COMPLETED
            if not self.source.transport.reliable:
                self._retransmit_at = now + self._timers.t1
            self._give_up_at = now + 64 * self._timers.t1
        return data

    def on_retransmission(self) -> bytes | None:
        """The INVITE came again: repeat the last response (none once the ACK came)."""
        if self.state in (InviteState.PROCEEDING, InviteState.COMPLETED):
            return self._last_response
        return None

    def on_ack(self, now: float) -> None:
        """The ACK to our final response: stop retransmitting; Timer I absorbs its copies."""
        if self.state is not InviteState.COMPLETED:
            return
        self.state = InviteState.CONFIRMED
        self._retransmit_at = None
        self._give_up_at = None
        linger = 0.0 if self.source.transport.reliable else self._timers.t4
        self._terminate_at = now + linger

    def on_timer(self, now: float) -> bytes | None:
        """Run due timers; returns the final response when Timer G asks to send it again."""
        if self._terminate_at is not None and now >= self._terminate_at:
            self._end()
        elif self._give_up_at is not None and now >= self._give_up_at:
            self._end()  # Timer H: the ACK never came
        elif self._retransmit_at is not None and now >= self._retransmit_at:
            self._interval = min(self._interval * 2, self._timers.t2)
            self._retransmit_at = now + self._interval
            return self._last_response
        return None

    def _end(self) -> None:
        self.state = InviteState.TERMINATED
        self._retransmit_at = self._give_up_at = self._terminate_at = None


@dataclass(slots=True)
class _Call:
    """An INVITE and what became of it."""

    request: Request
    """The INVITE without its body: responses copy its fields, the SDP is not kept."""
    transaction: InviteServerTransaction
    to_tag: str
    ringing_until: float | None = None
    """Set while the call rings."""


_Key = tuple[str, str]
"""An INVITE transaction: its Via branch and sent-by (RFC 3261 §17.2.3)."""


class IncomingCalls:
    """Every INVITE a profile receives, the calls ringing and the answers on their way."""

    def __init__(self, timers: TimerSettings, new_token: Callable[[int], str]) -> None:
        """Start with no call; ``new_token(size)`` makes To tags."""
        self._timers = timers
        self._new_token = new_token
        self._calls: dict[_Key, _Call] = {}
        self._transmits: list[tuple[Target, bytes]] = []
        self._events: list[CallEvent] = []

    @property
    def ringing(self) -> tuple[str, ...]:
        """The Call-IDs of the calls ringing now, oldest first."""
        return tuple(c.request.call_id for c in self._calls.values() if c.ringing_until is not None)

    @property
    def deadline(self) -> float | None:
        """When ``on_timer`` has work to do."""
        return earliest(
            *(call.ringing_until for call in self._calls.values()),
            *(call.transaction.deadline for call in self._calls.values()),
        )

    def take_transmits(self) -> list[tuple[Target, bytes]]:
        """Responses to send, with where they go."""
        out, self._transmits = self._transmits, []
        return out

    def take_events(self) -> list[CallEvent]:
        """Calls that started or stopped ringing since the last call."""
        out, self._events = self._events, []
        return out

    # -- requests ------------------------------------------------------------------------------

    def on_invite(
        self,
        request: Request,
        reply_to: Target,
        now: float,
        *,
        for_us: bool,
        show: bool,
        contact: str | None,
    ) -> None:
        """Answer an INVITE (``for_us``: its Request-URI names us; ``show``: calls are shown).

        Raises RemoteProtocolError for an INVITE whose fields cannot be read.
        """
        key = _key(request)
        known = self._calls.get(key)
        if known is not None:
            again = known.transaction.on_retransmission()
            if again:
                self._transmits.append((known.transaction.source, again))
            return
        if len(self._calls) >= MAX_TRANSACTIONS:
            busy = build_response(request, 486, self._new_token(8)).to_bytes()
            self._transmits.append((reply_to, busy))
            return
        status = self._refusal(request, for_us=for_us, show=show)
        call = _Call(
            replace(request, body=b""),
            InviteServerTransaction(reply_to, self._timers),
            self._new_token(8),
        )
        self._calls[key] = call
        if status is not None:
            self._final(call, status, now)
            return
        ringing = build_response(call.request, 180, call.to_tag)
        for record_route in request.headers.get_all("Record-Route"):
            ringing.headers.add("Record-Route", record_route)
        if contact is not None:
            ringing.headers.add("Contact", f"<{contact}>")
        self._transmits.append((reply_to, call.transaction.respond(ringing.to_bytes(), 180, now)))
        expires = request.expires
        call.ringing_until = now + (RING_LIMIT if expires is None else expires)
        self._events.append(_incoming(request))

    def on_ack(self, request: Request, now: float) -> None:
        """An ACK: the one to our final answer ends its retransmissions; others are absorbed."""
        call = self._calls.get(_key(request))
        if call is not None:
            call.transaction.on_ack(now)

    def on_cancel(self, request: Request, now: float) -> int:
        """A CANCEL: the status to answer it with (200, or 481 when it matches no INVITE)."""
        call = self._calls.get(_key(request))
        if call is None:
            return 481
        if call.ringing_until is not None:
            outcome = (
                CallOutcome.ANSWERED_ELSEWHERE
                if _completed_elsewhere(request)
                else CallOutcome.MISSED
            )
            self._end(call, 487, outcome, now)
        return 200  # a CANCEL after our final answer changes nothing (RFC 3261 §9.2)

    def decline(self, call_id: str | None, now: float) -> bool:
        """Answer a ringing call (the newest one when ``call_id`` is None) 603 Decline.

        Returns False when no such call is ringing.
        """
        ringing = [
            call
            for call in self._calls.values()
            if call.ringing_until is not None
            and (call_id is None or call.request.call_id == call_id)
        ]
        if not ringing:
            return False
        self._end(ringing[-1], 603, CallOutcome.DECLINED, now)
        return True

    def on_timer(self, now: float) -> None:
        """Retransmit final answers, end calls that rang too long, forget finished ones."""
        for key, call in list(self._calls.items()):
            if call.ringing_until is not None and now >= call.ringing_until:
                # §13.3.1.1: an INVITE that expired is answered 487; without Expires, we stopped
                # ringing as a phone nobody answers does.
                status = 480 if call.request.expires is None else 487
                self._end(call, status, CallOutcome.MISSED, now)
            due = call.transaction.deadline
            if due is not None and now >= due:
                again = call.transaction.on_timer(now)
                if again is not None:
                    self._transmits.append((call.transaction.source, again))
            if call.transaction.state is InviteState.TERMINATED:
                del self._calls[key]

    def discard(self) -> None:
        """Forget every call without answering (the profile stops)."""
        self._calls.clear()

    # -- internals -----------------------------------------------------------------------------

    def _refusal(self, request: Request, *, for_us: bool, show: bool) -> int | None:
        if request.to.tag is not None:
            return 481
        if not for_us:
            return 404
        if self._merged(request):
            return 482
        if not show:
            return 480
        if len(self.ringing) >= MAX_RINGING:
            return 486
        return None

    def _merged(self, request: Request) -> bool:
        """The same INVITE (Call-ID, From tag, CSeq) already came by another branch."""
        sign = (request.call_id, request.from_.tag, request.cseq)
        return any(
            (call.request.call_id, call.request.from_.tag, call.request.cseq) == sign
            for call in self._calls.values()
        )

    def _end(self, call: _Call, status: int, outcome: CallOutcome, now: float) -> None:
        call.ringing_until = None
        self._final(call, status, now)
        self._events.append(CallEnded(call.request.call_id, outcome))

    def _final(self, call: _Call, status: int, now: float) -> None:
        data = build_response(call.request, status, call.to_tag).to_bytes()
        self._transmits.append(
            (call.transaction.source, call.transaction.respond(data, status, now))
        )


def _key(request: Request) -> _Key:
    via = request.top_via
    return (via.branch or "", via.host_port)


def _incoming(request: Request) -> IncomingCall:
    """Who calls: the identity the PBX asserts (RFC 3325), else From."""
    caller: NameAddr = request.from_
    asserted = request.headers.get_list("P-Asserted-Identity")
    if asserted:
        # An identity we cannot read is left out: From tells what the caller claims.
        with contextlib.suppress(RemoteProtocolError):
            caller = parse_name_addr(asserted[0])
    uri = caller.uri
    number = uri.user if isinstance(uri, SipUri) and uri.user else str(uri)
    if not isinstance(uri, SipUri) and uri.scheme.lower() == "tel":
        number = uri.rest.split(";", 1)[0]
    return IncomingCall(request.call_id, number, caller.display_name, str(request.to.uri))


def _completed_elsewhere(cancel: Request) -> bool:
    """``Reason: SIP;cause=200``: another phone answered (RFC 3326)."""
    for value in cancel.headers.get_list("Reason"):
        protocol, _, params = value.partition(";")
        if protocol.strip().upper() != "SIP":
            continue
        try:
            cause = param(parse_params(params), "cause")
        except RemoteProtocolError:
            continue
        if cause == "200":
            return True
    return False


__all__ = [
    "MAX_RINGING",
    "MAX_TRANSACTIONS",
    "RING_LIMIT",
    "CallEnded",
    "CallEvent",
    "CallOutcome",
    "IncomingCall",
    "IncomingCalls",
    "InviteServerTransaction",
    "InviteState",
]
