"""The user agent of one profile: transactions, flows and the state machines on top of them.

It is sans-I/O like everything in this package. Its owner (the asyncio runner, a test or the
probe) feeds it:

- ``connection_up(local, now)`` once a flow to ``target`` exists, ``connection_lost(now)``
  when it broke, ``receive(data, source, now)`` for every datagram or framed message;
- commands such as ``register(now)``, ``subscribe(uri, package, now)``, ``publish(...)``;
- ``handle_timers(now)`` whenever ``next_deadline()`` has passed;

and after each call drains ``take_transmits()`` (bytes to send to a target) and
``take_events()`` (what happened, as frozen dataclasses).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
import heapq
import random

from .auth import Credentials, DigestClient
from .backoff import BackoffPolicy
from .documents.pidf import MyPresence
from .errors import LocalProtocolError, RemoteProtocolError
from .grammar import param
from .headers import Headers, Via
from .message import Request, Response, parse_message
from .outbox import earliest
from .publication import Publication, PublicationChanged, PublicationSettings
from .registration import (
    FailureReason,
    Registration,
    RegistrationChanged,
    RegistrationEvent,
    RegistrationSettings,
    RegistrationState,
)
from .subscription import (
    DEFAULT_EXPIRES,
    Subscription,
    SubscriptionEvent,
    SubscriptionKey,
    SubscriptionSettings,
    SubscriptionStatus,
)
from .target import Target, Transport
from .transaction import (
    ClientTransaction,
    ClientTransactionFailure,
    Retransmit,
    ServerTransaction,
    TimerSettings,
    TransactionState,
)
from .uri import SipUri

MAX_FORWARDS = "70"
BRANCH_MAGIC = "z9hG4bK"
KEEPALIVE_PING = b"\r\n\r\n"
_RANDOM_BLOCK = 512
ALLOWED_METHODS = ("OPTIONS", "NOTIFY")
KNOWN_METHODS = frozenset(
    {
        "ACK", "BYE", "CANCEL", "INFO", "INVITE", "MESSAGE", "NOTIFY", "OPTIONS",
        "PRACK", "PUBLISH", "REFER", "REGISTER", "SUBSCRIBE", "UPDATE",
    }
)  # fmt: skip
REASON_PHRASES = {
    200: "OK",
    400: "Bad Request",
    405: "Method Not Allowed",
    481: "Call/Transaction Does Not Exist",
    500: "Server Internal Error",
    501: "Not Implemented",
}


@dataclass(frozen=True, slots=True)
class UserAgentSettings:
    """Everything a profile's user agent needs to know, resolved targets aside."""

    aor: SipUri
    credentials: tuple[Credentials, ...]
    transport: Transport | None = None
    """The transport to use; None lets server location (RFC 3263) choose."""
    registrar: SipUri | None = None
    """The Request-URI of REGISTER; the AOR's domain when None."""
    outbound_proxy: SipUri | None = None
    """Sent as a loose ``Route``; the targets then point at the proxy."""
    expires: int = 3600
    display_name: str | None = None
    contact_q: float | None = None
    instance_id: str | None = None
    reg_id: int | None = None
    supported: tuple[str, ...] = ()
    keepalive_interval: float | None = None
    """Seconds between CRLF keep-alives on the flow (RFC 5626 §3.5.1); None sends none."""
    nat_fixup: bool = True
    """Move the Contact to the address the registrar saw (Via received/rport) when they differ."""
    user_agent: str = "SIP-Profiles"
    timers: TimerSettings = field(default_factory=TimerSettings)
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)


@dataclass(frozen=True, slots=True)
class Transmit:
    """Bytes the owner must send to ``target``."""

    target: Target
    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionNeeded:
    """The owner must open a flow to ``target`` and then call ``connection_up``."""

    target: Target


@dataclass(frozen=True, slots=True)
class MessageDropped:
    """Bytes that were not valid SIP arrived and were dropped."""

    source: Target
    error: str


UserAgentEvent = (
    RegistrationEvent | SubscriptionEvent | PublicationChanged | ConnectionNeeded | MessageDropped
)
_Owner = Registration | Publication | Subscription
"""A state machine whose requests a client transaction carries."""


@dataclass(slots=True)
class UserAgentStats:
    """Counters for diagnostics."""

    messages_received: int = 0
    messages_sent: int = 0
    retransmissions: int = 0
    malformed_dropped: int = 0
    stray_responses: int = 0
    requests_answered: int = 0


class UserAgent:
    """A SIP user agent for one profile (address of record)."""

    def __init__(
        self,
        settings: UserAgentSettings,
        targets: Sequence[Target],
        *,
        rng: random.Random | None = None,
    ) -> None:
        """Create the user agent; nothing is sent until a command asks for it."""
        if not targets:
            raise LocalProtocolError("a user agent needs at least one target")
        self.settings = settings
        self.stats = UserAgentStats()
        self._rng = rng or random.SystemRandom()
        self._random_block = b""
        self._random_used = 0
        self._targets = list(targets)
        self._target_index = 0
        self._local: tuple[str, int] | None = None
        self._contact_address: tuple[str, int] = ("", 0)
        self._failover_pending = False
        self._client: dict[tuple[str, str], ClientTransaction] = {}
        self._owners: dict[tuple[str, str], _Owner] = {}
        self._server: dict[tuple[str, str, str], ServerTransaction] = {}
        # (deadline, key) of the transactions above, earliest first. An entry whose transaction
        # has ended or moved its deadline since is dropped when it comes up, so timers and the
        # next deadline cost no scan of the transactions lingering for Timer K or J.
        self._client_timers: list[tuple[float, tuple[str, str]]] = []
        self._server_timers: list[tuple[float, tuple[str, str, str]]] = []
        self._keepalive_at: float | None = None
        self._transmits: list[Transmit] = []
        self._events: list[UserAgentEvent] = []
        self.digest = DigestClient(settings.credentials, cnonce_factory=lambda: self._token(16))
        request_uri = settings.registrar or SipUri(
            settings.aor.scheme, settings.aor.host, port=settings.aor.port
        )
        self.registration = Registration(
            RegistrationSettings(
                aor=settings.aor,
                request_uri=request_uri,
                expires=settings.expires,
                display_name=settings.display_name,
                contact_q=settings.contact_q,
                instance_id=settings.instance_id,
                reg_id=settings.reg_id,
                supported=settings.supported,
            ),
            self.digest,
            call_id=self._token(16),
            from_tag=self._token(8),
            backoff=settings.backoff,
            rng=self._rng,
        )
        self.publication = Publication(
            PublicationSettings(settings.aor, settings.display_name, settings.expires),
            self.digest,
            new_token=self._token,
            backoff=settings.backoff,
            rng=self._rng,
        )
        self._subscriptions: dict[SubscriptionKey, Subscription] = {}
        self._dirty: set[SubscriptionKey] = set()
        self._by_call_id: dict[str, SubscriptionKey] = {}
        self._indexed_call_id: dict[SubscriptionKey, str] = {}
        self._flow_was_lost = False
        self._registration_was_lost = False
        # Concurrent requests share one DigestClient: while one answers a fresh challenge (the
        # probe), further challenges wait, so one nonce is answered at a time and a second
        # challenge is not taken for a refusal of the first answer.
        self._auth_probe: tuple[str, str] | None = None
        self._probe_owner: _Owner | None = None
        self._deferred_challenges: list[tuple[_Owner, Response]] = []

    # -- flows ---------------------------------------------------------------------------------

    @property
    def target(self) -> Target:
        """Where requests go now."""
        return self._targets[self._target_index]

    @property
    def local_address(self) -> tuple[str, int] | None:
        """The local end of the flow to ``target``, or None while there is none."""
        return self._local

    def connection_up(
        self, local: tuple[str, int], now: float, *, listening: tuple[str, int] | None = None
    ) -> None:
        """A flow to ``target`` exists; ``local`` is its local address.

        ``listening`` is where connections of the flow's transport are accepted; the Contact
        then names it instead of ``local``, so that a server that opens a new connection for
        a request (RFC 3261 §8.1.1.8) reaches us. A server that reuses the flow still can.
        """
        self._local = local
        self._contact_address = listening or local
        contact = self._contact_uri(self._contact_address)
        self.registration.set_contact(contact)
        for subscription in self._subscriptions.values():
            subscription.set_contact(contact)
        flow_renewed = self._flow_was_lost
        if flow_renewed:
            self._flow_was_lost = False
            # The dialogs start over now, once for this outage: the registration that failed
            # with the flow and comes back over the new one must not restart them again.
            self._registration_was_lost = False
            self._restart_dialogs(now)
        if self.settings.keepalive_interval:
            self._keepalive_at = now + self.settings.keepalive_interval
        registration = self.registration
        # A binding whose Contact did not move (it names our listening socket) is renewed
        # over the new flow all the same: the registrar may have lost it with the old one.
        if registration.enabled and (
            self._failover_pending
            or registration.state is RegistrationState.FAILED
            or (flow_renewed and registration.state is RegistrationState.REGISTERED)
        ):
            self._failover_pending = False
            registration.register()
        self._flush(now)

    def connection_lost(self, now: float) -> None:
        """The flow to ``target`` broke: its transactions fail, a new flow is asked for."""
        self._local = None
        self._keepalive_at = None
        self._flow_was_lost = True
        for key, transaction in list(self._client.items()):
            failure = transaction.on_transport_error()
            if failure is not None:
                del self._client[key]
                self._on_transaction_failure(transaction, failure, now)
        self._events.append(ConnectionNeeded(self.target))
        self._flush(now)

    # -- commands ------------------------------------------------------------------------------

    def register(self, now: float) -> None:
        """Register and keep the registration up."""
        self.registration.register()
        self._flush(now)

    def unregister(self, now: float) -> None:
        """Remove our binding and stop refreshing."""
        self.registration.unregister()
        self._flush(now)

    def unregister_all(self, now: float) -> None:
        """Remove every binding of the AOR (``Contact: *``)."""
        self.registration.unregister_all()
        self._flush(now)

    def query_bindings(self, now: float) -> None:
        """Ask the registrar which contacts are bound to the AOR."""
        self.registration.query_bindings()
        self._flush(now)

    def subscribe(
        self, uri: SipUri, event_package: str, now: float, *, expires: int = DEFAULT_EXPIRES
    ) -> SubscriptionKey:
        """Watch ``uri`` for ``event_package`` (``presence``, ``dialog``, ``presence.winfo``).

        Subscribing again to a live subscription changes nothing; a failed or ended one starts
        over. Raises LocalProtocolError for a package name that is not a token.
        """
        subscription = Subscription(
            SubscriptionSettings(
                uri, event_package, self.settings.aor, self.settings.display_name, expires
            ),
            self.digest,
            new_token=self._token,
            backoff=self.settings.backoff,
            rng=self._rng,
        )
        key = subscription.key
        subscription = self._subscriptions.setdefault(key, subscription)
        if self._local is not None:
            subscription.set_contact(self._contact_uri(self._contact_address))
        subscription.subscribe()
        self._dirty.add(key)
        self._flush(now)
        return key

    def unsubscribe(self, key: SubscriptionKey, now: float) -> None:
        """End the subscription ``key``; unknown keys are ignored."""
        subscription = self._subscriptions.get(key)
        if subscription is not None:
            subscription.unsubscribe()
            self._dirty.add(key)
            self._flush(now)

    def subscription_status(self, key: SubscriptionKey) -> SubscriptionStatus | None:
        """The status of subscription ``key``, or None when there is no such subscription."""
        subscription = self._subscriptions.get(key)
        return subscription.status if subscription is not None else None

    @property
    def subscriptions(self) -> dict[SubscriptionKey, SubscriptionStatus]:
        """A snapshot of every subscription's status."""
        return {key: sub.status for key, sub in self._subscriptions.items()}

    def publish(self, presence: MyPresence, note: str | None, now: float) -> None:
        """Publish our presence and keep it published (LocalProtocolError for a bad note)."""
        self.publication.publish(presence, note)
        self._flush(now)

    def unpublish(self, now: float) -> None:
        """Remove our published presence."""
        self.publication.unpublish()
        self._flush(now)

    def discard(self) -> None:
        """Drop the registration, subscriptions and publication without sending anything."""
        self.registration.discard()
        self.publication.discard()
        for subscription in self._subscriptions.values():
            subscription.discard()
        self._client.clear()
        self._client_timers.clear()
        self._owners.clear()
        self._deferred_challenges.clear()
        self._auth_probe = None
        self._events.extend(self.registration.take_events())
        self._events.extend(self.publication.take_events())
        for subscription in self._subscriptions.values():
            self._events.extend(subscription.take_events())

    # -- input ---------------------------------------------------------------------------------

    def receive(self, data: bytes, source: Target, now: float) -> None:
        """Feed one datagram or one framed stream message from ``source``."""
        try:
            message = parse_message(data)
            if isinstance(message, Response):
                self._on_response(message, now)
            else:
                self._on_request(message, source, now)
        except RemoteProtocolError as err:
            self.stats.malformed_dropped += 1
            self._events.append(MessageDropped(source, str(err)))
            return
        self.stats.messages_received += 1
        self._flush(now)

    def handle_timers(self, now: float) -> None:
        """Run every timer that is due at ``now``."""
        client_timers = self._client_timers
        while client_timers and client_timers[0][0] <= now:
            deadline, key = heapq.heappop(client_timers)
            transaction = self._client.get(key)
            if transaction is None or transaction.deadline != deadline:
                continue
            result = transaction.on_timer(now)
            if isinstance(result, Retransmit):
                self.stats.retransmissions += 1
                self._transmits.append(Transmit(transaction.target, result.data))
                self._schedule_client(key, transaction)
            elif result is not None:
                del self._client[key]
                self._on_transaction_failure(transaction, result, now)
            elif transaction.state is TransactionState.TERMINATED:
                del self._client[key]
            else:
                self._schedule_client(key, transaction)
        server_timers = self._server_timers
        while server_timers and server_timers[0][0] <= now:
            deadline, server_key = heapq.heappop(server_timers)
            server = self._server.get(server_key)
            if server is None or server.deadline != deadline:
                continue
            server.on_timer(now)
            if server.state is TransactionState.TERMINATED:
                del self._server[server_key]
            else:
                self._schedule_server(server_key, server)
        if self._keepalive_at is not None and now >= self._keepalive_at and self._local:
            self._transmits.append(Transmit(self.target, KEEPALIVE_PING))
            interval = self.settings.keepalive_interval or 0.0
            self._keepalive_at = now + interval
        registration_deadline = self.registration.deadline
        if registration_deadline is not None and registration_deadline <= now:
            self.registration.on_timer(now)
        publication_deadline = self.publication.deadline
        if publication_deadline is not None and publication_deadline <= now:
            self.publication.on_timer(now)
        for watched, subscription in self._subscriptions.items():
            due = subscription.deadline
            if due is not None and due <= now:
                subscription.on_timer(now)
                self._dirty.add(watched)
        self._flush(now)

    def next_deadline(self) -> float | None:
        """The earliest time ``handle_timers`` has work to do."""
        return earliest(
            _valid_top(self._client_timers, self._client),
            _valid_top(self._server_timers, self._server),
            self._keepalive_at,
            self.registration.deadline,
            self.publication.deadline,
            *(subscription.deadline for subscription in self._subscriptions.values()),
        )

    # -- output --------------------------------------------------------------------------------

    def take_transmits(self) -> list[Transmit]:
        """Bytes to send, in order."""
        out, self._transmits = self._transmits, []
        return out

    def take_events(self) -> list[UserAgentEvent]:
        """What happened since the last call."""
        out, self._events = self._events, []
        return out

    # -- internals -----------------------------------------------------------------------------

    def _flush(self, now: float) -> None:
        """Send what the state machines queued and collect their events."""
        for request in self.registration.take_requests():
            self._send_request(request, self.registration, now)
        for event in self.registration.take_events():
            self._events.append(event)
            if isinstance(event, RegistrationChanged):
                self._after_registration_change(event, now)
        for request in self.publication.take_requests():
            self._send_request(request, self.publication, now)
        self._events.extend(self.publication.take_events())
        while self._dirty:
            dirty, self._dirty = self._dirty, set()
            for key in dirty:
                subscription = self._subscriptions[key]
                for request in subscription.take_requests():
                    self._send_request(request, subscription, now)
                self._events.extend(subscription.take_events())
                self._index_call_id(subscription)
        self._probe_owner = None

    def _index_call_id(self, subscription: Subscription) -> None:
        """Keep the Call-ID -> subscription map that NOTIFYs are matched with up to date."""
        key = subscription.key
        current = subscription.call_id
        previous = self._indexed_call_id.pop(key, None)
        if previous is not None and previous != current:
            self._by_call_id.pop(previous, None)
        if current is not None:
            self._by_call_id[current] = key
            self._indexed_call_id[key] = current

    def _restart_dialogs(self, now: float) -> None:
        """New subscription dialogs and a new publication after the flow or registrar was lost."""
        self.publication.restart()
        for key, subscription in self._subscriptions.items():
            if subscription.enabled:
                subscription.restart(now)
                self._dirty.add(key)

    def _after_registration_change(self, event: RegistrationChanged, now: float) -> None:
        status = event.status
        if status.state is RegistrationState.FAILED:
            self._registration_was_lost = True
        elif status.state is RegistrationState.REGISTERED and self._registration_was_lost:
            self._registration_was_lost = False
            self._restart_dialogs(now)
        if status.state is RegistrationState.REGISTERED and self.settings.nat_fixup:
            seen = status.public_address
            if seen is not None and self._local is not None and seen != self._local:
                # The registrar sees us elsewhere (NAT): bind the address it can reach.
                self.registration.set_contact(self._contact_uri(seen))
                self._flush(now)
        elif (
            status.state is RegistrationState.FAILED
            and (
                status.reason in (FailureReason.TIMEOUT, FailureReason.TRANSPORT_ERROR)
                or status.status_code == 503
            )
            and self._target_index + 1 < len(self._targets)
        ):
            # Fail over to the next target of the RFC 3263 list before backing off.
            self._target_index += 1
            self._local = None
            self._failover_pending = True
            self._events.append(ConnectionNeeded(self.target))
        elif status.state is RegistrationState.FAILED and len(self._targets) > 1:
            self._target_index = 0
            self._local = None
            self._events.append(ConnectionNeeded(self.target))

    def _send_request(self, request: Request, owner: _Owner, now: float) -> None:
        target = self.target
        if self._local is None:
            self._deliver_failure(owner, request, ClientTransactionFailure.TRANSPORT_ERROR, now)
            if not isinstance(owner, Subscription):
                self._events.extend(owner.take_events())
            return
        host, port = self._local
        branch = BRANCH_MAGIC + self._token(12)
        via = Via(target.transport.via_name, host, port, (("branch", branch), ("rport", None)))
        routing = [("Via", str(via)), ("Max-Forwards", MAX_FORWARDS)]
        proxy = self.settings.outbound_proxy
        if proxy is not None and "Route" not in request.headers:
            loose = (
                proxy
                if proxy.param("lr") is not None
                else replace(proxy, params=(*proxy.params, ("lr", None)))
            )
            routing.append(("Route", f"<{loose}>"))
        request.headers = request.headers._framed(
            routing, [("User-Agent", self.settings.user_agent)]
        )
        request.remember_top_via(via)
        transaction = ClientTransaction(request, target, now, self.settings.timers)
        key = (transaction.branch, transaction.method)
        self._client[key] = transaction
        self._schedule_client(key, transaction)
        self._owners[key] = owner
        if owner is self._probe_owner:
            self._probe_owner = None
            self._auth_probe = key
        self.stats.messages_sent += 1
        self._transmits.append(Transmit(target, transaction.data))

    def _on_response(self, response: Response, now: float) -> None:
        branch = response.top_via.branch or ""
        key = (branch, response.cseq.method)
        transaction = self._client.get(key)
        if transaction is None:
            self.stats.stray_responses += 1
            return
        delivered = transaction.on_response(response, now)
        if delivered is None:
            return
        owner = self._owners.get(key)
        if transaction.deadline is None:
            del self._client[key]
            self._owners.pop(key, None)
        elif delivered.status >= 200:
            self._schedule_client(key, transaction)
        if delivered.status < 200 or owner is None:
            return
        self._owners.pop(key, None)
        if delivered.status in (401, 407) and self._auth_probe not in (None, key):
            self._deferred_challenges.append((owner, delivered))
            return
        if delivered.status in (401, 407):
            self._probe_owner = owner
        self._deliver_response(owner, delivered, now)
        if key == self._auth_probe:
            self._auth_probe = None
            self._release_challenges(200 <= delivered.status < 300, now)

    def _deliver_response(self, owner: _Owner, response: Response, now: float) -> None:
        owner.on_response(response, now)
        if isinstance(owner, Subscription):
            self._dirty.add(owner.key)

    def _deliver_failure(
        self,
        owner: _Owner,
        request: Request,
        failure: ClientTransactionFailure,
        now: float,
    ) -> None:
        if isinstance(owner, Registration):
            owner.on_failure(failure, now)
            return
        owner.on_failure(failure, request, now)
        if isinstance(owner, Subscription):
            self._dirty.add(owner.key)

    def _release_challenges(self, probe_succeeded: bool, now: float) -> None:
        """The probe was answered: resend the challenged requests it stood for."""
        waiting, self._deferred_challenges = self._deferred_challenges, []
        for owner, challenge in waiting:
            if probe_succeeded and not isinstance(owner, Registration):
                # The credentials now held were just accepted: no need to answer again.
                owner.resend_authorized()
                if isinstance(owner, Subscription):
                    self._dirty.add(owner.key)
            elif self._auth_probe is None and self._probe_owner is None:
                self._probe_owner = owner
                self._deliver_response(owner, challenge, now)
                self._flush(now)
            else:
                self._deferred_challenges.append((owner, challenge))

    def _schedule_client(self, key: tuple[str, str], transaction: ClientTransaction) -> None:
        if (deadline := transaction.deadline) is not None:
            heapq.heappush(self._client_timers, (deadline, key))

    def _schedule_server(self, key: tuple[str, str, str], server: ServerTransaction) -> None:
        if (deadline := server.deadline) is not None:
            heapq.heappush(self._server_timers, (deadline, key))

    def _on_transaction_failure(
        self, transaction: ClientTransaction, failure: ClientTransactionFailure, now: float
    ) -> None:
        key = (transaction.branch, transaction.method)
        owner = self._owners.pop(key, None)
        if owner is not None:
            self._deliver_failure(owner, transaction.request, failure, now)
        if key == self._auth_probe:
            self._auth_probe = None
            self._release_challenges(False, now)

    def _on_request(self, request: Request, source: Target, now: float) -> None:
        via = request.top_via
        key = (via.branch or "", f"{via.host}:{via.port}", request.method)
        existing = self._server.get(key)
        if existing is not None:
            repeated = existing.on_retransmission()
            if repeated is not None:
                self._transmits.append(Transmit(existing.source, repeated))
            return
        if request.method == "ACK":
            return
        reply_to = _response_target(via, source)
        server = ServerTransaction(request, reply_to, self.settings.timers)
        self._server[key] = server
        response = self._answer(request, now)
        self.stats.requests_answered += 1
        self._transmits.append(Transmit(reply_to, server.respond(response, now)))
        self._schedule_server(key, server)

    def _answer(self, request: Request, now: float) -> Response:
        method = request.method
        if method == "OPTIONS":
            status = 200
        elif method == "NOTIFY":
            status = self._on_notify(request, now)
        elif method in ("BYE", "CANCEL"):
            status = 481  # no dialog of ours matches
        elif method in KNOWN_METHODS:
            status = 405
        else:
            status = 501
        response = build_response(request, status, self._token(8))
        if response.status in (200, 405, 501):
            response.headers.add("Allow", ", ".join(ALLOWED_METHODS))
        response.headers.add("User-Agent", self.settings.user_agent)
        return response

    def _on_notify(self, request: Request, now: float) -> int:
        """Hand a NOTIFY to the subscription whose dialog it names; 481 when there is none."""
        try:
            call_id = request.call_id
        except RemoteProtocolError:
            return 400
        key = self._by_call_id.get(call_id)
        if key is None:
            return 481
        self._dirty.add(key)
        return self._subscriptions[key].on_notify(request, now)

    def _contact_uri(self, address: tuple[str, int]) -> SipUri:
        transport = self.target.transport
        params = () if transport is Transport.UDP else (("transport", transport.value),)
        return SipUri("sip", address[0], user=self.settings.aor.user, port=address[1],
                      params=params)  # fmt: skip

    def _token(self, size: int) -> str:
        """``size`` random octets in hex, for Call-IDs, tags, branches and cnonces."""
        # Drawn from the random source in blocks: each token then costs a slice instead of a
        # read of os.urandom (SystemRandom's source).
        start = self._random_used
        end = start + size
        if end > len(self._random_block):
            self._random_block = self._rng.randbytes(max(size, _RANDOM_BLOCK))
            start, end = 0, size
        self._random_used = end
        return self._random_block[start:end].hex()


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


def build_response(request: Request, status: int, to_tag: str) -> Response:
    """A response to ``request`` with the headers RFC 3261 §8.2.6.2 copies over.

    ``to_tag`` is added to the To header unless the request already carries one.
    """
    headers = Headers()
    for via in request.headers.get_all("Via"):
        headers.add("Via", via)
    headers.add("From", request.headers.get("From") or "")
    to = request.headers.get("To") or ""
    if status > 100 and request.to.param("tag") is None:
        to = f"{to};tag={to_tag}"
    headers.add("To", to)
    headers.add("Call-ID", request.call_id)
    headers.add("CSeq", f"{request.cseq.number} {request.cseq.method}")
    return Response(status, REASON_PHRASES.get(status, ""), headers)


def _response_target(via: Via, source: Target) -> Target:
    """Where a response to a request that came from ``source`` goes (RFC 3261 §18.2.2, 3581)."""
    if source.transport.reliable or param(via.params, "rport") is not None:
        return source
    host = via.received or source.host
    return Target(source.transport, host, via.port or source.transport.default_port)


__all__ = [
    "ConnectionNeeded",
    "MessageDropped",
    "Transmit",
    "UserAgent",
    "UserAgentEvent",
    "UserAgentSettings",
    "UserAgentStats",
    "build_response",
]
