"""Our own presence, published with PUBLISH (RFC 3903), as a sans-I/O state machine.

The first PUBLISH carries the document; the presence server answers with a ``SIP-ETag`` that
names the published state. Refreshes at 90 % of the granted expiry carry ``SIP-If-Match`` and
no body, a new state carries both, removal carries ``SIP-If-Match`` and ``Expires: 0``. One
PUBLISH is in flight at a time, since each answer brings the entity-tag the next one needs.

Policy: 412 (the server lost our entity-tag) publishes the document anew; 423 adopts
Min-Expires; 489 stops (presence is not offered); 408/480/5xx, timeouts and transport errors
retry after Retry-After or backoff; rejected credentials, 403 and other 4xx stop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
import random

from .auth import ChallengeOutcome, DigestClient
from .backoff import Backoff, BackoffPolicy
from .documents.pidf import MyPresence, build_pidf
from .errors import LocalProtocolError, RemoteProtocolError
from .headers import Headers, NameAddr
from .message import Request, Response
from .outbox import Outbox, earliest
from .subscription import answers, challenge_outcome
from .transaction import ClientTransactionFailure
from .uri import SipUri

REFRESH_RATIO = 0.9
MAX_INTERVAL_RETRIES = 3
PIDF = "application/pidf+xml"


class PublicationState(StrEnum):
    """Where our publication stands; the values are what the entities show."""

    UNPUBLISHED = "unpublished"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    UNPUBLISHING = "unpublishing"
    FAILED = "failed"


class PublicationReason(StrEnum):
    """Why a publication failed."""

    AUTH_FAILED = "auth_failed"
    FORBIDDEN = "forbidden"
    NOT_OFFERED = "not_offered"
    REJECTED = "rejected"
    TIMEOUT = "timeout"
    TRANSPORT_ERROR = "transport_error"
    SERVER_ERROR = "server_error"


@dataclass(frozen=True, slots=True)
class PublicationSettings:
    """What a publication sends."""

    aor: SipUri
    display_name: str | None = None
    expires: int = 3600


@dataclass(frozen=True, slots=True)
class PublicationStatus:
    """A snapshot of our publication."""

    state: PublicationState
    presence: MyPresence | None = None
    note: str | None = None
    reason: PublicationReason | None = None
    status_code: int | None = None
    expires: int | None = None
    refresh_at: float | None = None
    retry_at: float | None = None


@dataclass(frozen=True, slots=True)
class PublicationChanged:
    """Our publication's status changed."""

    status: PublicationStatus


class Operation(StrEnum):
    """What a PUBLISH in flight is for (RFC 3903 §4.1, table 1)."""

    INITIAL = "initial"
    MODIFY = "modify"
    REFRESH = "refresh"
    REMOVE = "remove"


@dataclass(slots=True)
class _Pending:
    operation: Operation
    request: Request
    interval_retries: int = 0


class Publication(Outbox[PublicationChanged]):
    """Keeps our presence document published at the presence server."""

    def __init__(
        self,
        settings: PublicationSettings,
        digest: DigestClient,
        *,
        new_token: Callable[[int], str],
        backoff: BackoffPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Create an idle publication; ``publish()`` starts it."""
        super().__init__()
        self.settings = settings
        self._digest = digest
        self._call_id = new_token(16)
        self._from_tag = new_token(8)
        self._tuple_id = "t" + new_token(4)
        self._cseq = 0
        self._backoff = Backoff(backoff, rng)
        self._expires = settings.expires
        self._etag: str | None = None
        self._document: bytes | None = None
        self._changed = False
        self._enabled = False
        self._pending: _Pending | None = None
        self._status = PublicationStatus(PublicationState.UNPUBLISHED)

    @property
    def status(self) -> PublicationStatus:
        """The current snapshot."""
        return self._status

    @property
    def state(self) -> PublicationState:
        """The current state."""
        return self._status.state

    @property
    def etag(self) -> str | None:
        """The entity-tag of the published state, or None."""
        return self._etag

    @property
    def deadline(self) -> float | None:
        """When ``on_timer`` must run next."""
        if self._pending is not None:
            return None
        return earliest(self._status.refresh_at, self._status.retry_at)

    # -- commands ------------------------------------------------------------------------------

    def publish(self, presence: MyPresence, note: str | None = None) -> None:
        """Publish ``presence`` (and ``note``) now and keep it published.

        Raises LocalProtocolError, changing nothing, when the note cannot be written in XML.
        """
        document = build_pidf(
            str(self.settings.aor),
            open=presence.open,
            activity=presence.activity,
            note=note,
            tuple_id=self._tuple_id,
        )
        self._document = document
        self._enabled = True
        self._backoff.reset()
        self._set_status(
            replace(
                self._status,
                state=PublicationState.PUBLISHING
                if self.state is not PublicationState.PUBLISHED
                else PublicationState.PUBLISHED,
                presence=presence,
                note=note,
                reason=None,
                refresh_at=None,
                retry_at=None,
            )
        )
        if self._pending is not None:
            self._changed = True
        else:
            self._send(Operation.MODIFY if self._etag else Operation.INITIAL)

    def unpublish(self) -> None:
        """Remove our published state (Expires 0) and stop refreshing."""
        self._enabled = False
        self._changed = False
        if self._pending is not None:
            self._set_status(PublicationStatus(PublicationState.UNPUBLISHING))
        elif self._etag is not None:
            self._set_status(PublicationStatus(PublicationState.UNPUBLISHING))
            self._send(Operation.REMOVE)
        else:
            self._set_status(PublicationStatus(PublicationState.UNPUBLISHED))

    def restart(self) -> None:
        """Publish the document anew at once (the flow or the registration came back)."""
        if self._enabled and self._document is not None:
            self._pending = None
            self._etag = None
            self._backoff.reset()
            self._send(Operation.INITIAL)

    def discard(self) -> None:
        """Forget the publication without sending anything."""
        self._enabled = False
        self._pending = None
        self._etag = None
        self._set_status(PublicationStatus(PublicationState.UNPUBLISHED))

    def resend_authorized(self) -> None:
        """Send the challenged request again with the credentials the user agent now holds."""
        if self._pending is not None:
            self._resend(self._pending)

    # -- feedback from the user agent ----------------------------------------------------------

    def on_timer(self, now: float) -> None:
        """A refresh or a retry is due."""
        status = self._status
        if self._pending is not None or not self._enabled:
            return
        if status.retry_at is not None and now >= status.retry_at:
            self._set_status(replace(status, retry_at=None, state=PublicationState.PUBLISHING))
            self._send(Operation.MODIFY if self._etag else Operation.INITIAL)
        elif status.refresh_at is not None and now >= status.refresh_at:
            self._set_status(replace(status, refresh_at=None))
            self._send(Operation.REFRESH if self._etag else Operation.INITIAL)

    def on_response(self, response: Response, now: float) -> None:
        """A response to our PUBLISH arrived (provisional ones are ignored)."""
        pending = self._pending
        if pending is None or response.status < 200 or not answers(pending.request, response):
            return
        status = response.status
        if status in (401, 407):
            if challenge_outcome(self._digest, response) in (
                ChallengeOutcome.ANSWERED,
                ChallengeOutcome.STALE,
            ):
                self._resend(pending)
                return
            self._pending = None
            self._fail(PublicationReason.AUTH_FAILED, now, response, retry=False)
            return
        if status == 423 and pending.operation is not Operation.REMOVE:
            self._on_interval_too_brief(pending, response, now)
            return
        self._pending = None
        if 200 <= status < 300:
            self._digest.request_succeeded()
            self._on_success(pending.operation, response, now)
        elif status == 412:
            # The server no longer knows our entity-tag: publish the whole state again.
            self._etag = None
            if pending.operation is Operation.REMOVE or not self._enabled:
                self._set_status(PublicationStatus(PublicationState.UNPUBLISHED))
            else:
                self._send(Operation.INITIAL)
        elif not self._enabled:
            self._set_status(PublicationStatus(PublicationState.UNPUBLISHED))
        elif status == 489:
            self._fail(PublicationReason.NOT_OFFERED, now, response, retry=False)
        elif status == 403:
            self._fail(PublicationReason.FORBIDDEN, now, response, retry=False)
        elif status in (408, 480) or 500 <= status < 600:
            try:
                retry_after = response.retry_after
            except RemoteProtocolError:
                retry_after = None
            reason = PublicationReason.TIMEOUT if status == 408 else PublicationReason.SERVER_ERROR
            self._fail(reason, now, response, retry=True, retry_after=retry_after)
        else:
            self._fail(PublicationReason.REJECTED, now, response, retry=False)

    def on_failure(self, failure: ClientTransactionFailure, request: Request, now: float) -> None:
        """Our PUBLISH ``request`` timed out or its flow broke."""
        pending = self._pending
        if pending is None or pending.request is not request:
            return
        self._pending = None
        if not self._enabled:
            self._set_status(PublicationStatus(PublicationState.UNPUBLISHED))
            return
        reason = (
            PublicationReason.TIMEOUT
            if failure is ClientTransactionFailure.TIMEOUT
            else PublicationReason.TRANSPORT_ERROR
        )
        self._fail(reason, now, None, retry=True)

    # -- internals -----------------------------------------------------------------------------

    def _on_success(self, operation: Operation, response: Response, now: float) -> None:
        if operation is Operation.REMOVE:
            self._etag = None
            if self._enabled:
                # Published again while the removal was on its way: keep showing what was chosen.
                status = self._status
                self._set_status(
                    PublicationStatus(
                        PublicationState.PUBLISHING, presence=status.presence, note=status.note
                    )
                )
                self._send(Operation.INITIAL)
            else:
                self._set_status(PublicationStatus(PublicationState.UNPUBLISHED))
            return
        etag = response.headers.get("SIP-ETag")
        if etag:
            self._etag = etag
        if not self._enabled:
            self._set_status(PublicationStatus(PublicationState.UNPUBLISHING))
            self._send(Operation.REMOVE)
            return
        self._backoff.reset()
        try:
            granted = response.expires
        except RemoteProtocolError:
            granted = None
        granted = self._expires if granted is None else granted
        self._set_status(
            replace(
                self._status,
                state=PublicationState.PUBLISHED,
                reason=None,
                status_code=response.status,
                expires=granted,
                refresh_at=now + max(granted * REFRESH_RATIO, 1.0),
                retry_at=None,
            )
        )
        if self._changed:
            self._changed = False
            self._send(Operation.MODIFY if self._etag else Operation.INITIAL)

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
            self._fail(PublicationReason.REJECTED, now, response, retry=False)
            return
        self._expires = minimum
        pending.interval_retries += 1
        self._resend(pending)

    def _send(self, operation: Operation) -> None:
        if operation in (Operation.INITIAL, Operation.MODIFY):
            self._changed = False
        self._pending = _Pending(operation, self._build(operation))
        self._outbox.append(self._pending.request)

    def _resend(self, pending: _Pending) -> None:
        pending.request = self._build(pending.operation)
        self._pending = pending
        self._outbox.append(pending.request)

    def _build(self, operation: Operation) -> Request:
        settings = self.settings
        self._cseq += 1
        aor = NameAddr(settings.aor, settings.display_name)
        headers = Headers(
            [
                ("From", str(replace(aor, params=(("tag", self._from_tag),)))),
                ("To", str(aor)),
                ("Call-ID", self._call_id),
                ("CSeq", f"{self._cseq} PUBLISH"),
                ("Event", "presence"),
                ("Expires", "0" if operation is Operation.REMOVE else str(self._expires)),
            ]
        )
        if operation is not Operation.INITIAL:
            if self._etag is None:
                raise LocalProtocolError("no entity-tag to refer to")
            headers.add("SIP-If-Match", self._etag)
        body = b""
        if operation in (Operation.INITIAL, Operation.MODIFY):
            if self._document is None:
                raise LocalProtocolError("nothing to publish")
            body = self._document
            headers.add("Content-Type", PIDF)
        uri = str(settings.aor)
        for name, value in self._digest.authorization_headers("PUBLISH", uri, body):
            headers.add(name, value)
        return Request("PUBLISH", settings.aor, headers, body)

    def _fail(
        self,
        reason: PublicationReason,
        now: float,
        response: Response | None,
        *,
        retry: bool,
        retry_after: int | None = None,
    ) -> None:
        retry_at: float | None = None
        if retry and self._enabled:
            delay = retry_after if retry_after is not None else self._backoff.next_delay()
            retry_at = now + delay
        else:
            self._enabled = False
        self._set_status(
            replace(
                self._status,
                state=PublicationState.FAILED,
                reason=reason,
                status_code=response.status if response is not None else None,
                refresh_at=None,
                retry_at=retry_at,
            )
        )

    def _set_status(self, status: PublicationStatus) -> None:
        if status != self._status:
            self._status = status
            self._events.append(PublicationChanged(status))


__all__ = [
    "Publication",
    "PublicationChanged",
    "PublicationReason",
    "PublicationSettings",
    "PublicationState",
    "PublicationStatus",
]
