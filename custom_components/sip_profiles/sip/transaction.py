"""Non-INVITE transactions (RFC 3261 §17.1.2 and §17.2.2) with timers as deadlines.

:class:`TransactionTable` keeps a user agent's transactions and whose request each one carries.

A transaction never reads a clock: every method takes ``now`` and the owner asks for
``deadline`` to know when to call ``on_timer`` next.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
import heapq

from .message import Request, Response
from .target import Target


def earliest(*times: float | None) -> float | None:
    """The earliest of the times that are set, or None when none is."""
    # A plain loop: for the few times of a timer check it costs half of min() over a generator.
    found = None
    for time in times:
        if time is not None and (found is None or time < found):
            found = time
    return found


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

    def __init__(self, source: Target, timers: TimerSettings, raw: bytes = b"") -> None:
        """Remember where responses go; ``raw`` is the request as it arrived."""
        self.raw = raw
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


type ClientKey = tuple[str, str]
"""A client transaction's Via branch and method."""
type ServerKey = tuple[str, str, str]
"""A server transaction's Via branch, Via sent-by and method."""


type Failed[O] = tuple[ClientKey, ClientTransaction, O, ClientTransactionFailure]
"""A client transaction that ended without a final response, its owner and why."""


class TransactionTable[O]:
    """A user agent's live transactions, their timers, and the owner ``O`` of each request."""

    def __init__(self) -> None:
        """Start empty."""
        self.client: dict[ClientKey, ClientTransaction] = {}
        self.server: dict[ServerKey, ServerTransaction] = {}
        # The same by the octets of their request: a retransmission over UDP is the same
        # datagram again, and is answered from here without being parsed.
        self._server_by_raw: dict[bytes, ServerTransaction] = {}
        self._owners: dict[ClientKey, O] = {}
        # (deadline, key) of the transactions above, earliest first. An entry whose transaction
        # has ended or moved its deadline since is dropped when it comes up, so timers and the
        # next deadline cost no scan of the transactions lingering for Timer K or J.
        self._client_timers: list[tuple[float, ClientKey]] = []
        self._server_timers: list[tuple[float, ServerKey]] = []

    def add_client(self, transaction: ClientTransaction, owner: O) -> ClientKey:
        """Keep ``transaction``, whose request ``owner`` sent."""
        key = (transaction.branch, transaction.method)
        self.client[key] = transaction
        self._owners[key] = owner
        _schedule(self._client_timers, key, transaction)
        return key

    def add_server(self, key: ServerKey, transaction: ServerTransaction) -> None:
        """Keep an answered incoming request's transaction until Timer J."""
        self.server[key] = transaction
        if transaction.raw:
            self._server_by_raw[transaction.raw] = transaction
        _schedule(self._server_timers, key, transaction)

    def server_of_copy(self, raw: bytes) -> ServerTransaction | None:
        """The live server transaction whose request arrived as exactly ``raw`` before."""
        return self._server_by_raw.get(raw)

    def on_response(
        self, key: ClientKey, response: Response, now: float
    ) -> tuple[O, Response] | None:
        """Feed ``response`` to transaction ``key``: the owner and the final response it must see.

        None for a stray, a provisional or a retransmitted response.
        """
        transaction = self.client.get(key)
        if transaction is None:
            return None
        delivered = transaction.on_response(response, now)
        if delivered is None or delivered.status < 200:
            return None
        if transaction.deadline is None:
            del self.client[key]
        else:
            _schedule(self._client_timers, key, transaction)
        owner = self._owners.pop(key, None)
        return None if owner is None else (owner, delivered)

    def fail_pending(self) -> list[Failed[O]]:
        """The flow broke: every transaction still waiting fails with a transport error."""
        failed: list[Failed[O]] = []
        for key, transaction in list(self.client.items()):
            if (failure := transaction.on_transport_error()) is not None:
                del self.client[key]
                if (owner := self._owners.pop(key, None)) is not None:
                    failed.append((key, transaction, owner, failure))
        return failed

    def run_timers(self, now: float) -> tuple[list[ClientTransaction], list[Failed[O]]]:
        """Run the timers due at ``now``: the transactions to retransmit, and those that failed."""
        retransmit: list[ClientTransaction] = []
        failed: list[Failed[O]] = []
        for key, transaction in _due(self._client_timers, self.client, now):
            result = transaction.on_timer(now)
            if isinstance(result, Retransmit):
                retransmit.append(transaction)
                _schedule(self._client_timers, key, transaction)
            elif result is not None or transaction.state is TransactionState.TERMINATED:
                del self.client[key]
                owner = self._owners.pop(key, None)
                if result is not None and owner is not None:
                    failed.append((key, transaction, owner, result))
            else:
                _schedule(self._client_timers, key, transaction)
        for server_key, server in _due(self._server_timers, self.server, now):
            server.on_timer(now)
            if server.state is TransactionState.TERMINATED:
                del self.server[server_key]
                self._server_by_raw.pop(server.raw, None)
            else:
                _schedule(self._server_timers, server_key, server)
        return retransmit, failed

    def next_deadline(self) -> float | None:
        """The earliest time ``run_timers`` has work to do."""
        return earliest(
            _valid_top(self._client_timers, self.client),
            _valid_top(self._server_timers, self.server),
        )

    def clear_client(self) -> None:
        """Forget every client transaction without failing it."""
        self.client.clear()
        self._client_timers.clear()
        self._owners.clear()


def _schedule[K](
    timers: list[tuple[float, K]], key: K, transaction: ClientTransaction | ServerTransaction
) -> None:
    if (deadline := transaction.deadline) is not None:
        heapq.heappush(timers, (deadline, key))


def _due[K, T: ClientTransaction | ServerTransaction](
    timers: list[tuple[float, K]], live: Mapping[K, T], now: float
) -> Iterator[tuple[K, T]]:
    """Pop the entries due at ``now``; yield those whose transaction still has that deadline."""
    while timers and timers[0][0] <= now:
        deadline, key = heapq.heappop(timers)
        transaction = live.get(key)
        if transaction is not None and transaction.deadline == deadline:
            yield key, transaction


def _valid_top[K](
    timers: list[tuple[float, K]], live: Mapping[K, ClientTransaction | ServerTransaction]
) -> float | None:
    """The earliest deadline in ``timers`` that still holds; entries that no longer do go."""
    while timers:
        deadline, key = timers[0]
        transaction = live.get(key)
        if transaction is not None and transaction.deadline == deadline:
            return deadline
        heapq.heappop(timers)
    return None
