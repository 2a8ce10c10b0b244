"""What each client state machine hands to the user agent: requests to send and events."""

from __future__ import annotations

from .message import Request


class Outbox[E]:
    """Requests a state machine wants sent and events it reports, until the user agent takes them.

    Registration, subscription and publication inherit it; they append to ``_outbox`` and
    ``_events``, the user agent drains both after every input.
    """

    def __init__(self) -> None:
        """Start empty."""
        self._outbox: list[Request] = []
        self._events: list[E] = []

    def take_requests(self) -> list[Request]:
        """Requests to send now (the user agent adds Via and routing)."""
        out, self._outbox = self._outbox, []
        return out

    def take_events(self) -> list[E]:
        """Events since the last call."""
        out, self._events = self._events, []
        return out


def earliest(*times: float | None) -> float | None:
    """The earliest of the times that are set, or None when none is."""
    # A plain loop: for the few times of a timer check it costs half of min() over a generator.
    found = None
    for time in times:
        if time is not None and (found is None or time < found):
            found = time
    return found
