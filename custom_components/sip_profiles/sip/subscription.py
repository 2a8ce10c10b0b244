"""The client side of one event subscription (RFC 6665), as a sans-I/O state machine.

One :class:`Subscription` watches one resource for one event package (``presence``,
``dialog``, ``presence.winfo``...). It decides what SUBSCRIBE to send and when; the user agent
owns the transactions, hands it the responses and the NOTIFYs of its dialog, and answers each
NOTIFY with the status code :meth:`Subscription.on_notify` returns. NOTIFY bodies are passed on
as bytes in :class:`NotifyReceived`; turning them into presence is the job of
:mod:`.documents`, off the event loop.

Policy in one place:
- the dialog is formed by the 2xx to the SUBSCRIBE or by a NOTIFY that overtook it;
- refresh in the dialog at 90 % of the expiry the notifier granted;
- ``Subscription-State: terminated`` (RFC 6665 §4.1.3): ``deactivated`` and ``timeout`` subscribe
  again at once in a new dialog (with backoff when that keeps happening before any NOTIFY said
  active), ``probation`` and ``giveup`` after Retry-After or backoff, ``rejected``,
  ``noresource`` and ``invariant`` stop; no reason or an unknown one retries after backoff;
- no NOTIFY within 32 s of the 2xx to a new SUBSCRIBE: tried again after backoff;
- 481 to a refresh subscribes anew; 489 stops (the package is not offered); 423 adopts
  Min-Expires; 408/480/5xx, timeouts and transport errors retry after Retry-After or backoff;
  rejected credentials, 403, 404 and other 4xx stop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
import random
from types import MappingProxyType

from .auth import ChallengeOutcome, DigestClient
from .backoff import Backoff, BackoffPolicy
from .errors import LocalProtocolError, RemoteProtocolError
from .grammar import is_token
from .headers import Headers, NameAddr
from .message import Request, Response
from .outbox import Outbox, earliest
from .transaction import ClientTransactionFailure
from .uri import SipUri, Uri

REFRESH_RATIO = 0.9
DEFAULT_EXPIRES = 3600
MAX_INTERVAL_RETRIES = 3
FINAL_NOTIFY_WAIT = 32.0
"""Seconds to wait for the final NOTIFY after an unsubscribe was accepted (64*T1)."""
FIRST_NOTIFY_WAIT = 32.0
"""Seconds to wait for the first NOTIFY after a SUBSCRIBE was accepted (64*T1, RFC 6665
§4.1.2.4); without one the subscription is taken as failed and tried again."""

ACCEPT: Mapping[str, str] = MappingProxyType(
    {
        "presence": "application/pidf+xml",
        "dialog": "application/dialog-info+xml",
        "presence.winfo": "application/watcherinfo+xml",
    }
)
"""The body type asked for (``Accept``) per event package."""


class SubscriptionState(StrEnum):
    """Where a subscription stands; the values are what the entities show."""

    UNSUBSCRIBED = "unsubscribed"
    SUBSCRIBING = "subscribing"
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBING = "unsubscribing"
    FAILED = "failed"


class SubscriptionReason(StrEnum):
    """Why a subscription ended, failed or started over; the notifier's reasons keep their names."""

    DEACTIVATED = "deactivated"
    PROBATION = "probation"
    REJECTED = "rejected"
    TIMEOUT = "timeout"
    GIVEUP = "giveup"
    NORESOURCE = "noresource"
    INVARIANT = "invariant"
    TERMINATED = "terminated"
    """Terminated without a reason we know."""
    NOT_OFFERED = "not_offered"
    """489: the notifier does not offer this event package."""
    DIALOG_LOST = "dialog_lost"
    NO_NOTIFY = "no_notify"
    """The SUBSCRIBE was accepted but no NOTIFY followed."""
    """481 to a refresh, or the flow or registration came back: subscribed anew."""
    AUTH_FAILED = "auth_failed"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    TRANSPORT_ERROR = "transport_error"
    SERVER_ERROR = "server_error"


_RESUBSCRIBE_AT_ONCE = frozenset({SubscriptionReason.DEACTIVATED, SubscriptionReason.TIMEOUT})
_RESUBSCRIBE_LATER = frozenset({SubscriptionReason.PROBATION, SubscriptionReason.GIVEUP})
_FINAL = frozenset(
    {SubscriptionReason.REJECTED, SubscriptionReason.NORESOURCE, SubscriptionReason.INVARIANT}
)


@dataclass(frozen=True, slots=True)
class SubscriptionKey:
    """Names a subscription: the watched URI and the event package."""

    uri: str
    package: str


@dataclass(frozen=True, slots=True)
class SubscriptionSettings:
    """What a subscription sends."""

    target: SipUri
    """The watched resource (Request-URI and To of the initial SUBSCRIBE)."""
    package: str
    aor: SipUri
    """Our address of record (From)."""
    display_name: str | None = None
    expires: int = DEFAULT_EXPIRES


@dataclass(frozen=True, slots=True)
class SubscriptionStatus:
    """A snapshot of everything a user may want to see about a subscription."""

    state: SubscriptionState
    reason: SubscriptionReason | None = None
    status_code: int | None = None
    expires: int | None = None
    """Seconds granted by the last 2xx or NOTIFY."""
    refresh_at: float | None = None
    retry_at: float | None = None
    """When a failed subscription tries again; None when it gave up."""


@dataclass(frozen=True, slots=True)
class SubscriptionChanged:
    """A subscription's status changed."""

    key: SubscriptionKey
    status: SubscriptionStatus


@dataclass(frozen=True, slots=True)
class NotifyReceived:
    """A NOTIFY of the subscription was accepted; ``body`` is its raw document."""

    key: SubscriptionKey
    state: SubscriptionState
    """The subscription's state after the NOTIFY was applied."""
    content_type: str | None
    body: bytes


SubscriptionEvent = SubscriptionChanged | NotifyReceived


class Operation(StrEnum):
    """What a SUBSCRIBE in flight is for."""

    SUBSCRIBE = "subscribe"
    REFRESH = "refresh"
    UNSUBSCRIBE = "unsubscribe"


@dataclass(slots=True)
class _Dialog:
    """One subscription dialog (RFC 6665 §4.1.2): each new SUBSCRIBE outside it starts another."""

    call_id: str
    local_tag: str
    cseq: int = 0
    remote_tag: str | None = None
    route_set: tuple[str, ...] = ()
    remote_target: Uri | None = None
    remote_cseq: int | None = None


@dataclass(slots=True)
class _Pending:
    """A SUBSCRIBE handed to the user agent and not yet answered."""

    operation: Operation
    request: Request
    interval_retries: int = 0


def answers(request: Request, response: Response) -> bool:
    """Whether ``response`` answers ``request`` (same Call-ID and CSeq), not an earlier one."""
    try:
        return response.call_id == request.call_id and response.cseq == request.cseq
    except RemoteProtocolError:
        return False


def challenge_outcome(digest: DigestClient, response: Response) -> ChallengeOutcome:
    """Feed a 401/407 to ``digest``; a malformed challenge counts as one we cannot answer."""
    name = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
    try:
        return digest.handle_challenge(response.status, response.headers.get_all(name))
    except RemoteProtocolError:
        return ChallengeOutcome.UNSUPPORTED


class Subscription(Outbox[SubscriptionEvent]):
    """Keeps one subscription (resource + event package) alive."""

    def __init__(
        self,
        settings: SubscriptionSettings,
        digest: DigestClient,
        *,
        new_token: Callable[[int], str],
        backoff: BackoffPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Create an idle subscription; ``subscribe()`` starts it.

        ``new_token(size)`` returns ``size`` random octets as hex, for Call-IDs and tags.
        """
        if not is_token(settings.package):
            raise LocalProtocolError(f"bad event package {settings.package!r}")
        if settings.expires < 0:
            raise LocalProtocolError("expires must not be negative")
        self.settings = settings
        self.key = SubscriptionKey(str(settings.target), settings.package)
        self._digest = digest
        self._new_token = new_token
        self._backoff = Backoff(backoff, rng)
        self._expires = settings.expires
        self._contact: SipUri | None = None
        self._dialog: _Dialog | None = None
        self._pending: _Pending | None = None
        self._enabled = False
        self._active_since_restart = True
        self._final_notify_until: float | None = None
        self._first_notify_until: float | None = None
        self._status = SubscriptionStatus(SubscriptionState.UNSUBSCRIBED)

    # -- what the user agent reads -------------------------------------------------------------

    @property
    def status(self) -> SubscriptionStatus:
        """The current snapshot."""
        return self._status

    @property
    def state(self) -> SubscriptionState:
        """The current state."""
        return self._status.state

    @property
    def enabled(self) -> bool:
        """Whether the subscription is meant to be kept up."""
        return self._enabled

    @property
    def call_id(self) -> str | None:
        """The Call-ID of the current dialog, or None when there is none."""
        return self._dialog.call_id if self._dialog is not None else None

    @property
    def deadline(self) -> float | None:
        """When ``on_timer`` must run next."""
        if self._pending is not None:
            return None
        status = self._status
        return earliest(
            status.refresh_at,
            status.retry_at,
            self._final_notify_until,
            self._first_notify_until,
        )

    # -- commands ------------------------------------------------------------------------------

    def set_contact(self, contact: SipUri) -> None:
        """Use ``contact`` in every SUBSCRIBE from now on (refreshes move the remote target)."""
        super().__init__()
        self._contact = contact

    def subscribe(self) -> None:
        """Subscribe now in a new dialog and keep it refreshed; a live subscription stays as is."""
        if self._enabled and self.state is not SubscriptionState.FAILED:
            return
        self._enabled = True
        self._backoff.reset()
        self._active_since_restart = True
        if self._pending is None:
            self._start(None)

    def restart(self, now: float) -> None:
        """Subscribe again in a new dialog (the flow or the registration came back).

        At once, unless the last restart never led to an active NOTIFY: a server that drops
        the flow whenever it notifies would otherwise be flooded with SUBSCRIBEs; then after
        backoff.
        """
        if not self._enabled:
            return
        self._pending = None
        if self._active_since_restart:
            self._active_since_restart = False
            self._start(SubscriptionReason.DIALOG_LOST)
        else:
            self._fail(SubscriptionReason.DIALOG_LOST, now, retry=True)

    def unsubscribe(self) -> None:
        """End the subscription (Expires 0) and wait for the final NOTIFY."""
        self._enabled = False
        if self._pending is not None:
            # The answer to the request in flight decides whether there is a dialog to end.
            self._set_status(SubscriptionStatus(SubscriptionState.UNSUBSCRIBING))
        elif self._dialog is not None and self.state in (
            SubscriptionState.SUBSCRIBING,
            SubscriptionState.PENDING,
            SubscriptionState.ACTIVE,
        ):
            self._set_status(SubscriptionStatus(SubscriptionState.UNSUBSCRIBING))
            self._send(Operation.UNSUBSCRIBE)
        else:
            self._end(SubscriptionState.UNSUBSCRIBED)

    def discard(self) -> None:
        """Forget the subscription without sending anything (it expires at the notifier)."""
        self._enabled = False
        self._pending = None
        self._end(SubscriptionState.UNSUBSCRIBED)

    def resend_authorized(self) -> None:
        """Send the challenged request again with the credentials the user agent now holds.

        The user agent calls this instead of handing over a 401/407 when another request
        already answered a challenge for the same realm and succeeded.
        """
        pending = self._pending
        if pending is not None:
            self._resend(pending)

    # -- feedback from the user agent ----------------------------------------------------------

    def on_timer(self, now: float) -> None:
        """A refresh, a retry or the wait for the final NOTIFY is due."""
        if self._pending is not None:
            return
        if self._final_notify_until is not None and now >= self._final_notify_until:
            self._end(SubscriptionState.UNSUBSCRIBED)
            return
        status = self._status
        if not self._enabled:
            return
        if self._first_notify_until is not None and now >= self._first_notify_until:
            self._fail(SubscriptionReason.NO_NOTIFY, now, retry=True)
        elif status.retry_at is not None and now >= status.retry_at:
            self._start(status.reason)
        elif status.refresh_at is not None and now >= status.refresh_at:
            self._set_status(replace(status, refresh_at=None))
            self._send(Operation.REFRESH)

    def on_response(self, response: Response, now: float) -> None:
        """A response to one of our SUBSCRIBEs arrived (provisional ones are ignored)."""
        pending = self._pending
        if pending is None or response.status < 200 or not answers(pending.request, response):
            return
        status = response.status
        if status in (401, 407):
            self._on_challenge(pending, response, now)
            return
        if status == 423 and pending.operation is not Operation.UNSUBSCRIBE:
            self._on_interval_too_brief(pending, response, now)
            return
        self._pending = None
        if not self._enabled and not 200 <= status < 300:
            self._end(SubscriptionState.UNSUBSCRIBED)
            return
        if pending.operation is Operation.UNSUBSCRIBE:
            if 200 <= status < 300:
                self._digest.request_succeeded()
                self._final_notify_until = now + FINAL_NOTIFY_WAIT
            else:
                self._end(SubscriptionState.UNSUBSCRIBED)
            return
        if 200 <= status < 300:
            self._digest.request_succeeded()
            self._on_accepted(pending, response, now)
        elif status == 481 and pending.operation is Operation.REFRESH:
            self._start(SubscriptionReason.DIALOG_LOST)
        else:
            self._on_rejected(response, now)

    def on_failure(self, failure: ClientTransactionFailure, request: Request, now: float) -> None:
        """Our SUBSCRIBE ``request`` timed out or its flow broke."""
        pending = self._pending
        if pending is None or pending.request is not request:
            return
        self._pending = None
        if not self._enabled:
            self._end(SubscriptionState.UNSUBSCRIBED)
            return
        reason = (
            SubscriptionReason.TIMEOUT
            if failure is ClientTransactionFailure.TIMEOUT
            else SubscriptionReason.TRANSPORT_ERROR
        )
        self._fail(reason, now, retry=True)

    def on_notify(self, request: Request, now: float) -> int:
        """Apply a NOTIFY the user agent matched to our Call-ID; return the status to answer.

        200: applied. 481: not of our dialog (nothing changes). 400: malformed, 500: older than
        the last NOTIFY applied (nothing changes either).
        """
        dialog = self._dialog
        try:
            if dialog is None or request.call_id != dialog.call_id:
                return 481
            if request.to.tag != dialog.local_tag:
                return 481
            event = request.event
            remote_tag = request.from_.tag
            header = request.subscription_state
            cseq = request.cseq.number
            contacts = request.contacts
            content_type = request.content_type
            record_route = request.headers.get_list("Record-Route")
        except RemoteProtocolError:
            return 400
        if event is None or event.package.lower() != self.settings.package.lower() or event.id:
            return 481
        if dialog.remote_tag is not None and remote_tag != dialog.remote_tag:
            return 481  # another fork of the SUBSCRIBE: we keep only the first dialog
        if header is None or remote_tag is None or contacts == "*":
            return 400
        if header.state not in ("active", "pending", "terminated"):
            return 400
        if dialog.remote_cseq is not None and cseq <= dialog.remote_cseq:
            return 500
        if dialog.remote_tag is None:
            # The NOTIFY overtook the 2xx: it forms the dialog, its route set as we received it.
            dialog.remote_tag = remote_tag
            dialog.route_set = tuple(record_route)
        dialog.remote_cseq = cseq
        self._first_notify_until = None
        if contacts:
            dialog.remote_target = contacts[0].uri
        if header.state == "terminated":
            self._on_terminated(header.reason, header.retry_after, now)
        else:
            self._on_notified_state(header.state, header.expires, now)
        self._events.append(
            NotifyReceived(
                self.key,
                self.state,
                content_type.mime if content_type is not None else None,
                request.body,
            )
        )
        return 200

    # -- internals -----------------------------------------------------------------------------

    def _on_notified_state(self, state: str, expires: int | None, now: float) -> None:
        status = self._status
        if not self._enabled or status.state is SubscriptionState.UNSUBSCRIBING:
            return
        new_state = SubscriptionState.ACTIVE if state == "active" else SubscriptionState.PENDING
        if new_state is SubscriptionState.ACTIVE:
            self._active_since_restart = True
        refresh_at = status.refresh_at
        if expires is not None and self._pending is None:
            refresh_at = now + max(expires * REFRESH_RATIO, 1.0)
        self._set_status(
            replace(
                status,
                state=new_state,
                reason=None,
                expires=expires if expires is not None else status.expires,
                refresh_at=refresh_at,
                retry_at=None,
            )
        )

    def _on_terminated(self, reason_text: str | None, retry_after: int | None, now: float) -> None:
        self._dialog = None
        self._pending = None  # its dialog is gone; the answer to it will be ignored
        if not self._enabled:
            self._end(SubscriptionState.UNSUBSCRIBED)
            return
        try:
            reason = SubscriptionReason((reason_text or "").lower())
        except ValueError:
            reason = SubscriptionReason.TERMINATED
        if reason in _FINAL:
            self._enabled = False
            self._set_status(SubscriptionStatus(SubscriptionState.FAILED, reason=reason))
        elif reason in _RESUBSCRIBE_AT_ONCE and self._active_since_restart:
            self._active_since_restart = False
            self._start(reason)
        else:
            delay = (
                retry_after
                if retry_after is not None and reason in _RESUBSCRIBE_LATER
                else self._backoff.next_delay()
            )
            self._set_status(
                SubscriptionStatus(SubscriptionState.FAILED, reason=reason, retry_at=now + delay)
            )

    def _on_accepted(self, pending: _Pending, response: Response, now: float) -> None:
        dialog = self._dialog
        if dialog is None:
            return
        try:
            remote_tag = response.to.tag
            contacts = response.contacts
            granted = response.expires
        except RemoteProtocolError:
            self._fail(SubscriptionReason.SERVER_ERROR, now, retry=True, response=response)
            return
        if dialog.remote_tag is None:
            dialog.remote_tag = remote_tag
            dialog.route_set = tuple(reversed(response.headers.get_list("Record-Route")))
        if contacts and contacts != "*" and dialog.remote_tag == remote_tag:
            dialog.remote_target = contacts[0].uri
        granted = self._expires if granted is None else granted
        if not self._enabled:
            self._set_status(SubscriptionStatus(SubscriptionState.UNSUBSCRIBING))
            self._send(Operation.UNSUBSCRIBE)
            return
        self._backoff.reset()
        if granted == 0:
            # Accepted and ended at once: nothing to refresh, the final NOTIFY says why.
            self._fail(SubscriptionReason.TERMINATED, now, retry=True, response=response)
            return
        status = self._status
        if status.state is SubscriptionState.SUBSCRIBING:
            self._first_notify_until = now + FIRST_NOTIFY_WAIT
        self._set_status(
            replace(
                status,
                reason=None if pending.operation is Operation.REFRESH else status.reason,
                status_code=response.status,
                expires=granted,
                refresh_at=now + max(granted * REFRESH_RATIO, 1.0),
                retry_at=None,
            )
        )

    def _on_rejected(self, response: Response, now: float) -> None:
        status = response.status
        if status == 489:
            self._fail(SubscriptionReason.NOT_OFFERED, now, retry=False, response=response)
        elif status == 403:
            self._fail(SubscriptionReason.FORBIDDEN, now, retry=False, response=response)
        elif status in (404, 604):
            self._fail(SubscriptionReason.NOT_FOUND, now, retry=False, response=response)
        elif status in (408, 480) or 500 <= status < 600:
            try:
                retry_after = response.retry_after
            except RemoteProtocolError:
                retry_after = None
            reason = (
                SubscriptionReason.TIMEOUT if status == 408 else SubscriptionReason.SERVER_ERROR
            )
            self._fail(reason, now, retry=True, response=response, retry_after=retry_after)
        else:
            self._fail(SubscriptionReason.REJECTED, now, retry=False, response=response)

    def _on_challenge(self, pending: _Pending, response: Response, now: float) -> None:
        outcome = challenge_outcome(self._digest, response)
        if outcome in (ChallengeOutcome.ANSWERED, ChallengeOutcome.STALE):
            self._resend(pending)
            return
        self._pending = None
        if not self._enabled:
            self._end(SubscriptionState.UNSUBSCRIBED)
            return
        self._fail(SubscriptionReason.AUTH_FAILED, now, retry=False, response=response)

    def _on_interval_too_brief(self, pending: _Pending, response: Response, now: float) -> None:
        try:
            minimum = response.min_expires
        except RemoteProtocolError:
            minimum = None
        if (
            minimum is None
            or minimum <= self._expires
            or pending.interval_retries >= MAX_INTERVAL_RETRIES
        ):
            self._pending = None
            self._fail(SubscriptionReason.REJECTED, now, retry=False, response=response)
            return
        self._expires = minimum
        pending.interval_retries += 1
        self._resend(pending)

    def _start(self, reason: SubscriptionReason | None) -> None:
        """A new dialog and its initial SUBSCRIBE."""
        self._dialog = _Dialog(call_id=self._new_token(16), local_tag=self._new_token(8))
        self._final_notify_until = None
        self._first_notify_until = None
        self._set_status(SubscriptionStatus(SubscriptionState.SUBSCRIBING, reason=reason))
        self._send(Operation.SUBSCRIBE)

    def _send(self, operation: Operation) -> None:
        self._pending = _Pending(operation, self._build(operation))
        self._outbox.append(self._pending.request)

    def _resend(self, pending: _Pending) -> None:
        """The same operation again with a new CSeq (and whatever the challenge taught us)."""
        pending.request = self._build(pending.operation)
        self._pending = pending
        self._outbox.append(pending.request)

    def _build(self, operation: Operation) -> Request:
        dialog = self._dialog
        contact = self._contact
        if dialog is None:
            raise LocalProtocolError("no subscription dialog")
        if contact is None:
            raise LocalProtocolError("no Contact address is known yet")
        settings = self.settings
        dialog.cseq += 1
        in_dialog = operation is not Operation.SUBSCRIBE and dialog.remote_tag is not None
        remote_tag = (("tag", dialog.remote_tag),) if in_dialog and dialog.remote_tag else ()
        uri: Uri = settings.target
        headers = Headers()
        if in_dialog:
            uri = dialog.remote_target or settings.target
            for route in dialog.route_set:
                headers.add("Route", route)
        from_ = NameAddr(settings.aor, settings.display_name, (("tag", dialog.local_tag),))
        headers.add("From", str(from_))
        headers.add("To", str(NameAddr(settings.target, params=remote_tag)))
        headers.add("Call-ID", dialog.call_id)
        headers.add("CSeq", f"{dialog.cseq} SUBSCRIBE")
        headers.add("Contact", f"<{contact}>")
        headers.add("Event", settings.package)
        accept = ACCEPT.get(settings.package.lower())
        if accept is not None:
            headers.add("Accept", accept)
        headers.add("Expires", "0" if operation is Operation.UNSUBSCRIBE else str(self._expires))
        for name, value in self._digest.authorization_headers("SUBSCRIBE", str(uri)):
            headers.add(name, value)
        return Request("SUBSCRIBE", uri, headers)

    def _fail(
        self,
        reason: SubscriptionReason,
        now: float,
        *,
        retry: bool,
        response: Response | None = None,
        retry_after: int | None = None,
    ) -> None:
        self._dialog = None
        self._first_notify_until = None
        retry_at: float | None = None
        if retry and self._enabled:
            delay = retry_after if retry_after is not None else self._backoff.next_delay()
            retry_at = now + delay
        else:
            self._enabled = False
        self._set_status(
            SubscriptionStatus(
                SubscriptionState.FAILED,
                reason=reason,
                status_code=response.status if response is not None else None,
                retry_at=retry_at,
            )
        )

    def _end(self, state: SubscriptionState) -> None:
        self._dialog = None
        self._final_notify_until = None
        self._first_notify_until = None
        self._set_status(SubscriptionStatus(state))

    def _set_status(self, status: SubscriptionStatus) -> None:
        if status != self._status:
            self._status = status
            self._events.append(SubscriptionChanged(self.key, status))


__all__ = [
    "ACCEPT",
    "DEFAULT_EXPIRES",
    "NotifyReceived",
    "Subscription",
    "SubscriptionChanged",
    "SubscriptionEvent",
    "SubscriptionKey",
    "SubscriptionReason",
    "SubscriptionSettings",
    "SubscriptionState",
    "SubscriptionStatus",
    "answers",
    "challenge_outcome",
]
