"""The one client mechanism that every request of ours goes through (REGISTER, SUBSCRIBE, ...).

Registration, subscription, publication and each outgoing MESSAGE are :class:`Client`
subclasses. Each one builds its own requests (``_build``) and reads what is its own in an answer
(``_succeeded``, ``_failed``); the life of a request is decided here, once:

- sending: one request in flight per client, held while no flow exists (``set_contact`` says
  one does, ``flow_lost`` that it went) and sent with a new CSeq whenever it is answered again;
- 401/407: answered from the credentials by :class:`~.auth.DigestClient` (per-realm
  credentials, stale nonces, a fresh answer refused is final); the user agent's
  :class:`~.admission.ChallengeGate` lets one fresh answer out at a time;
- **423 Interval Too Brief is handled in** :meth:`Client.on_response`: Min-Expires is adopted and
  the request sent again at once, at most :data:`MAX_INTERVAL_RETRIES` times;
- failures: the :data:`FAILURES` table turns a status into a :class:`FailureReason`; 408, 480,
  5xx, timeouts and transport errors are retryable, after Retry-After or a capped, jittered
  backoff (:meth:`Client._retry_at`), everything else is final;
- **the refresh time is chosen by** :func:`refresh_time`: 90 % of what the server granted;
- status snapshots: :meth:`Client._set_status` reports each change once, as an event.

This is the shape of libre's ``sip_request`` with its ``sip_loopstate``, shared there by
``sipreg`` and ``sipsub``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
import random
from types import MappingProxyType

from .auth import ChallengeOutcome, DigestClient
from .backoff import Backoff, BackoffPolicy
from .errors import RemoteProtocolError
from .headers import Headers
from .message import Request, Response
from .transaction import ClientTransactionFailure, earliest
from .uri import SipUri, Uri

REFRESH_RATIO = 0.9
MAX_INTERVAL_RETRIES = 3
"""How many 423 answers in a row are adopted before the server is taken as broken."""


class FailureReason(StrEnum):
    """Why a request failed, or a subscription ended; the values are what the entities show.

    The first group is ours (a status or a transaction failure); the second are the reasons a
    notifier gives in ``Subscription-State: terminated`` (RFC 6665 §4.1.3), which keep their names.
    """

    AUTH_FAILED = "auth_failed"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    NOT_OFFERED = "not_offered"
    """489: the server does not offer this event package."""
    TIMEOUT = "timeout"
    TRANSPORT_ERROR = "transport_error"
    SERVER_ERROR = "server_error"
    REJECTED = "rejected"
    DEACTIVATED = "deactivated"
    PROBATION = "probation"
    GIVEUP = "giveup"
    NORESOURCE = "noresource"
    INVARIANT = "invariant"
    TERMINATED = "terminated"
    """Terminated without a reason we know."""
    DIALOG_LOST = "dialog_lost"
    """481 to a refresh, or the flow or registration came back: subscribed anew."""
    NO_NOTIFY = "no_notify"
    """The SUBSCRIBE was accepted but no NOTIFY followed."""

    @property
    def retryable(self) -> bool:
        """Whether the client tries again by itself."""
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {FailureReason.TIMEOUT, FailureReason.TRANSPORT_ERROR, FailureReason.SERVER_ERROR}
)

FAILURES: Mapping[int, FailureReason] = MappingProxyType(
    {
        401: FailureReason.AUTH_FAILED,
        403: FailureReason.FORBIDDEN,
        404: FailureReason.NOT_FOUND,
        407: FailureReason.AUTH_FAILED,
        408: FailureReason.TIMEOUT,
        480: FailureReason.SERVER_ERROR,
        489: FailureReason.NOT_OFFERED,
        604: FailureReason.NOT_FOUND,
    }
)
"""Status -> reason; any other 5xx is a server error and anything else ``rejected``."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A request that did not succeed: why, what the server said, when it said to come back."""

    reason: FailureReason
    status_code: int | None = None
    reason_phrase: str | None = None
    retry_after: int | None = None

    @classmethod
    def of(cls, response: Response, reason: FailureReason | None = None) -> Failure:
        """Classify ``response`` (or take ``reason``); Retry-After counts only where we retry."""
        status = response.status
        if reason is None:
            reason = FAILURES.get(status) or (
                FailureReason.SERVER_ERROR if 500 <= status < 600 else FailureReason.REJECTED
            )
        retry_after = readable(lambda: response.retry_after) if reason.retryable else None
        return cls(reason, status, response.reason, retry_after)


def refresh_time(granted: int, now: float) -> float:
    """When to refresh what the server granted for ``granted`` seconds: at 90 % of it."""
    return now + max(granted * REFRESH_RATIO, 1.0)


def answers(request: Request, response: Response) -> bool:
    """Whether ``response`` answers ``request`` (same Call-ID and CSeq), not an earlier one."""
    try:
        return response.call_id == request.call_id and response.cseq == request.cseq
    except RemoteProtocolError:
        return False


def readable[T](read: Callable[[], T | None]) -> T | None:
    """What ``read()`` returns, or None when the field it reads is malformed."""
    try:
        return read()
    except RemoteProtocolError:
        return None


def granted_expires(response: Response, asked: int) -> int:
    """The Expires of a 2xx, or what was asked for when it has none or an unreadable one."""
    granted = readable(lambda: response.expires)
    return asked if granted is None else granted


def answer_challenge(digest: DigestClient, response: Response) -> bool:
    """Feed a 401/407 to ``digest``; True when the request should go again with credentials."""
    name = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
    try:
        outcome = digest.handle_challenge(response.status, response.headers.get_all(name))
    except RemoteProtocolError:
        return False  # a malformed challenge is one we cannot answer
    return outcome in (ChallengeOutcome.ANSWERED, ChallengeOutcome.STALE)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientStatus:
    """What every client's status snapshot shows besides its state (each adds its own)."""

    reason: FailureReason | None = None
    status_code: int | None = None
    expires: int | None = None
    """Seconds the server granted in the last success."""
    refresh_at: float | None = None
    retry_at: float | None = None
    """When a failed client tries again; None when it gave up."""


@dataclass(slots=True)
class RequestIds:
    """The Call-ID, From tag and CSeq kept across a client's requests (RFC 3261 §8.1.1)."""

    call_id: str
    from_tag: str
    cseq: int = 0

    def fields(self, method: str, from_: str, to: str) -> list[tuple[str, str]]:
        """From (``from_`` with our tag), To, Call-ID and a new CSeq for a ``method`` request."""
        self.cseq += 1
        return [
            ("From", f"{from_};tag={self.from_tag}"),
            ("To", to),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} {method}"),
        ]


@dataclass(slots=True)
class Pending[O]:
    """The request of one operation in flight; ``request`` is None while it waits for a flow."""

    operation: O
    request: Request | None = None
    interval_retries: int = 0


class Client[O, S: ClientStatus, E]:
    """A client state machine under the user agent: what it sends, when, and what it reports.

    The user agent speaks to every client through these members only: ``set_contact`` and
    ``flow_lost``; ``on_response``, ``on_failure``, ``on_notify``, ``resend_authorized``,
    ``on_timer`` and ``deadline``; ``start_queued``, ``start`` and ``restart``; ``busy`` and
    ``call_id``; ``take_requests`` and ``take_events``; ``discard``.
    """

    EXPIRING: frozenset[O] = frozenset()
    """Operations that ask for an expiry (and so may get 423)."""

    def __init__(
        self,
        digest: DigestClient,
        expires: int,
        idle: S,
        changed: Callable[[S], E],
        *,
        backoff: BackoffPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Start ``idle``, with no flow; ``changed(status)`` is the event reporting a status."""
        self._digest = digest
        self._backoff = Backoff(backoff, rng)
        self._expires = expires
        self._idle = idle
        self._changed = changed
        self._status = idle
        self._enabled = False
        self._contact: SipUri | None = None
        self._flow_up = False
        self._pending: Pending[O] | None = None
        self._requests: list[Request] = []
        self._events: list[E] = []
        self.start_queued = False
        """Whether a start waits for the user agent's pacing (see ``start``)."""

    # -- what the user agent reads -------------------------------------------------------------

    @property
    def status(self) -> S:
        """The current snapshot."""
        return self._status

    @property
    def enabled(self) -> bool:
        """Whether the client is meant to be kept up."""
        return self._enabled

    @property
    def busy(self) -> bool:
        """Whether a request is in flight (or waiting for a flow)."""
        return self._pending is not None

    @property
    def call_id(self) -> str | None:
        """The Call-ID whose in-dialog requests this client takes, or None."""
        return None

    @property
    def deadline(self) -> float | None:
        """When ``on_timer`` must run next."""
        if self._pending is not None:
            return None
        return earliest(self._status.refresh_at, self._status.retry_at, *self._waits())

    def take_requests(self) -> list[Request]:
        """Requests to send now (the user agent adds Via and routing)."""
        out, self._requests = self._requests, []
        return out

    def take_events(self) -> list[E]:
        """Events since the last call."""
        out, self._events = self._events, []
        return out

    # -- the flow ------------------------------------------------------------------------------

    def set_contact(self, contact: SipUri) -> None:
        """A flow exists and ``contact`` names us on it: a request held for it goes now."""
        self._contact = contact
        self._flow_up = True
        pending = self._pending
        if pending is not None and pending.request is None:
            self._issue(pending)

    def flow_lost(self) -> None:
        """The flow is gone: requests are held until ``set_contact`` names a new one."""
        self._flow_up = False

    def hold(self, request: Request) -> None:
        """``request`` was built but the flow went before it could: it waits for the next."""
        self._flow_up = False
        if self._pending is not None and self._pending.request is request:
            self._pending.request = None

    # -- feedback from the user agent ----------------------------------------------------------

    def on_response(self, response: Response, now: float) -> None:
        """A response to our request arrived: challenges, 423, success or failure."""
        pending = self._pending
        status = response.status
        if pending is None or pending.request is None or status < 200:
            return
        if not answers(pending.request, response):
            return
        if status in (401, 407):
            if answer_challenge(self._digest, response):
                self._issue(pending)
                return
            failure = Failure.of(response)
        elif status == 423 and pending.operation in self.EXPIRING:
            minimum = readable(lambda: response.min_expires)
            if (
                minimum is not None
                and minimum > self._expires
                and pending.interval_retries < MAX_INTERVAL_RETRIES
            ):
                self._expires = minimum
                pending.interval_retries += 1
                self._issue(pending)
                return
            failure = Failure.of(response, FailureReason.REJECTED)
        elif 200 <= status < 300:
            self._pending = None
            self._digest.request_succeeded()
            self._succeeded(pending.operation, response, now)
            return
        else:
            failure = Failure.of(response)
        self._pending = None
        self._failed(pending.operation, failure, now)

    def on_failure(self, failure: ClientTransactionFailure, request: Request, now: float) -> None:
        """Our ``request`` timed out or its flow broke."""
        pending = self._pending
        if pending is None or pending.request is not request:
            return
        self._pending = None
        # Each ClientTransactionFailure has the value of the FailureReason it is.
        self._failed(pending.operation, Failure(FailureReason(failure)), now)

    def resend_authorized(self) -> None:
        """Send the challenged request again with the credentials now held.

        The user agent calls this instead of handing over a 401/407 when another request
        answered a challenge of the same realm meanwhile and succeeded.
        """
        if self._pending is not None and self._pending.request is not None:
            self._issue(self._pending)

    def on_notify(self, request: Request, now: float) -> int:  # noqa: ARG002
        """An in-dialog NOTIFY with our Call-ID; the status to answer (481: no dialog here)."""
        return 481

    def start(self) -> None:
        """Make the queued start; the user agent paces these."""

    def restart(self, now: float) -> None:
        """Start anew: the flow or the registration came back after it was lost."""

    def on_timer(self, now: float) -> None:
        """A retry or a refresh is due."""
        status = self._status
        if self._pending is not None or not self._enabled:
            return
        if status.retry_at is not None and now >= status.retry_at:
            self._retry(now)
        elif status.refresh_at is not None and now >= status.refresh_at:
            self._refresh(now)

    def discard(self) -> None:
        """Forget everything without sending anything (what the server holds expires by itself)."""
        self._enabled = False
        self._pending = None
        self._set_status(self._idle)

    # -- what a client supplies ----------------------------------------------------------------

    def _build(self, operation: O) -> Request:
        raise NotImplementedError

    def _succeeded(self, operation: O, response: Response, now: float) -> None:
        raise NotImplementedError

    def _failed(self, operation: O, failure: Failure, now: float) -> None:
        raise NotImplementedError

    def _retry(self, now: float) -> None:
        raise NotImplementedError

    def _refresh(self, now: float) -> None:
        raise NotImplementedError

    def _waits(self) -> tuple[float | None, ...]:
        """Further deadlines of the client's own."""
        return ()

    # -- for the clients -----------------------------------------------------------------------

    def _send(self, operation: O) -> None:
        """Start ``operation``: sent now, or as soon as a flow exists."""
        pending = Pending(operation)
        self._pending = pending
        if self._flow_up:
            self._issue(pending)

    def _request(
        self,
        method: str,
        uri: Uri,
        fields: list[tuple[str, str]],
        body: bytes = b"",
        *,
        uri_text: str | None = None,
    ) -> Request:
        """A request of ``fields`` and the answers to the nonces held (``uri_text``: ``uri``)."""
        fields += self._digest.authorization_headers(method, uri_text or str(uri), body)
        return Request(method, uri, Headers(fields), body)

    def _issue(self, pending: Pending[O]) -> None:
        """Build and queue the request (again, with a new CSeq and what a challenge taught us)."""
        pending.request = self._build(pending.operation)
        self._pending = pending
        self._requests.append(pending.request)

    def _drop_held(self) -> bool:
        """Forget a request that is still waiting for a flow (nothing was sent); True if any."""
        if self._pending is not None and self._pending.request is None:
            self._pending = None
            return True
        return False

    def _retry_at(
        self, failure: Failure, now: float, *, retryable: bool | None = None
    ) -> float | None:
        """When to try again after ``failure``: Retry-After, else backoff; None when final.

        ``retryable`` overrides what the reason says (a subscription retries more reasons).
        """
        if retryable is None:
            retryable = failure.reason.retryable
        if not (retryable and self._enabled):
            return None
        if failure.retry_after is not None:
            return now + failure.retry_after
        return now + self._backoff.next_delay()

    def _set_status(self, status: S) -> None:
        if status != self._status:
            self._status = status
            self._events.append(self._changed(status))


__all__ = [
    "FAILURES",
    "Client",
    "ClientStatus",
    "Failure",
    "FailureReason",
    "Pending",
    "RequestIds",
    "answer_challenge",
    "answers",
    "granted_expires",
    "readable",
    "refresh_time",
]
