"""Instant messages (RFC 3428 MESSAGE): reading the ones we receive, sending ours.

Received: ``text/plain`` to a registered profile is taken (200) and reported as
:class:`MessageReceived`, its text cut at :data:`MAX_TEXT` octets; any other content type gets
415 with ``Accept: text/plain``. Sent: one :class:`OutgoingMessage` per message, a request of
its own outside any dialog and a :class:`~.client.Client` like the others (so a 401/407 is
answered from the profile's credentials); any final answer other than 2xx, a timeout or a broken
flow fails it, and it is not retried. It does not wait for a flow either: without one it fails
at once, because a message delivered after its sender was told it failed would surprise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from .auth import DigestClient
from .client import Client, ClientStatus, Failure, FailureReason, RequestIds
from .grammar import param
from .headers import NameAddr
from .message import Request, Response
from .uri import SipUri

TEXT_PLAIN = "text/plain"
MAX_TEXT = 4096
"""Octets of a received text kept; longer ones are cut (and say so)."""


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A text message arrived for the profile."""

    sender: str
    """The sender's URI (From)."""
    sender_name: str | None
    text: str
    truncated: bool
    """The text was longer than :data:`MAX_TEXT` octets and was cut."""


@dataclass(frozen=True, slots=True)
class MessageSent:
    """A message of ours was accepted by the next hop (2xx)."""

    message_id: str


@dataclass(frozen=True, slots=True)
class MessageFailed:
    """A message of ours was refused, or no answer came."""

    message_id: str
    status_code: int | None
    """The final status; None for a timeout or a broken flow."""
    reason: str
    """The reason phrase, or what went wrong on the way."""


MessageEvent = MessageReceived | MessageSent | MessageFailed


def read_message(request: Request) -> tuple[int, MessageReceived | None]:
    """The status to answer an incoming MESSAGE with, and the message when it is taken.

    Raises RemoteProtocolError when its fields cannot be read.
    """
    content_type = request.content_type
    if content_type is None or content_type.mime != TEXT_PLAIN:
        return 415, None
    try:
        text = request.body.decode(param(content_type.params, "charset") or "utf-8", "replace")
    except LookupError:
        text = request.body.decode("utf-8", "replace")  # a charset Python does not know
    encoded = text.encode()
    truncated = len(encoded) > MAX_TEXT
    if truncated:
        # Cut at a character boundary: a character split in two is dropped.
        text = encoded[:MAX_TEXT].decode("utf-8", "ignore")
    sender = request.from_
    return 200, MessageReceived(str(sender.uri), sender.display_name, text, truncated)


class Send(Enum):
    """The one operation of an outgoing message."""

    MESSAGE = "MESSAGE"


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageStatus(ClientStatus):
    """Where one message of ours stands: on its way, sent, or failed (``reason`` says why)."""

    sent: bool = False
    reason_phrase: str | None = None


class OutgoingMessage(Client[Send, MessageStatus, MessageEvent]):
    """One MESSAGE of ours, from its first sending to its final answer; never retried."""

    def __init__(
        self,
        message_id: str,
        aor: SipUri,
        to: SipUri,
        text: str,
        digest: DigestClient,
        *,
        new_token: Callable[[int], str],
        display_name: str | None = None,
    ) -> None:
        """Ready to send; ``send`` queues it, the user agent sends it once a flow exists."""
        super().__init__(digest, 0, MessageStatus(), self._outcome)
        self.message_id = message_id
        self._from = str(NameAddr(aor, display_name))
        self._to = to
        self._body = text.encode()
        self._ids = RequestIds(from_tag=new_token(8), call_id=new_token(16))

    @property
    def finished(self) -> bool:
        """Whether the final outcome is known (and reported)."""
        return self._status.sent or self._status.reason is not None

    def send(self) -> None:
        """Queue the MESSAGE, or fail it at once when no flow exists."""
        if self._flow_up:
            self._send(Send.MESSAGE)
        else:
            self._set_status(MessageStatus(reason=FailureReason.TRANSPORT_ERROR))

    def _outcome(self, status: MessageStatus) -> MessageEvent:
        if status.sent:
            return MessageSent(self.message_id)
        reason = status.reason_phrase or (status.reason.value if status.reason else "")
        return MessageFailed(self.message_id, status.status_code, reason)

    def _build(self, operation: Send) -> Request:
        fields = self._ids.fields(operation.value, self._from, str(NameAddr(self._to)))
        fields.append(("Content-Type", f"{TEXT_PLAIN};charset=UTF-8"))
        return self._request(operation.value, self._to, fields, self._body)

    def _succeeded(self, operation: Send, response: Response, now: float) -> None:  # noqa: ARG002
        self._set_status(MessageStatus(sent=True, status_code=response.status))

    def _failed(self, operation: Send, failure: Failure, now: float) -> None:  # noqa: ARG002
        self._set_status(
            MessageStatus(
                reason=failure.reason,
                status_code=failure.status_code,
                reason_phrase=failure.reason_phrase,
            )
        )


__all__ = [
    "MAX_TEXT",
    "MessageEvent",
    "MessageFailed",
    "MessageReceived",
    "MessageSent",
    "MessageStatus",
    "OutgoingMessage",
    "read_message",
]
