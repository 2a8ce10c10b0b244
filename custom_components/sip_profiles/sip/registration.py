"""The registration client of one profile (RFC 3261 §10), as a sans-I/O state machine.

It decides *what* to send and *when*; the user agent owns the transactions that carry its
requests and feeds back their responses and failures; time comes in as ``now`` arguments.

Policy in one place:
- refresh at 90 % of the expiry the registrar granted (our Contact's ``expires``, else Expires);
- 423 adopts Min-Expires and retries at once;
- 408/480/5xx, timeouts and transport errors retry after Retry-After, else after a capped,
  jittered exponential backoff;
- rejected credentials (a fresh answer challenged again, or 403) and 404 stop: resending them
  would only get the client banned.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from enum import StrEnum
import random
from typing import Final

from .auth import ChallengeOutcome, DigestClient
from .backoff import Backoff, BackoffPolicy
from .errors import LocalProtocolError, RemoteProtocolError
from .grammar import Params
from .headers import STAR, Headers, NameAddr
from .message import Request, Response
from .outbox import Outbox, earliest
from .transaction import ClientTransactionFailure
from .uri import SipUri

REFRESH_RATIO = 0.9
MAX_INTERVAL_RETRIES = 3
"""How many 423 answers in a row are adopted before the registrar is considered broken."""


class RegistrationState(StrEnum):
    """Where a registration stands; the values are what the entities show."""

    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    UNREGISTERING = "unregistering"
    FAILED = "failed"


class FailureReason(StrEnum):
    """Why a registration failed; the values name the problem for users and automations."""

    AUTH_FAILED = "auth_failed"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    TRANSPORT_ERROR = "transport_error"
    SERVER_ERROR = "server_error"
    REJECTED = "rejected"

    @property
    def retryable(self) -> bool:
        """Whether the client tries again by itself."""
        return self in (
            FailureReason.TIMEOUT,
            FailureReason.TRANSPORT_ERROR,
            FailureReason.SERVER_ERROR,
        )


class Operation(StrEnum):
    """What a REGISTER in flight is for."""

    REGISTER = "register"
    UNREGISTER = "unregister"
    QUERY = "query"
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
class RegistrationStatus:
    """A snapshot of everything a user may want to see about the registration."""

    state: RegistrationState
    reason: FailureReason | None = None
    status_code: int | None = None
    reason_phrase: str | None = None
    expires: int | None = None
    """Seconds the registrar granted in the last successful REGISTER."""
    refresh_at: float | None = None
    retry_at: float | None = None
    """When a failed registration tries again; None when it gave up."""
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


@dataclass(slots=True)
class _Pending:
    """A REGISTER handed to the user agent and not yet answered."""

    operation: Operation
    request: Request
    interval_retries: int = 0
    removal_count: int | None = None
    """For REMOVE_ALL: None while the bindings are being counted, then how many there were."""


@dataclass(slots=True)
class _Dialog:
    """Call-ID, tag and CSeq kept across every REGISTER of this registration (§10.2)."""

    call_id: str
    from_tag: str
    cseq: int = field(default=0)


class Registration(Outbox[RegistrationEvent]):
    """Keeps one address of record registered at one registrar."""

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
        super().__init__()
        self.settings: Final = settings
        # Text written into every REGISTER, made once: the settings never change.
        self._address_of_record = str(NameAddr(settings.aor, settings.display_name))
        self._request_uri = str(settings.request_uri)
        self._contact_params = _contact_params(settings)
        self._digest = digest
        self._dialog = _Dialog(call_id=call_id, from_tag=from_tag)
        self._backoff = Backoff(backoff, rng)
        self._expires = settings.expires
        self._contact: SipUri | None = None
        # The contact as text, and as our Contact field with its parameters, made when it is set.
        self._contact_text: str | None = None
        self._contact_field = ""
        self._stale_contact: SipUri | None = None
        self._status = RegistrationStatus(RegistrationState.UNREGISTERED)
        self._enabled = False
        self._pending: _Pending | None = None
        self._queue: deque[Operation] = deque()

    # -- what the user agent reads -------------------------------------------------------------

    @property
    def status(self) -> RegistrationStatus:
        """The current snapshot."""
        return self._status

    @property
    def state(self) -> RegistrationState:
        """The current state."""
        return self._status.state

    @property
    def enabled(self) -> bool:
        """Whether the registration is meant to be kept up."""
        return self._enabled

    @property
    def call_id(self) -> str:
        """The Call-ID of every REGISTER this registration sends."""
        return self._dialog.call_id

    @property
    def deadline(self) -> float | None:
        """When ``on_timer`` must run next."""
        if self._pending is not None:
            return None
        return earliest(self._status.refresh_at, self._status.retry_at)

    # -- commands ------------------------------------------------------------------------------

    def set_contact(self, contact: SipUri) -> None:
        """Use ``contact`` from now on; a registered binding is moved to it at once."""
        if contact == self._contact:
            return
        previous, self._contact = self._contact, contact
        self._contact_text = str(contact)
        self._contact_field = str(NameAddr(contact, params=self._contact_params))
        # The address the registrar saw belongs to the old flow; the next answer tells the new one.
        self._set_status(replace(self._status, public_address=None))
        if self._enabled and previous is not None and self.state is RegistrationState.REGISTERED:
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
        if was_bound or self._pending is not None:
            self._submit(Operation.UNREGISTER)
        else:
            self._set_status(RegistrationStatus(RegistrationState.UNREGISTERED))

    def unregister_all(self) -> None:
        """Remove every binding of the AOR, ours and other devices' (``Contact: *``)."""
        self._enabled = False
        self._queue.clear()
        self._submit(Operation.REMOVE_ALL)

    def query_bindings(self) -> None:
        """Ask the registrar for the current bindings (a REGISTER without Contact)."""
        self._submit(Operation.QUERY)

    def discard(self) -> None:
        """Forget the registration without sending anything (the binding expires by itself)."""
        self._enabled = False
        self._queue.clear()
        self._pending = None
        self._set_status(RegistrationStatus(RegistrationState.UNREGISTERED))

    # -- feedback from the user agent ----------------------------------------------------------

    def on_timer(self, now: float) -> None:
        """A refresh or a retry is due."""
        status = self._status
        due = [t for t in (status.refresh_at, status.retry_at) if t is not None and t <= now]
        if due and self._pending is None and self._enabled:
            self._set_status(replace(status, refresh_at=None, retry_at=None))
            self._submit(Operation.REGISTER)

    def on_response(self, response: Response, now: float) -> None:
        """A final response to our REGISTER arrived (provisional ones are ignored)."""
        pending = self._pending
        if pending is None or response.status < 200:
            return
        if response.status in (401, 407):
            self._on_challenge(pending, response, now)
            return
        if response.status == 423 and pending.operation is Operation.REGISTER:
            self._on_interval_too_brief(pending, response, now)
            return
        self._pending = None
        if 200 <= response.status < 300:
            self._digest.request_succeeded()
            self._on_success(pending, response, now)
        else:
            self._on_rejected(pending.operation, response, now)
        self._next_from_queue()

    def on_failure(self, failure: ClientTransactionFailure, now: float) -> None:
        """Our REGISTER timed out or its flow broke."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        reason = (
            FailureReason.TIMEOUT
            if failure is ClientTransactionFailure.TIMEOUT
            else FailureReason.TRANSPORT_ERROR
        )
        self._fail(pending.operation, reason, now)
        self._next_from_queue()

    # -- internals -----------------------------------------------------------------------------

    def _submit(self, operation: Operation) -> None:
        """Send now, or after the REGISTER in flight (RFC 3261 §10.2: one at a time)."""
        if self._pending is not None:
            if operation not in self._queue:
                self._queue.append(operation)
            return
        self._send(operation)

    def _next_from_queue(self) -> None:
        if self._pending is None and self._queue:
            self._send(self._queue.popleft())

    def _send(self, operation: Operation) -> None:
        """Build and queue the REGISTER for ``operation``; REMOVE_ALL first counts the bindings."""
        if operation is Operation.REGISTER:
            if not self._enabled:
                return
            if self._contact is None:
                raise LocalProtocolError("no Contact address is known yet")
            self._set_status(
                replace(
                    self._status,
                    state=RegistrationState.REGISTERING
                    if self.state is not RegistrationState.REGISTERED
                    else RegistrationState.REGISTERED,
                    refresh_at=None,
                    retry_at=None,
                )
            )
        elif operation is Operation.UNREGISTER:
            self._set_status(
                RegistrationStatus(RegistrationState.UNREGISTERING, contact=self._status.contact)
            )
        self._queue_request(_Pending(operation, self._build(operation)))

    def _queue_request(self, pending: _Pending) -> None:
        self._pending = pending
        self._outbox.append(pending.request)

    def _build(self, operation: Operation, *, remove_all: bool = False) -> Request:
        settings = self.settings
        dialog = self._dialog
        dialog.cseq += 1
        fields = [
            ("From", f"{self._address_of_record};tag={dialog.from_tag}"),
            ("To", self._address_of_record),
            ("Call-ID", dialog.call_id),
            ("CSeq", f"{dialog.cseq} REGISTER"),
        ]
        if operation is Operation.REGISTER:
            if self._contact is None:
                raise LocalProtocolError("no Contact address is known yet")
            contacts = [self._contact_field]
            if self._stale_contact is not None:
                contacts.append(f"<{self._stale_contact}>;expires=0")
            fields.append(("Contact", ", ".join(contacts)))
            fields.append(("Expires", str(self._expires)))
        elif operation is Operation.UNREGISTER:
            if self._contact_text is not None:
                fields.append(("Contact", f"<{self._contact_text}>"))
            fields.append(("Expires", "0"))
        elif remove_all:
            fields.append(("Contact", STAR))
            fields.append(("Expires", "0"))
        if settings.supported:
            fields.append(("Supported", ", ".join(settings.supported)))
        fields += self._digest.authorization_headers("REGISTER", self._request_uri)
        return Request("REGISTER", settings.request_uri, Headers(fields))

    def _on_challenge(self, pending: _Pending, response: Response, now: float) -> None:
        name = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        try:
            outcome = self._digest.handle_challenge(response.status, response.headers.get_all(name))
        except RemoteProtocolError:
            outcome = ChallengeOutcome.UNSUPPORTED
        self._pending = None
        if outcome in (ChallengeOutcome.ANSWERED, ChallengeOutcome.STALE):
            self._resend(pending)
            return
        self._fail(pending.operation, FailureReason.AUTH_FAILED, now, response=response)
        self._next_from_queue()

    def _on_interval_too_brief(self, pending: _Pending, response: Response, now: float) -> None:
        self._pending = None
        try:
            minimum = response.min_expires
        except RemoteProtocolError:
            minimum = None
        if (
            minimum is None
            or minimum <= self._expires
            or pending.interval_retries >= MAX_INTERVAL_RETRIES
        ):
            self._fail(pending.operation, FailureReason.REJECTED, now, response=response)
            self._next_from_queue()
            return
        self._expires = minimum
        pending.interval_retries += 1
        self._resend(pending)

    def _resend(self, pending: _Pending) -> None:
        """The same operation again with a new CSeq (and whatever the challenge taught us)."""
        remove_all = pending.removal_count is not None
        pending.request = self._build(pending.operation, remove_all=remove_all)
        self._queue_request(pending)

    def _on_success(self, pending: _Pending, response: Response, now: float) -> None:
        operation = pending.operation
        bindings = self._bindings(response)
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
                    refresh_at=now + max(granted * REFRESH_RATIO, 1.0),
                    contact=self._contact_text,
                    public_address=_public_address(response),
                    bindings=bindings,
                )
            )
        elif operation is Operation.UNREGISTER:
            self._set_status(
                RegistrationStatus(
                    RegistrationState.UNREGISTERED,
                    status_code=response.status,
                    reason_phrase=response.reason,
                    bindings=bindings,
                )
            )
        elif operation is Operation.QUERY:
            self._events.append(BindingsListed(bindings))
        elif pending.removal_count is None:
            # The counting query of an unregister-all was answered: now remove them all.
            self._queue_request(
                _Pending(
                    Operation.REMOVE_ALL,
                    self._build(Operation.REMOVE_ALL, remove_all=True),
                    removal_count=len(bindings),
                )
            )
        else:
            self._events.append(AllBindingsRemoved(pending.removal_count))
            self._set_status(
                RegistrationStatus(
                    RegistrationState.UNREGISTERED,
                    status_code=response.status,
                    reason_phrase=response.reason,
                )
            )

    def _on_rejected(self, operation: Operation, response: Response, now: float) -> None:
        status = response.status
        retry_after: int | None = None
        if status == 403:
            reason = FailureReason.FORBIDDEN
        elif status == 404:
            reason = FailureReason.NOT_FOUND
        elif status in (408, 480) or 500 <= status < 600:
            reason = FailureReason.TIMEOUT if status == 408 else FailureReason.SERVER_ERROR
            try:
                retry_after = response.retry_after
            except RemoteProtocolError:
                retry_after = None
        else:
            reason = FailureReason.REJECTED
        self._fail(operation, reason, now, response=response, retry_after=retry_after)

    def _fail(
        self,
        operation: Operation,
        reason: FailureReason,
        now: float,
        *,
        response: Response | None = None,
        retry_after: int | None = None,
    ) -> None:
        code = response.status if response is not None else None
        if operation in (Operation.QUERY, Operation.REMOVE_ALL):
            self._events.append(OperationFailed(operation, reason, code))
            return
        if operation is Operation.UNREGISTER:
            # The binding expires by itself; there is nothing to retry.
            self._set_status(
                RegistrationStatus(
                    RegistrationState.UNREGISTERED,
                    reason=reason,
                    status_code=code,
                    reason_phrase=response.reason if response is not None else None,
                )
            )
            return
        retry_at: float | None = None
        if reason.retryable and self._enabled:
            delay = retry_after if retry_after is not None else self._backoff.next_delay()
            retry_at = now + delay
        self._set_status(
            RegistrationStatus(
                RegistrationState.FAILED,
                reason=reason,
                status_code=code,
                reason_phrase=response.reason if response is not None else None,
                retry_at=retry_at,
                contact=self._status.contact,
                public_address=self._status.public_address,
            )
        )

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
        try:
            header = response.expires
        except RemoteProtocolError:
            header = None
        return header if header is not None else self._expires

    def _set_status(self, status: RegistrationStatus) -> None:
        if status != self._status:
            self._status = status
            self._events.append(RegistrationChanged(status))


def _public_address(response: Response) -> tuple[str, int] | None:
    """Our address as the server saw it, from the top Via's ``received`` and ``rport``."""
    try:
        via = response.top_via
    except RemoteProtocolError:
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
    "OperationFailed",
    "Registration",
    "RegistrationChanged",
    "RegistrationEvent",
    "RegistrationSettings",
    "RegistrationState",
    "RegistrationStatus",
]
