"""Non-INVITE transactions (RFC 3261 §17.1.2 and §17.2.2) with timers as deadlines.

A transaction never reads a clock: every method takes ``now`` and the owner asks for
``deadline`` to know when to call ``on_timer`` next.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .message import Request, Response
from .outbox import earliest
from .target import Target


@dataclass(frozen=True, slots=True)
class TimerSettings:
    """RFC 3261's T1, T2 and T4 in seconds (§17.1.1.1)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


class TransactionState(StrEnum):
    """States of a non-INVITE transaction (RFC 3261 figures 6 and 8)."""

    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    TERMINATED = "terminated"


class ClientTransactionFailure(StrEnum):
    """Why a client transaction ended without a final response."""

    TIMEOUT = "timeout"
    TRANSPORT_ERROR = "transport_error"


@dataclass(frozen=True, slots=True)
class Retransmit:
    """Send these bytes again."""

    data: bytes


class ClientTransaction:
    """One non-INVITE request and its responses, identified by Via branch and method."""

    def __init__(self, request: Request, target: Target, now: float, timers: TimerSettings) -> None:
        """Prepare the transaction; the caller sends ``data`` right after creating it."""
        self.request = request
        self.target = target
        self.branch = request.top_via.branch or ""
        self.method = request.method
        self.data = request.to_bytes()
        self.state = TransactionState.TRYING
        self._timers = timers
        self._reliable = target.transport.reliable
        self._interval = timers.t1
        self._retransmit_at: float | None = None if self._reliable else now + timers.t1
        self._timeout_at: float | None = now + 64 * timers.t1
        self._linger_until: float | None = None

    @property
    def deadline(self) -> float | None:
        """The earliest time ``on_timer`` has something to do, or None."""
        return earliest(self._retransmit_at, self._timeout_at, self._linger_until)

    def on_response(self, response: Response, now: float) -> Response | None:
        """Feed a response matched to this transaction; returns it when the owner must see it.

        Retransmitted final responses and anything after the first final response are absorbed.
        """
        if self.state in (TransactionState.COMPLETED, TransactionState.TERMINATED):
            return None
        if response.status < 200:
            if self.state is TransactionState.TRYING:
                self.state = TransactionState.PROCEEDING
            return response
        self.state = TransactionState.COMPLETED
        self._retransmit_at = None
        self._timeout_at = None
        # Timer K keeps the transaction around to absorb retransmitted responses (unreliable only).
        self._linger_until = now + (0.0 if self._reliable else self._timers.t4)
        return response

    def on_timer(self, now: float) -> Retransmit | ClientTransactionFailure | None:
        """Run the timers that are due at ``now``."""
        if self._linger_until is not None and now >= self._linger_until:
            self._linger_until = None
            self.state = TransactionState.TERMINATED
            return None
        if self._timeout_at is not None and now >= self._timeout_at:
            self._terminate()
            return ClientTransactionFailure.TIMEOUT
        if self._retransmit_at is not None and now >= self._retransmit_at:
            # Timer E doubles up to T2 while trying; once proceeding it stays at T2.
            if self.state is TransactionState.PROCEEDING:
                self._interval = self._timers.t2
            else:
                self._interval = min(self._interval * 2, self._timers.t2)
            self._retransmit_at = now + self._interval
            return Retransmit(self.data)
        return None

    def on_transport_error(self) -> ClientTransactionFailure | None:
        """The flow carrying the request failed; a pending transaction ends with an error."""
        if self.state in (TransactionState.COMPLETED, TransactionState.TERMINATED):
            return None
        self._terminate()
        return ClientTransactionFailure.TRANSPORT_ERROR

    def _terminate(self) -> None:
        self.state = TransactionState.TERMINATED
        self._retransmit_at = None
        self._timeout_at = None
        self._linger_until = None


class ServerTransaction:
    """An incoming non-INVITE request: answer once, absorb retransmissions (RFC 3261 §17.2.2)."""

    def __init__(self, request: Request, source: Target, timers: TimerSettings) -> None:
        """Remember the request and where its responses go."""
        self.request = request
        self.source = source
        self.state = TransactionState.TRYING
        self._timers = timers
        self._last_response: bytes | None = None
        self._terminate_at: float | None = None

    @property
    def deadline(self) -> float | None:
        """When Timer J ends the transaction."""
        return self._terminate_at

    def respond(self, response: Response, now: float) -> bytes:
        """Record the response to send; a final response completes the transaction."""
        data = response.to_bytes()
        self._last_response = data
        if response.status >= 200:
            self.state = TransactionState.COMPLETED
            linger = 0.0 if self.source.transport.reliable else 64 * self._timers.t1
            self._terminate_at = now + linger
        else:
            self.state = TransactionState.PROCEEDING
        return data

    def on_retransmission(self) -> bytes | None:
        """A copy of the request arrived again: repeat the last response, if any."""
        return self._last_response

    def on_timer(self, now: float) -> None:
        """Timer J: forget the transaction."""
        if self._terminate_at is not None and now >= self._terminate_at:
            self._terminate_at = None
            self.state = TransactionState.TERMINATED
