"""Our own presence, published with PUBLISH (RFC 3903), as a sans-I/O state machine.

The first PUBLISH carries the document; the presence server answers with a ``SIP-ETag`` that
names the published state. Refreshes at 90 % of the granted expiry carry ``SIP-If-Match`` and
no body, a new state carries both, removal carries ``SIP-If-Match`` and ``Expires: 0``. One
PUBLISH is in flight at a time, since each answer brings the entity-tag the next one needs.

It holds what is a publication's own: the document, SIP-ETag and SIP-If-Match, and 412 (the
server lost our entity-tag: the document is published anew). How a PUBLISH is sent, challenged,
retried and refreshed (423 Min-Expires, Retry-After or backoff, refresh at 90 % of the granted
expiry) is decided in :mod:`.client`. A document chosen while a PUBLISH is in flight is queued
and follows its answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
import random
from typing import override

from .auth import DigestClient
from .backoff import BackoffPolicy
from .client import Client, ClientStatus, Failure, RequestIds, granted_expires, refresh_time
from .documents.pidf import MyPresence, build_pidf
from .errors import LocalProtocolError
from .headers import NameAddr
from .message import Request, Response
from .uri import SipUri

PIDF = "application/pidf+xml"


class PublicationState(StrEnum):
    """Where our publication stands; the values are what the entities show."""

    UNPUBLISHED = "unpublished"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    UNPUBLISHING = "unpublishing"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PublicationSettings:
    """What a publication sends."""

    aor: SipUri
    display_name: str | None = None
    expires: int = 3600


@dataclass(frozen=True, slots=True)
class PublicationStatus(ClientStatus):
    """A snapshot of our publication."""

    state: PublicationState
    presence: MyPresence | None = None
    note: str | None = None


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


class Publication(Client[Operation, PublicationStatus, PublicationChanged]):
    """Keeps our presence document published at the presence server."""

    EXPIRING = frozenset({Operation.INITIAL, Operation.MODIFY, Operation.REFRESH})

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
        super().__init__(
            digest,
            settings.expires,
            PublicationStatus(PublicationState.UNPUBLISHED),
            PublicationChanged,
            backoff=backoff,
            rng=rng,
        )
        self.settings = settings
        self._ids = RequestIds(call_id=new_token(16), from_tag=new_token(8))
        self._tuple_id = "t" + new_token(4)
        self._etag: str | None = None
        self._document: bytes | None = None
        self._queued = False

    @property
    def state(self) -> PublicationState:
        """The current state."""
        return self._status.state

    @property
    def etag(self) -> str | None:
        """The entity-tag of the published state, or None."""
        return self._etag

    # -- commands ------------------------------------------------------------------------------

    def publish(self, presence: MyPresence, note: str | None = None) -> None:
        """Publish ``presence`` (and ``note``) now and keep it published.

        Raises LocalProtocolError, changing nothing, when the note cannot be written in XML.
        """
        self._document = build_pidf(
            str(self.settings.aor),
            open=presence.open,
            activity=presence.activity,
            note=note,
            tuple_id=self._tuple_id,
        )
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
            self._queued = True
        else:
            self._send_document()

    def unpublish(self) -> None:
        """Remove our published state (Expires 0) and stop refreshing."""
        self._enabled = False
        self._queued = False
        self._drop_held()
        if self._pending is None and self._etag is None:
            self._set_status(PublicationStatus(PublicationState.UNPUBLISHED))
            return
        # A PUBLISH in flight is removed once its answer brings the entity-tag.
        self._set_status(PublicationStatus(PublicationState.UNPUBLISHING))
        if self._pending is None:
            self._send(Operation.REMOVE)

    @override
    def restart(self, now: float) -> None:
        """Publish the document anew at once (the flow or the registration came back)."""
        if self._enabled and self._document is not None:
            self._pending = None
            self._etag = None
            self._backoff.reset()
            self._send(Operation.INITIAL)

    @override
    def discard(self) -> None:
        """Forget the publication without sending anything."""
        self._etag = None
        super().discard()

    # -- the client mechanism's questions ------------------------------------------------------

    @override
    def _retry(self, now: float) -> None:
        self._set_status(replace(self._status, retry_at=None, state=PublicationState.PUBLISHING))
        self._send_document()

    @override
    def _refresh(self, now: float) -> None:
        self._set_status(replace(self._status, refresh_at=None))
        self._send(Operation.REFRESH if self._etag else Operation.INITIAL)

    @override
    def _succeeded(self, operation: Operation, response: Response, now: float) -> None:
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
        granted = granted_expires(response, self._expires)
        self._set_status(
            replace(
                self._status,
                state=PublicationState.PUBLISHED,
                reason=None,
                status_code=response.status,
                expires=granted,
                refresh_at=refresh_time(granted, now),
                retry_at=None,
            )
        )
        if self._queued:
            self._send_document()

    @override
    def _failed(self, operation: Operation, failure: Failure, now: float) -> None:
        if failure.status_code == 412:
            # The server no longer knows our entity-tag: publish the whole state again.
            self._etag = None
            if operation is not Operation.REMOVE and self._enabled:
                self._send(Operation.INITIAL)
                return
        if not self._enabled or failure.status_code == 412:
            self._set_status(PublicationStatus(PublicationState.UNPUBLISHED))
            return
        retry_at = self._retry_at(failure, now)
        if retry_at is None:
            self._enabled = False
        self._set_status(
            replace(
                self._status,
                state=PublicationState.FAILED,
                reason=failure.reason,
                status_code=failure.status_code,
                refresh_at=None,
                retry_at=retry_at,
            )
        )

    # -- internals -----------------------------------------------------------------------------

    def _send_document(self) -> None:
        self._send(Operation.MODIFY if self._etag else Operation.INITIAL)

    @override
    def _build(self, operation: Operation) -> Request:
        settings = self.settings
        aor = str(NameAddr(settings.aor, settings.display_name))
        fields = self._ids.fields("PUBLISH", aor, aor)
        fields.append(("Event", "presence"))
        fields.append(("Expires", "0" if operation is Operation.REMOVE else str(self._expires)))
        if operation is not Operation.INITIAL:
            if self._etag is None:
                raise LocalProtocolError("no entity-tag to refer to")
            fields.append(("SIP-If-Match", self._etag))
        body = b""
        if operation in (Operation.INITIAL, Operation.MODIFY):
            if self._document is None:
                raise LocalProtocolError("nothing to publish")
            body = self._document
            fields.append(("Content-Type", PIDF))
            self._queued = False  # this request carries the newest document
        return self._request("PUBLISH", settings.aor, fields, body)


__all__ = [
    "Publication",
    "PublicationChanged",
    "PublicationSettings",
    "PublicationState",
    "PublicationStatus",
]
