"""Message waiting (RFC 3842): the ``application/simple-message-summary`` document.

A few text lines: ``Messages-Waiting: yes|no`` (required), an optional ``Message-Account``, and
per message class a ``<class>-Message: new/old (new-urgent/old-urgent)`` line; what follows an
empty line (message headers) is not read. Voice messages are what a voicemail box counts.
"""

from __future__ import annotations

from dataclasses import dataclass
import re

from ._xml import DocumentError

MESSAGE_SUMMARY = "application/simple-message-summary"
MAX_SUMMARY_BYTES = 16384
_COUNTS_RE = re.compile(r"(\d{1,9})\s*/\s*(\d{1,9})(?:\s*\(\s*(\d{1,9})\s*/\s*(\d{1,9})\s*\))?")


@dataclass(frozen=True, slots=True)
class MessageCounts:
    """How many messages of one class there are."""

    new: int
    old: int
    new_urgent: int = 0
    old_urgent: int = 0


@dataclass(frozen=True, slots=True)
class MessageSummary:
    """What the voicemail server says is waiting."""

    waiting: bool
    account: str | None = None
    voice: MessageCounts | None = None
    """The voice-message counts; None when the server gives only yes or no."""

    @property
    def new_messages(self) -> int:
        """New voice messages; a bare ``yes`` counts as one."""
        if self.voice is not None:
            return self.voice.new
        return 1 if self.waiting else 0


def parse_message_summary(body: bytes) -> MessageSummary:
    """Read a message-summary body; raises DocumentError when it is not one."""
    if len(body) > MAX_SUMMARY_BYTES:
        raise DocumentError("message summary too large")
    waiting: bool | None = None
    account: str | None = None
    voice: MessageCounts | None = None
    for line in body.decode("utf-8", "replace").splitlines():
        if not line.strip():
            break
        name, colon, value = line.partition(":")
        if not colon:
            raise DocumentError(f"not a message-summary line: {line[:60]!r}")
        name, value = name.strip().lower(), value.strip()
        if name == "messages-waiting":
            if value.lower() not in ("yes", "no"):
                raise DocumentError(f"Messages-Waiting is {value[:20]!r}")
            waiting = value.lower() == "yes"
        elif name == "message-account":
            account = value or None
        elif name == "voice-message":
            match = _COUNTS_RE.fullmatch(value)
            if match is None:
                raise DocumentError(f"bad Voice-Message counts {value[:40]!r}")
            voice = MessageCounts(*(int(group or 0) for group in match.groups()))
    if waiting is None:
        raise DocumentError("no Messages-Waiting line")
    return MessageSummary(waiting, account, voice)


def build_message_summary(summary: MessageSummary) -> bytes:
    """Write a message-summary body (for tests and servers fed by us)."""
    lines = [f"Messages-Waiting: {'yes' if summary.waiting else 'no'}"]
    if summary.account:
        lines.append(f"Message-Account: {summary.account}")
    if (voice := summary.voice) is not None:
        lines.append(
            f"Voice-Message: {voice.new}/{voice.old} ({voice.new_urgent}/{voice.old_urgent})"
        )
    return ("\r\n".join(lines) + "\r\n").encode()


__all__ = [
    "MESSAGE_SUMMARY",
    "MessageCounts",
    "MessageSummary",
    "build_message_summary",
    "parse_message_summary",
]
