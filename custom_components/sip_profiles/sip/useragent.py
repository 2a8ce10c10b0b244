"""The user agent of one profile: transactions, flows and the state machines on top of them.

It is sans-I/O like everything in this package. Its owner (the asyncio runner, a test or the
probe) feeds it:

- ``connection_up(local, now)`` once a flow to ``target`` exists, ``connection_lost(now)``
  when it broke, ``receive(data, source, now)`` for every datagram or framed message;
- commands such as ``register(now)``, ``subscribe(uri, package, now)``, ``publish(...)``;
- ``handle_timers(now)`` whenever ``next_deadline()`` has passed;

and after each call drains ``take_transmits()`` (bytes to send to a target) and
``take_events()`` (what happened, as frozen dataclasses).

Its clients (the registration, the publication, one subscription per watched resource and each
MESSAGE of ours on its way) are :class:`~.client.Client` objects, all spoken to through that one
interface: how a request is challenged, retried and refreshed is :mod:`.client`'s business.
What the user agent adds is what concerns them together (:mod:`.admission`): one fresh challenge
answer at a time, and the start of the subscriptions only once the registration succeeded,
paced. Requests we receive are answered by :mod:`.inbound`, which hands NOTIFYs to the clients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
import random

from .admission import PacingPolicy
from .auth import Credentials, DigestClient
from .backoff import BackoffPolicy
from .client import FailureReason
from .clients import AnyClient, ClientSet
from .documents.pidf import MyPresence
from .errors import LocalProtocolError, RemoteProtocolError
from .headers import Via
from .inbound import Inbound, InboundEvent
from .message import Request, Response, parse_message
from .messaging import MessageEvent, OutgoingMessage
from .publication import Publication, PublicationChanged, PublicationSettings
from .registration import (
    Registration,
    RegistrationChanged,
    RegistrationEvent,
    RegistrationSettings,
    RegistrationState,
    RegistrationStatus,
)
from .subscription import (
    DEFAULT_EXPIRES,
    Subscription,
    SubscriptionEvent,
    SubscriptionKey,
    SubscriptionSettings,
    SubscriptionStatus,
)
from .target import Flow, Target, Transport
from .transaction import ClientTransaction, TimerSettings, TransactionTable, earliest
from .uri import SipUri

_UNREACHABLE = frozenset({FailureReason.TIMEOUT, FailureReason.TRANSPORT_ERROR})
MAX_FORWARDS = "70"
BRANCH_MAGIC = "z9hG4bK"
KEEPALIVE_PING = b"\r\n\r\n"
_RANDOM_BLOCK = 512
_SYSTEM_RANDOM = random.SystemRandom()
"""The tokens' source of every user agent not given its own: a ``SystemRandom`` reads
os.urandom, yet carries the 2.5 KB state of ``random.Random`` it never uses."""


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
    show_calls: bool = False
    """Let incoming INVITEs ring (180, never 200) and report them; else they get 480."""
    timers: TimerSettings = field(default_factory=TimerSettings)
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    pacing: PacingPolicy = field(default_factory=PacingPolicy)


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
    RegistrationEvent
    | SubscriptionEvent
    | PublicationChanged
    | MessageEvent
    | InboundEvent
    | ConnectionNeeded
    | MessageDropped
)


@dataclass(slots=True)
class UserAgentStats:
    """Counters for diagnostics."""

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
        self._rng = rng or _SYSTEM_RANDOM
        self._token = TokenSource(self._rng).token
        self._flow = Flow(targets, settings.keepalive_interval)
        self._transactions = TransactionTable[AnyClient]()
        self._transmits: list[Transmit] = []
        self._events: list[UserAgentEvent] = []
        self.digest = DigestClient(settings.credentials, cnonce_factory=lambda: self._token(16))
        self._new = ClientFactory(settings, self.digest, self._token, self._rng)
        self._clients = self._new.client_set()
        self.registration = self._clients.registration
        self.publication = self._clients.publication
        self._registration_was_lost = False
        self.inbound = self._new.inbound(self._transactions, self._clients.notify)

    # -- flows ---------------------------------------------------------------------------------

    @property
    def target(self) -> Target:
        """Where requests go now."""
        return self._flow.target

    @property
    def local_address(self) -> tuple[str, int] | None:
        """The local end of the flow to ``target``, or None while there is none."""
        return self._flow.local

    def connection_up(
        self, local: tuple[str, int], now: float, *, listening: tuple[str, int] | None = None
    ) -> None:
        """A flow to ``target`` exists; ``local`` is its local address.

        ``listening`` is where connections of the flow's transport are accepted; the Contact
        then names it instead of ``local``, so that a server that opens a new connection for
        a request (RFC 3261 §8.1.1.8) reaches us. A server that reuses the flow still can.
        """
        flow = self._flow
        was_lost = flow.up(local, now, listening=listening)
        registration = self.registration
        failed = registration.state is RegistrationState.FAILED
        # A binding whose Contact did not move (it names our listening socket) is renewed
        # over the new flow all the same: the registrar may have lost it with the old one.
        renewed = was_lost and registration.state is RegistrationState.REGISTERED
        if registration.enabled and (flow.failover_pending or failed or renewed):
            flow.failover_pending = False
            registration.register()
        if was_lost:
            # The dialogs start over now, once for this outage: the registration that failed
            # with the flow and comes back over the new one must not restart them again.
            self._registration_was_lost = False
            self._clients.restart(now)
        # Last: what the clients held for a flow goes out now, once.
        self._clients.set_contact(flow.contact(self.settings.aor.user))
        self._flush(now)

    def connection_lost(self, now: float) -> None:
        """The flow to ``target`` broke: its transactions fail, a new flow is asked for."""
        self._flow.drop(lost=True)
        self._clients.flow_lost()
        for failed in self._transactions.fail_pending():
            self._clients.fail(*failed, now)
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
        """Remove every binding of the AOR (``Contact: *``); an enabled profile registers anew."""
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

        A live subscription stays as it is, a failed or ended one starts over; starts are paced
        (:mod:`.admission`). LocalProtocolError for a package name that is not a token.
        """
        new = self._new.subscription(uri, event_package, expires)
        subscription = self._clients.subscriptions.setdefault(new.key, new)
        self._with_contact(subscription).subscribe()
        self._touched(subscription, now)
        return new.key

    def unsubscribe(self, key: SubscriptionKey, now: float) -> None:
        """End the subscription ``key``; unknown keys are ignored."""
        if (subscription := self._clients.subscriptions.get(key)) is not None:
            subscription.unsubscribe()
            self._touched(subscription, now)

    def subscription_status(self, key: SubscriptionKey) -> SubscriptionStatus | None:
        """The status of subscription ``key``, or None when there is no such subscription."""
        return sub.status if (sub := self._clients.subscriptions.get(key)) is not None else None

    @property
    def subscriptions(self) -> dict[SubscriptionKey, SubscriptionStatus]:
        """A snapshot of every subscription's status."""
        return {key: sub.status for key, sub in self._clients.subscriptions.items()}

    def publish(self, presence: MyPresence, note: str | None, now: float) -> None:
        """Publish our presence and keep it published (LocalProtocolError for a bad note)."""
        self.publication.publish(presence, note)
        self._touched(self.publication, now)

    def unpublish(self, now: float) -> None:
        """Remove our published presence."""
        self.publication.unpublish()
        self._touched(self.publication, now)

    def send_message(self, uri: SipUri, text: str, now: float) -> str:
        """Send ``text`` to ``uri`` in a MESSAGE; returns the id its outcome event carries."""
        message = self._new.message(uri, text)
        self._clients.messages[message.message_id] = message
        self._with_contact(message).send()
        self._touched(message, now)
        return message.message_id

    def decline_call(self, call_id: str | None, now: float) -> bool:
        """Answer a ringing call 603 Decline (the newest without ``call_id``); False if none."""
        declined = self.inbound.calls.decline(call_id, now)
        self._flush(now)
        return declined

    def discard(self) -> None:
        """Drop every client and call without sending anything."""
        self._transactions.clear_client()
        self.inbound.discard()
        self._clients.discard()
        self._events.extend(event for client in self._clients for event in client.take_events())

    # -- input ---------------------------------------------------------------------------------

    def receive(self, data: bytes, source: Target, now: float) -> None:
        """Feed one datagram or one framed stream message from ``source``."""
        try:
            if self.inbound.answer_copy(data):
                pass  # a retransmitted request: answered again as it was, unparsed
            elif isinstance(message := parse_message(data), Response):
                self._on_response(message, now)
            elif self.inbound.on_request(
                message, source, now, self._flow, registered=self.registration.registered, raw=data
            ):
                self.stats.requests_answered += 1
        except RemoteProtocolError as err:
            self.stats.malformed_dropped += 1
            self._events.append(MessageDropped(source, str(err)))
            return
        self._flush(now)

    def handle_timers(self, now: float) -> None:
        """Run every timer that is due at ``now``."""
        retransmit, failed = self._transactions.run_timers(now)
        for transaction in retransmit:
            self.stats.retransmissions += 1
            self._transmits.append(Transmit(transaction.target, transaction.data))
        for failure in failed:
            self._clients.fail(*failure, now)
        if self._flow.keepalive_due(now):
            self._transmits.append(Transmit(self.target, KEEPALIVE_PING))
        self._clients.run_timers(now)
        if (due := self.inbound.calls.deadline) is not None and due <= now:
            self.inbound.calls.on_timer(now)
        self._flush(now)

    def next_deadline(self) -> float | None:
        """The earliest time ``handle_timers`` has work to do."""
        return earliest(
            self._transactions.next_deadline(),
            self._flow.keepalive_at,
            self._clients.deadline(),
            self.inbound.calls.deadline,
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
        """Send what the clients queued and collect their events; release paced starts."""
        clients = self._clients
        while True:
            self._drain_registration(now)
            if not clients.dirty:
                clients.release_starts(now, flow_up=self._flow.local is not None)
                if not clients.dirty:
                    break
            for client in clients.take_dirty():
                self._send_requests(client, now)
                self._events.extend(client.take_events())
                clients.index_call_id(client)
        clients.forget_finished_messages()
        clients.challenges.settle()
        inbound = self.inbound
        self._transmits.extend(Transmit(*answer) for answer in inbound.take_transmits())
        self._events.extend(inbound.take_events())

    def _with_contact[C: AnyClient](self, client: C) -> C:
        if self._flow.local is not None:
            client.set_contact(self._flow.contact(self.settings.aor.user))
        return client

    def _touched(self, client: AnyClient, now: float) -> None:
        self._clients.touch(client)
        self._flush(now)

    def _drain_registration(self, now: float) -> None:
        """The registration first: its changes decide about failover and the others."""
        self._send_requests(self.registration, now)
        for event in self.registration.take_events():
            self._events.append(event)
            if isinstance(event, RegistrationChanged):
                self._after_registration_change(event.status, now)
                self._send_requests(self.registration, now)

    def _after_registration_change(self, status: RegistrationStatus, now: float) -> None:
        if status.state is RegistrationState.REGISTERED:
            if self._registration_was_lost:
                self._registration_was_lost = False
                self._clients.restart(now)
            seen = status.public_address
            local = self._flow.local
            if self.settings.nat_fixup and seen is not None and local is not None and seen != local:
                # The registrar sees us elsewhere (NAT): bind the address it can reach.
                self.registration.set_contact(self._flow.contact(self.settings.aor.user, seen))
        elif status.state is RegistrationState.FAILED:
            self._registration_was_lost = True
            # Fail over to the next target of the RFC 3263 list before backing off.
            unreachable = status.status_code == 503 or status.reason in _UNREACHABLE
            if self._flow.fail_over(unreachable=unreachable):
                self._clients.flow_lost()
                self._events.append(ConnectionNeeded(self.target))

    def _send_requests(self, owner: AnyClient, now: float) -> None:
        """Frame and send what ``owner`` queued, each in a client transaction of its own."""
        target = self.target
        for request in owner.take_requests():
            if self._flow.local is None:
                owner.hold(request)  # the flow went in this same step (a failover)
                continue
            _frame(request, target, self._flow.local, BRANCH_MAGIC + self._token(12), self.settings)
            transaction = ClientTransaction(request, target, now, self.settings.timers)
            key = self._transactions.add_client(transaction, owner)
            self._clients.challenges.sent(key, owner)
            self._transmits.append(Transmit(target, transaction.data))

    def _on_response(self, response: Response, now: float) -> None:
        key = (response.top_via.branch or "", response.cseq.method)
        if key not in self._transactions.client:
            self.stats.stray_responses += 1
            return
        answered = self._transactions.on_response(key, response, now)
        if answered is None:
            return
        self._clients.deliver(key, *answered, now)


@dataclass(frozen=True, slots=True)
class ClientFactory:
    """Builds the clients and the server side of a user agent with ``settings``."""

    settings: UserAgentSettings
    digest: DigestClient
    token: Callable[[int], str]
    rng: random.Random

    def client_set(self) -> ClientSet:
        """The registration and publication a user agent starts with."""
        settings, token = self.settings, self.token
        request_uri = settings.registrar or SipUri(
            settings.aor.scheme, settings.aor.host, port=settings.aor.port
        )
        registration = Registration(
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
            call_id=token(16),
            from_tag=token(8),
            backoff=settings.backoff,
            rng=self.rng,
        )
        publication = Publication(
            PublicationSettings(settings.aor, settings.display_name, settings.expires),
            self.digest,
            new_token=token,
            backoff=settings.backoff,
            rng=self.rng,
        )
        return ClientSet(registration, publication, self.digest, settings.pacing)

    def subscription(self, uri: SipUri, package: str, expires: int) -> Subscription:
        """A subscription to ``package`` of ``uri`` (LocalProtocolError for a bad package)."""
        settings = self.settings
        return Subscription(
            SubscriptionSettings(uri, package, settings.aor, settings.display_name, expires),
            self.digest,
            new_token=self.token,
            backoff=settings.backoff,
            rng=self.rng,
        )

    def message(self, uri: SipUri, text: str) -> OutgoingMessage:
        """A MESSAGE of ``text`` to ``uri``, with an id of its own."""
        settings = self.settings
        return OutgoingMessage(
            self.token(8),
            settings.aor,
            uri,
            text,
            self.digest,
            new_token=self.token,
            display_name=settings.display_name,
        )

    def inbound(
        self, transactions: TransactionTable[AnyClient], notify: Callable[[Request, float], int]
    ) -> Inbound:
        """The server side, keeping its transactions in ``transactions``."""
        settings = self.settings
        return Inbound(
            settings.aor.user,
            settings.timers,
            self.token,
            transactions,
            notify,
            show_calls=settings.show_calls,
            user_agent=settings.user_agent,
        )


class TokenSource:
    """Random tokens in hex, for Call-IDs, tags, branches and cnonces."""

    def __init__(self, rng: random.Random) -> None:
        """Draw from ``rng``."""
        self._rng = rng
        self._block = b""
        self._used = 0

    def token(self, size: int) -> str:
        """``size`` random octets in hex."""
        # Drawn from the random source in blocks: each token then costs a slice instead of a
        # read of os.urandom (SystemRandom's source).
        start = self._used
        end = start + size
        if end > len(self._block):
            self._block = self._rng.randbytes(max(size, _RANDOM_BLOCK))
            start, end = 0, size
        self._used = end
        return self._block[start:end].hex()


def _frame(
    request: Request,
    target: Target,
    local: tuple[str, int],
    branch: str,
    settings: UserAgentSettings,
) -> None:
    """Add our Via (``local``, on the flow to ``target``), Max-Forwards, Route and User-Agent.

    The Route is the outbound proxy's, made loose.
    """
    host, port = local
    via = Via(target.transport.value.upper(), host, port, (("branch", branch), ("rport", None)))
    routing = [("Via", str(via)), ("Max-Forwards", MAX_FORWARDS)]
    proxy = settings.outbound_proxy
    if proxy is not None and "Route" not in request.headers:
        loose = (
            proxy
            if proxy.param("lr") is not None
            else replace(proxy, params=(*proxy.params, ("lr", None)))
        )
        routing.append(("Route", f"<{loose}>"))
    request.headers = request.headers._framed(routing, [("User-Agent", settings.user_agent)])
    request.remember_top_via(via)


__all__ = [
    "ConnectionNeeded",
    "MessageDropped",
    "Transmit",
    "UserAgent",
    "UserAgentEvent",
    "UserAgentSettings",
    "UserAgentStats",
]
