"""The registration client of one profile (RFC 3261 §10), as a sans-I/O state machine.

It holds what is a registration's own: our binding and its Contact parameters, the bindings the
registrar lists, one REGISTER at a time (§10.2) with the others queued, and ``Contact: *``. How a
REGISTER is sent, challenged, retried and refreshed (423 Min-Expires, Retry-After or backoff,
refresh at 90 % of the granted expiry) is decided in :mod:`.client`. Rejected credentials
(a fresh answer challenged again, or 403) and 404 stop: resending them would only get the
client banned.

Unregister-all runs in two explicit phases, :attr:`Operation.COUNT_BINDINGS` (a REGISTER
without Contact, so the event can say how many bindings went) and
:attr:`Operation.REMOVE_ALL` (``Contact: *``). It works whether the registration is enabled or
not; an enabled registration registers again afterwards (enabled means registered).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from enum import StrEnum
import random
from typing import Final, override

from .auth import DigestClient
from .backoff import BackoffPolicy
from .client import (
    Client,
    ClientStatus,
    Failure,
    FailureReason,
    RequestIds,
    granted_expires,
    readable,
    refresh_time,
)
from .errors import LocalProtocolError, RemoteProtocolError
from .grammar import Params
from .headers import STAR, NameAddr
from .message import Request, Response
from .uri import SipUri


class RegistrationState(StrEnum):
    """Where a registration stands; the values are what the entities show."""

    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    UNREGISTERING = "unregistering"
    FAILED = "failed"


class Operation(StrEnum):
    """What a REGISTER in flight is for."""

    REGISTER = "register"
    UNREGISTER = "unregister"
    QUERY = "query"
    COUNT_BINDINGS = "count_bindings"
    REMOVE_ALL = "remove_all"


@dataclass(frozen=True, slots=True)
class Binding:
    """One contact bound to the address of record, as the registrar reported it."""

    contact: str
    expires: int | None
    q: float | None = None
    ours: bool = False


@dataclass(frozen=True, slots=True)
class RegistrationSettings:
    """What a registration sends; all optional parts are off by default."""

    aor: SipUri
    request_uri: SipUri
    expires: int = 3600
    display_name: str | None = None
    contact_q: float | None = None
    instance_id: str | None = None
    """A URN (``urn:uuid:...``) sent as ``+sip.instance`` (RFC 5626)."""
    reg_id: int | None = None
    supported: tuple[str, ...] = ()
    """Option tags for a ``Supported`` header, e.g. ``("path", "outbound")``."""


@dataclass(frozen=True, slots=True)
class RegistrationStatus(ClientStatus):
    """A snapshot of everything a user may want to see about the registration."""

    state: RegistrationState
    reason_phrase: str | None = None
    contact: str | None = None
    public_address: tuple[str, int] | None = None
    """Our address as the registrar saw it (Via ``received``/``rport``)."""
    bindings: tuple[Binding, ...] = ()


@dataclass(frozen=True, slots=True)
class RegistrationChanged:
    """The registration's status changed (state, refresh, failure...)."""

    status: RegistrationStatus


@dataclass(frozen=True, slots=True)
class BindingsListed:
    """The answer to a bindings query: every contact bound to the AOR."""

    bindings: tuple[Binding, ...]


@dataclass(frozen=True, slots=True)
class AllBindingsRemoved:
    """``Contact: *`` succeeded; ``count`` bindings existed just before."""

    count: int


@dataclass(frozen=True, slots=True)
class OperationFailed:
    """A query or unregister-all did not succeed."""

    operation: Operation
    reason: FailureReason
    status_code: int | None = None


RegistrationEvent = RegistrationChanged | BindingsListed | AllBindingsRemoved | OperationFailed

_ONE_OFF = frozenset({Operation.QUERY, Operation.COUNT_BINDINGS, Operation.REMOVE_ALL})
"""Operations that report by an event of their own and leave the registration's state alone."""


class Registration(Client[Operation, RegistrationStatus, RegistrationEvent]):
    """Keeps one address of record registered at one registrar."""

    EXPIRING = frozenset({Operation.REGISTER})

    def __init__(
        self,
        settings: RegistrationSettings,
        digest: DigestClient,
        *,
        call_id: str,
        from_tag: str,
        backoff: BackoffPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Create an idle registration; ``register()`` starts it."""
        super().__init__(
            digest,
            settings.expires,
            RegistrationStatus(RegistrationState.UNREGISTERED),
            RegistrationChanged,
            backoff=backoff,
            rng=rng,
        )
        self.settings: Final = settings
        # Text written into every REGISTER, made once: the settings never change.
        self._address_of_record = str(NameAddr(settings.aor, settings.display_name))
        self._request_uri = str(settings.request_uri)
        self._contact_params = _contact_params(settings)
        self._ids = RequestIds(call_id, from_tag)
        # The contact as text, and as our Contact field with its parameters, made when it is set.
        self._contact_text: str | None = None
        self._contact_field = ""
        self._stale_contact: SipUri | None = None
        self._queue: deque[Operation] = deque()
        self._removal_count = 0

    @property
    def state(self) -> RegistrationState:
        """The current state."""
        return self._status.state

    @property
    @override
    def call_id(self) -> str:
        """The Call-ID of every REGISTER this registration sends."""
        return self._ids.call_id

    @property
    def registered(self) -> bool:
        """Whether our binding is in place."""
        return self._status.state is RegistrationState.REGISTERED

    @property
    def settled(self) -> bool:
        """Whether it is registered, or not trying to be (disabled, or given up)."""
        status = self._status
        return (
            not self._enabled
            or status.state is RegistrationState.REGISTERED
            or (status.state is RegistrationState.FAILED and status.retry_at is None)
        )

    # -- commands ------------------------------------------------------------------------------

    @override
    def set_contact(self, contact: SipUri) -> None:
        """Use ``contact`` from now on; a registered binding is moved to it at once."""
        previous = self._contact
        if contact != previous:
            self._contact_text = str(contact)
            self._contact_field = str(NameAddr(contact, params=self._contact_params))
            # The address the registrar saw belongs to the old flow; the next answer tells anew.
            self._set_status(replace(self._status, public_address=None))
        super().set_contact(contact)
        if (
            contact != previous
            and previous is not None
            and self._enabled
            and self.state is RegistrationState.REGISTERED
        ):
            self._stale_contact = previous
            self._submit(Operation.REGISTER)

    def register(self) -> None:
        """Register (again) now and keep the registration refreshed."""
        self._enabled = True
        self._backoff.reset()
        self._submit(Operation.REGISTER)

    def unregister(self) -> None:
        """Remove our binding (Expires 0) and stay unregistered."""
        was_bound = self.state in (RegistrationState.REGISTERED, RegistrationState.REGISTERING)
        self._enabled = False
        self._queue.clear()
        self._drop_held()
        if was_bound or self._pending is not None:
            self._submit(Operation.UNREGISTER)
        else:
            self._set_status(RegistrationStatus(RegistrationState.UNREGISTERED))

    def unregister_all(self) -> None:
        """Remove every binding of the AOR, ours and other devices' (``Contact: *``).

        An enabled registration registers again once they are gone; a disabled one stays
        unregistered.
        """
        self._queue.clear()
        self._submit(Operation.COUNT_BINDINGS)

    def query_bindings(self) -> None:
        """Ask the registrar for the current bindings (a REGISTER without Contact)."""
        self._submit(Operation.QUERY)

    @override
    def discard(self) -> None:
        """Forget the registration without sending anything (the binding expires by itself)."""
        self._queue.clear()
        super().discard()

    # -- the client mechanism's questions ------------------------------------------------------

    @override
    def _retry(self, now: float) -> None:
        self._set_status(replace(self._status, refresh_at=None, retry_at=None))
        self._submit(Operation.REGISTER)

    _refresh = _retry

    def _submit(self, operation: Operation) -> None:
        """Send now, or after the REGISTER in flight (RFC 3261 §10.2: one at a time)."""
        pending = self._pending
        if pending is not None:
            if pending.request is None and pending.operation is operation:
                return  # the same REGISTER already waits for a flow
            if operation not in self._queue:
                self._queue.append(operation)
            return
        if operation in self._queue:
            self._queue.remove(operation)
        if operation is Operation.REGISTER:
            if not self._enabled:
                return
            state = self.state
            self._set_status(
                replace(
                    self._status,
                    state=state
                    if state is RegistrationState.REGISTERED
                    else RegistrationState.REGISTERING,
                    refresh_at=None,
                    retry_at=None,
                )
            )
        elif operation is Operation.UNREGISTER:
            self._set_status(
                RegistrationStatus(RegistrationState.UNREGISTERING, contact=self._status.contact)
            )
        self._send(operation)

    def _next_from_queue(self) -> None:
        if self._pending is None and self._queue:
            self._submit(self._queue.popleft())

    @override
    def _build(self, operation: Operation) -> Request:
        aor = self._address_of_record
        fields = self._ids.fields("REGISTER", aor, aor)
        if operation is Operation.REGISTER:
            if self._contact is None:
                raise LocalProtocolError("no Contact address is known yet")
            contacts = [self._contact_field]
            if self._stale_contact is not None:
                contacts.append(f"<{self._stale_contact}>;expires=0")
            fields += [("Contact", ", ".join(contacts)), ("Expires", str(self._expires))]
        elif operation is Operation.UNREGISTER:
            if self._contact_text is not None:
                fields.append(("Contact", f"<{self._contact_text}>"))
            fields.append(("Expires", "0"))
        elif operation is Operation.REMOVE_ALL:
            fields += [("Contact", STAR), ("Expires", "0")]
        if self.settings.supported:
            fields.append(("Supported", ", ".join(self.settings.supported)))
        return self._request(
            "REGISTER", self.settings.request_uri, fields, uri_text=self._request_uri
        )

    @override
    def _succeeded(self, operation: Operation, response: Response, now: float) -> None:
        bindings = self._bindings(response)
        if operation is Operation.COUNT_BINDINGS:
            self._removal_count = len(bindings)
            self._send(Operation.REMOVE_ALL)
            return
        if operation is Operation.REGISTER:
            self._stale_contact = None
            self._backoff.reset()
            granted = self._granted_expires(response, bindings)
            self._set_status(
                RegistrationStatus(
                    RegistrationState.REGISTERED,
                    status_code=response.status,
                    reason_phrase=response.reason,
                    expires=granted,
                    refresh_at=refresh_time(granted, now),
                    contact=self._contact_text,
                    public_address=_public_address(response),
                    bindings=bindings,
                )
            )
        elif operation is Operation.QUERY:
            self._events.append(BindingsListed(bindings))
        else:
            if operation is Operation.REMOVE_ALL:
                self._events.append(AllBindingsRemoved(self._removal_count))
                bindings = ()
            self._set_status(
                RegistrationStatus(
                    RegistrationState.UNREGISTERED,
                    status_code=response.status,
                    reason_phrase=response.reason,
                    bindings=bindings,
                )
            )
            if operation is Operation.REMOVE_ALL and self._enabled:
                self._submit(Operation.REGISTER)
        self._next_from_queue()

    @override
    def _failed(self, operation: Operation, failure: Failure, now: float) -> None:
        if operation in _ONE_OFF:
            reported = Operation.QUERY if operation is Operation.QUERY else Operation.REMOVE_ALL
            self._events.append(OperationFailed(reported, failure.reason, failure.status_code))
        elif operation is Operation.UNREGISTER:
            # The binding expires by itself; there is nothing to retry.
            self._set_status(
                RegistrationStatus(
                    RegistrationState.UNREGISTERED,
                    reason=failure.reason,
                    status_code=failure.status_code,
                    reason_phrase=failure.reason_phrase,
                )
            )
        else:
            self._set_status(
                RegistrationStatus(
                    RegistrationState.FAILED,
                    reason=failure.reason,
                    status_code=failure.status_code,
                    reason_phrase=failure.reason_phrase,
                    retry_at=self._retry_at(failure, now),
                    contact=self._status.contact,
                    public_address=self._status.public_address,
                )
            )
        self._next_from_queue()

    def _bindings(self, response: Response) -> tuple[Binding, ...]:
        try:
            contacts = response.contacts
            header_expires = response.expires
        except RemoteProtocolError:
            return ()
        if contacts == STAR:
            return ()
        ours = self._contact_text
        result: list[Binding] = []
        for contact in contacts:
            expires_text = contact.param("expires")
            uri = str(contact.uri)
            result.append(
                Binding(
                    contact=uri,
                    expires=int(expires_text)
                    if expires_text and expires_text.isdigit()
                    else header_expires,
                    q=_float_or_none(contact.param("q")),
                    ours=ours is not None and _same_contact(uri, ours),
                )
            )
        return tuple(result)

    def _granted_expires(self, response: Response, bindings: tuple[Binding, ...]) -> int:
        for binding in bindings:
            if binding.ours and binding.expires is not None:
                return binding.expires
        return granted_expires(response, self._expires)


def _public_address(response: Response) -> tuple[str, int] | None:
    """Our address as the server saw it, from the top Via's ``received`` and ``rport``."""
    via = readable(lambda: response.top_via)
    if via is None:
        return None
    host = via.received or via.host
    port = via.rport or via.port
    return (host, port) if port is not None else None


def _same_contact(theirs: str, ours: str) -> bool:
    """Registrars may reorder or drop URI parameters; compare up to the parameters."""
    return theirs.split(";", 1)[0].lower() == ours.split(";", 1)[0].lower()


def _float_or_none(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _contact_params(settings: RegistrationSettings) -> Params:
    """The parameters our Contact carries: q, +sip.instance and reg-id as configured."""
    params: list[tuple[str, str | None]] = []
    if settings.contact_q is not None:
        params.append(("q", f"{settings.contact_q:.3g}"))
    if settings.instance_id is not None:
        params.append(("+sip.instance", f"<{settings.instance_id}>"))
    if settings.reg_id is not None:
        params.append(("reg-id", str(settings.reg_id)))
    return tuple(params)


__all__ = [
    "AllBindingsRemoved",
    "Binding",
    "BindingsListed",
    "FailureReason",
    "Operation",
    "OperationFailed",
    "Registration",
    "RegistrationChanged",
    "RegistrationEvent",
    "RegistrationSettings",
    "RegistrationState",
    "RegistrationStatus",
]
