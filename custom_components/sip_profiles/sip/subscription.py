"""The client side of one event subscription (RFC 6665), as a sans-I/O state machine.

One :class:`Subscription` watches one resource for one event package (``presence``,
``dialog``, ``presence.winfo``...). It holds what is a subscription's own: the dialog, the
NOTIFYs of it and the reasons a notifier gives for ending it. How a SUBSCRIBE is sent,
challenged, retried and refreshed (423 Min-Expires, Retry-After or backoff, refresh at 90 % of
the granted expiry) is decided in :mod:`.client`. The user agent answers each NOTIFY with the
status :meth:`Subscription.on_notify` returns; NOTIFY bodies are passed on as bytes in
:class:`NotifyReceived` (turning them into presence is :mod:`.documents`' job, off the loop).

Policy of its own:
- a start is queued (:attr:`Subscription.start_queued`) and made by the user agent when its
  pacing allows (:meth:`Subscription.start`);
- the dialog is formed by the 2xx to the SUBSCRIBE or by a NOTIFY that overtook it;
- ``Subscription-State: terminated`` follows the :data:`TERMINATIONS` table (RFC 6665 §4.1.3);
- after the 2xx to a new SUBSCRIBE the subscription waits for the first NOTIFY, after an
  accepted unsubscribe for the final one (:class:`Awaiting`), 32 s (64*T1) each;
- 481 to a refresh subscribes anew.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import Enum, StrEnum
from functools import partial
import random
from types import MappingProxyType
from typing import override

from .auth import DigestClient
from .backoff import BackoffPolicy
from .client import Client, ClientStatus, Failure, FailureReason, RequestIds, refresh_time
from .errors import LocalProtocolError, RemoteProtocolError
from .grammar import is_token
from .headers import NameAddr, SubscriptionState as StateHeader
from .message import Request, Response
from .uri import SipUri, Uri

DEFAULT_EXPIRES = 3600
NOTIFY_WAIT = 32.0
"""Seconds to wait for the first NOTIFY after a SUBSCRIBE was accepted, or for the final one
after an unsubscribe was (64*T1, RFC 6665 §4.1.2.4)."""

ACCEPT: Mapping[str, str] = MappingProxyType(
    {
        "presence": "application/pidf+xml",
        "dialog": "application/dialog-info+xml",
        "presence.winfo": "application/watcherinfo+xml",
        "message-summary": "application/simple-message-summary",
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


class Termination(Enum):
    """What a subscription does after ``Subscription-State: terminated``."""

    AT_ONCE = "at_once"
    """Subscribe again at once in a new dialog (with backoff when it keeps happening before any
    NOTIFY said active)."""
    AFTER_RETRY_AFTER = "after_retry_after"
    """Subscribe again after the notifier's retry-after, else after backoff."""
    AFTER_BACKOFF = "after_backoff"
    STOP = "stop"


TERMINATIONS: Mapping[FailureReason, Termination] = MappingProxyType(
    {
        FailureReason.DEACTIVATED: Termination.AT_ONCE,
        FailureReason.TIMEOUT: Termination.AT_ONCE,
        FailureReason.PROBATION: Termination.AFTER_RETRY_AFTER,
        FailureReason.GIVEUP: Termination.AFTER_RETRY_AFTER,
        FailureReason.REJECTED: Termination.STOP,
        FailureReason.NORESOURCE: Termination.STOP,
        FailureReason.INVARIANT: Termination.STOP,
    }
)
"""Notifier's reason -> what follows; no reason or one not listed: after backoff."""


class Awaiting(Enum):
    """The NOTIFY a subscription is waiting for, if any."""

    FIRST_NOTIFY = "first_notify"
    FINAL_NOTIFY = "final_notify"


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
class SubscriptionStatus(ClientStatus):
    """A snapshot of everything a user may want to see about a subscription."""

    state: SubscriptionState


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
_UNSUBSCRIBED = SubscriptionStatus(SubscriptionState.UNSUBSCRIBED)
_LIVE = (SubscriptionState.SUBSCRIBING, SubscriptionState.PENDING, SubscriptionState.ACTIVE)


class Operation(StrEnum):
    """What a SUBSCRIBE in flight is for."""

    SUBSCRIBE = "subscribe"
    REFRESH = "refresh"
    UNSUBSCRIBE = "unsubscribe"


@dataclass(slots=True)
class _Dialog(RequestIds):
    """One subscription dialog (RFC 6665 §4.1.2): each new SUBSCRIBE outside it starts another."""

    remote_tag: str | None = None
    route_set: tuple[str, ...] = ()
    remote_target: Uri | None = None
    remote_cseq: int | None = None

    def take_notify(self, request: Request, package: str) -> StateHeader | int:
        """Check a NOTIFY against the dialog and take its CSeq, Contact and route set.

        Returns its Subscription-State, or the status to refuse it with: 481 not of this dialog, 400
        malformed, 500 lower than the last NOTIFY's CSeq (nothing changes on a refusal).
        """
        try:
            if request.call_id != self.call_id or request.to.tag != self.from_tag:
                return 481
            event = request.event
            remote_tag = request.from_.tag
            header = request.subscription_state
            cseq = request.cseq.number
            contacts = request.contacts
            request.content_type  # noqa: B018 - parsed here: a malformed one is refused (400)
            record_route = request.headers.get_list("Record-Route")
        except RemoteProtocolError:
            return 400
        if event is None or event.package.lower() != package.lower() or event.id:
            return 481
        if self.remote_tag is not None and remote_tag != self.remote_tag:
            return 481  # another fork of the SUBSCRIBE: we keep only the first dialog
        if header is None or remote_tag is None or contacts == "*":
            return 400
        if header.state not in ("active", "pending", "terminated"):
            return 400
        if self.remote_cseq is not None and cseq < self.remote_cseq:
            return 500  # only a lower one is out of order (RFC 3261 §12.2.2)
        if self.remote_tag is None:
            # The NOTIFY overtook the 2xx: it forms the dialog, its route set as we received it.
            self.remote_tag = remote_tag
            self.route_set = tuple(record_route)
        self.remote_cseq = cseq
        if contacts:
            self.remote_target = contacts[0].uri
        return header

    def take_answer(self, response: Response) -> int | None:
        """Take the remote tag, route set and target of a 2xx; the Expires it granted.

        Raises RemoteProtocolError for a 2xx that cannot be read.
        """
        remote_tag = response.to.tag
        contacts = response.contacts
        granted = response.expires
        if self.remote_tag is None:
            self.remote_tag = remote_tag
            self.route_set = tuple(reversed(response.headers.get_list("Record-Route")))
        if contacts and contacts != "*" and self.remote_tag == remote_tag:
            self.remote_target = contacts[0].uri
        return granted

    def request(
        self, settings: SubscriptionSettings, *, initial: bool
    ) -> tuple[Uri, list[tuple[str, str]]]:
        """The Request-URI and dialog headers of our next SUBSCRIBE (a new CSeq)."""
        from_ = str(NameAddr(settings.aor, settings.display_name))
        if initial or self.remote_tag is None:
            return settings.target, self.fields("SUBSCRIBE", from_, str(NameAddr(settings.target)))
        to = NameAddr(settings.target, params=(("tag", self.remote_tag),))
        routes = [("Route", route) for route in self.route_set]
        uri = self.remote_target or settings.target
        return uri, [*routes, *self.fields("SUBSCRIBE", from_, str(to))]


class Subscription(Client[Operation, SubscriptionStatus, SubscriptionEvent]):
    """Keeps one subscription (resource + event package) alive."""

    EXPIRING = frozenset({Operation.SUBSCRIBE, Operation.REFRESH})

    def __init__(
        self,
        settings: SubscriptionSettings,
        digest: DigestClient,
        *,
        new_token: Callable[[int], str],
        backoff: BackoffPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """An idle subscription; ``new_token(size)`` gives ``size`` random octets as hex."""
        if not is_token(settings.package):
            raise LocalProtocolError(f"bad event package {settings.package!r}")
        if settings.expires < 0:
            raise LocalProtocolError("expires must not be negative")
        key = SubscriptionKey(str(settings.target), settings.package)
        super().__init__(
            digest,
            settings.expires,
            _UNSUBSCRIBED,
            partial(SubscriptionChanged, key),
            backoff=backoff,
            rng=rng,
        )
        self.settings = settings
        self.key = key
        self._new_token = new_token
        self._dialog: _Dialog | None = None
        self._active_since_restart = True
        self._awaiting: tuple[Awaiting, float] | None = None
        """The NOTIFY waited for, and until when."""

    @property
    def state(self) -> SubscriptionState:
        """The current state."""
        return self._status.state

    @property
    @override
    def call_id(self) -> str | None:
        """The Call-ID of the current dialog, or None when there is none."""
        return self._dialog.call_id if self._dialog is not None else None

    # -- commands ------------------------------------------------------------------------------

    def subscribe(self) -> None:
        """Subscribe in a new dialog (queued) and keep it refreshed; a live one stays as is."""
        if self._enabled and self.state is not SubscriptionState.FAILED:
            return
        self._enabled = True
        self._backoff.reset()
        self._active_since_restart = True
        if self._pending is None:
            self._queue_start(None)

    def start(self) -> None:
        """Send the queued SUBSCRIBE of a new dialog."""
        if self.start_queued and self._enabled:
            self._start(self._status.reason)

    @override
    def restart(self, now: float) -> None:
        """Subscribe again in a new dialog (the flow or the registration came back).

        After backoff when the last restart never led to an active NOTIFY: a server that drops
        the flow whenever it notifies would otherwise be flooded with SUBSCRIBEs.
        """
        if not self._enabled:
            return
        self._pending = None
        if self._active_since_restart:
            self._active_since_restart = False
            self._queue_start(FailureReason.DIALOG_LOST)
        else:
            self._fail(Failure(FailureReason.DIALOG_LOST), now, retry=True)

    def unsubscribe(self) -> None:
        """End the subscription (Expires 0) and wait for the final NOTIFY."""
        self._enabled = False
        live = self._dialog is not None and self.state in _LIVE
        if self._drop_held() or self.start_queued or (self._pending is None and not live):
            self._end()
            return
        # With a request in flight, its answer decides whether there is a dialog to end.
        self._set_status(SubscriptionStatus(SubscriptionState.UNSUBSCRIBING))
        if self._pending is None:
            self._send(Operation.UNSUBSCRIBE)

    @override
    def discard(self) -> None:
        """Forget the subscription without sending anything (it expires at the notifier)."""
        self._enabled = False
        self._pending = None
        self._end()

    # -- feedback from the user agent ----------------------------------------------------------

    @override
    def on_timer(self, now: float) -> None:
        """A refresh, a retry or the wait for a NOTIFY is due."""
        awaiting = self._awaiting
        if self._pending is not None:
            return
        if awaiting is None or now < awaiting[1]:
            super().on_timer(now)
        elif awaiting[0] is Awaiting.FINAL_NOTIFY:
            self._end()
        elif self._enabled:
            self._fail(Failure(FailureReason.NO_NOTIFY), now, retry=True)

    @override
    def on_notify(self, request: Request, now: float) -> int:
        """Apply a NOTIFY with our Call-ID: 200, or a refusal from :meth:`_Dialog.take_notify`."""
        dialog = self._dialog
        notified = dialog.take_notify(request, self.settings.package) if dialog else 481
        if isinstance(notified, int):
            return notified
        if self._awaiting is not None and self._awaiting[0] is Awaiting.FIRST_NOTIFY:
            self._awaiting = None
        if notified.state == "terminated":
            self._on_terminated(notified.reason, notified.retry_after, now)
        else:
            self._on_notified_state(notified.state, notified.expires, now)
        content_type = request.content_type
        mime = content_type.mime if content_type is not None else None
        self._events.append(NotifyReceived(self.key, self.state, mime, request.body))
        return 200

    # -- the client mechanism's questions ------------------------------------------------------

    @override
    def _waits(self) -> tuple[float | None, ...]:
        return (None if self._awaiting is None else self._awaiting[1],)

    @override
    def _retry(self, now: float) -> None:
        self._start(self._status.reason)

    @override
    def _refresh(self, now: float) -> None:
        self._set_status(replace(self._status, refresh_at=None))
        self._send(Operation.REFRESH)

    @override
    def _succeeded(self, operation: Operation, response: Response, now: float) -> None:
        if operation is Operation.UNSUBSCRIBE:
            self._awaiting = (Awaiting.FINAL_NOTIFY, now + NOTIFY_WAIT)
            return
        dialog = self._dialog
        if dialog is None:
            return
        try:
            granted = dialog.take_answer(response)
        except RemoteProtocolError:
            self._fail(Failure.of(response, FailureReason.SERVER_ERROR), now, retry=True)
            return
        granted = self._expires if granted is None else granted
        if not self._enabled:
            self._set_status(SubscriptionStatus(SubscriptionState.UNSUBSCRIBING))
            self._send(Operation.UNSUBSCRIBE)
            return
        self._backoff.reset()
        if granted == 0:
            # Accepted and ended at once: nothing to refresh, the final NOTIFY says why.
            self._fail(Failure.of(response, FailureReason.TERMINATED), now, retry=True)
            return
        status = self._status
        if status.state is SubscriptionState.SUBSCRIBING:
            self._awaiting = (Awaiting.FIRST_NOTIFY, now + NOTIFY_WAIT)
        self._set_status(
            replace(
                status,
                reason=None if operation is Operation.REFRESH else status.reason,
                status_code=response.status,
                expires=granted,
                refresh_at=refresh_time(granted, now),
                retry_at=None,
            )
        )

    @override
    def _failed(self, operation: Operation, failure: Failure, now: float) -> None:
        if not self._enabled or operation is Operation.UNSUBSCRIBE:
            self._end()
        elif failure.status_code == 481 and operation is Operation.REFRESH:
            self._start(FailureReason.DIALOG_LOST)
        else:
            self._fail(failure, now, retry=failure.reason.retryable)

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
            refresh_at = refresh_time(expires, now)
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
            self._end()
            return
        try:
            reason = FailureReason((reason_text or "").lower())
        except ValueError:
            reason = FailureReason.TERMINATED
        termination = TERMINATIONS.get(reason, Termination.AFTER_BACKOFF)
        if termination is Termination.STOP:
            self._fail(Failure(reason), now, retry=False)
        elif termination is Termination.AT_ONCE and self._active_since_restart:
            self._active_since_restart = False
            self._start(reason)
        else:
            if termination is not Termination.AFTER_RETRY_AFTER:
                retry_after = None
            self._fail(Failure(reason, retry_after=retry_after), now, retry=True)

    def _queue_start(self, reason: FailureReason | None) -> None:
        self._dialog = None
        self._awaiting = None
        self.start_queued = True
        self._set_status(SubscriptionStatus(SubscriptionState.SUBSCRIBING, reason=reason))

    def _start(self, reason: FailureReason | None) -> None:
        """A new dialog and its initial SUBSCRIBE."""
        self.start_queued = False
        self._dialog = _Dialog(call_id=self._new_token(16), from_tag=self._new_token(8))
        self._awaiting = None
        self._set_status(SubscriptionStatus(SubscriptionState.SUBSCRIBING, reason=reason))
        self._send(Operation.SUBSCRIBE)

    @override
    def _build(self, operation: Operation) -> Request:
        if self._dialog is None:
            raise LocalProtocolError("no subscription dialog")
        settings = self.settings
        uri, fields = self._dialog.request(settings, initial=operation is Operation.SUBSCRIBE)
        fields += [("Contact", f"<{self._contact}>"), ("Event", settings.package)]
        if (accept := ACCEPT.get(settings.package.lower())) is not None:
            fields.append(("Accept", accept))
        expires = 0 if operation is Operation.UNSUBSCRIBE else self._expires
        fields.append(("Expires", str(expires)))
        return self._request("SUBSCRIBE", uri, fields)

    def _fail(self, failure: Failure, now: float, *, retry: bool) -> None:
        """Failed: tried again later when ``retry``, else given up until subscribed again."""
        self._dialog = None
        self._awaiting = None
        retry_at = self._retry_at(failure, now, retryable=retry)
        if retry_at is None:
            self._enabled = False
        self._set_status(
            SubscriptionStatus(
                SubscriptionState.FAILED,
                reason=failure.reason,
                status_code=failure.status_code,
                retry_at=retry_at,
            )
        )

    def _end(self) -> None:
        self._dialog = None
        self.start_queued = False
        self._awaiting = None
        self._set_status(self._idle)


__all__ = [
    "ACCEPT",
    "DEFAULT_EXPIRES",
    "TERMINATIONS",
    "NotifyReceived",
    "Subscription",
    "SubscriptionChanged",
    "SubscriptionEvent",
    "SubscriptionKey",
    "SubscriptionSettings",
    "SubscriptionState",
    "SubscriptionStatus",
]
