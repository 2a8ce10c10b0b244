"""The clients of one user agent, kept together.

Which ones to drain, whose dialog a Call-ID names, answers and failures handed to them with
one fresh challenge answer at a time (:class:`~.admission.ChallengeGate`), and the paced start
of the subscriptions (:class:`~.admission.StartPacer`). The user agent speaks to each client through
:class:`~.client.Client`'s interface only; this module is where it finds them.
"""

from __future__ import annotations

from collections.abc import Iterator

from .admission import ChallengeGate, PacingPolicy, StartPacer
from .auth import DigestClient
from .errors import RemoteProtocolError
from .message import Request, Response
from .messaging import OutgoingMessage
from .publication import Publication
from .registration import Registration
from .subscription import Subscription, SubscriptionKey
from .transaction import ClientKey, ClientTransaction, ClientTransactionFailure, earliest
from .uri import SipUri

type AnyClient = Registration | Publication | Subscription | OutgoingMessage
"""A client of the user agent (each a :class:`~.client.Client`)."""


class ClientSet:
    """The registration, the publication, the subscriptions and the messages on their way."""

    def __init__(
        self,
        registration: Registration,
        publication: Publication,
        digest: DigestClient,
        pacing: PacingPolicy,
    ) -> None:
        """Hold the two fixed clients; subscriptions are added as they are asked for."""
        self.challenges = ChallengeGate[ClientKey, AnyClient]()
        self._digest = digest
        self.registration = registration
        self.publication = publication
        self.subscriptions: dict[SubscriptionKey, Subscription] = {}
        self.messages: dict[str, OutgoingMessage] = {}
        # Clients that were handed something since the last drain (a dict keeps their order).
        self._dirty: dict[AnyClient, None] = {}
        self._by_call_id: dict[str, AnyClient] = {}
        self._indexed_call_id: dict[AnyClient, str] = {}
        self._pacer = StartPacer(pacing)
        self._starts: dict[AnyClient, None] = {}
        self.start_at: float | None = None
        """When the pacer lets the next queued start go, if one waits for it."""
        # The first start after the flow or the registration came back goes alone: its answer
        # (a challenge, most likely) gives the others a nonce to answer pre-emptively.
        self._scout: AnyClient | None = None

    def __iter__(self) -> Iterator[AnyClient]:
        """Every client, the registration first."""
        yield self.registration
        yield self.publication
        yield from self.subscriptions.values()
        yield from self.messages.values()

    def touch(self, client: AnyClient) -> None:
        """``client`` was handed something: drain it next, and queue its start if it has one."""
        self._dirty[client] = None
        if client.start_queued:
            self._starts[client] = None

    @property
    def dirty(self) -> bool:
        """Whether a client waits to be drained."""
        return bool(self._dirty)

    def take_dirty(self) -> list[AnyClient]:
        """The clients to drain, in the order they were touched; each also re-indexed."""
        dirty, self._dirty = self._dirty, {}
        return list(dirty)

    def index_call_id(self, client: AnyClient) -> None:
        """Keep the Call-ID -> client map that in-dialog requests are matched with up to date."""
        current = client.call_id
        previous = self._indexed_call_id.pop(client, None)
        if previous is not None and previous != current:
            self._by_call_id.pop(previous, None)
        if current is not None:
            self._by_call_id[current] = client
            self._indexed_call_id[client] = current

    def notify(self, request: Request, now: float) -> int:
        """Hand a NOTIFY to the client whose dialog it names; the status to answer it with."""
        try:
            client = self._by_call_id.get(request.call_id)
        except RemoteProtocolError:
            return 400
        if client is None:
            return 481
        self.touch(client)
        return client.on_notify(request, now)

    def set_contact(self, contact: SipUri) -> None:
        """A flow exists: every client uses ``contact`` and sends what it held."""
        for client in self:
            client.set_contact(contact)
            self._dirty[client] = None

    def flow_lost(self) -> None:
        """No flow: every client holds its requests."""
        for client in self:
            client.flow_lost()

    def restart(self, now: float) -> None:
        """The flow or the registration came back: new dialogs, a new publication."""
        self._scout = None
        for client in self:
            client.restart(now)
            self.touch(client)

    def run_timers(self, now: float) -> None:
        """Every client whose deadline passed runs its timers."""
        for client in self:
            due = client.deadline
            if due is not None and due <= now:
                client.on_timer(now)
                self.touch(client)

    def deadline(self) -> float | None:
        """The earliest client deadline, or the next paced start."""
        return earliest(self.start_at, *(client.deadline for client in self))

    def release_starts(self, now: float, *, flow_up: bool) -> None:
        """Make queued starts as far as the pacing says.

        Only while a flow is up, the registration has settled and no challenge is being answered.
        """
        self.start_at = None
        starts = self._starts
        if not (flow_up and self.registration.settled and not self.challenges.busy):
            return
        while starts and (self._scout is None or not self._scout.busy):
            client = next(iter(starts))
            if not client.start_queued:
                del starts[client]
                continue
            if not self._pacer.take(now):
                self.start_at = self._pacer.next_at(now)
                return
            del starts[client]
            client.start()
            self._dirty[client] = None
            if self._scout is None:
                self._scout = client

    def deliver(self, key: ClientKey, client: AnyClient, response: Response, now: float) -> None:
        """The final ``response`` of ``client``'s transaction ``key`` arrived."""
        if response.status in (401, 407) and not self.challenges.admit(key, client):
            self.challenges.hold(client, response)
            return
        client.on_response(response, now)
        self._answered(key, client, 200 <= response.status < 300, now)

    def fail(
        self,
        key: ClientKey,
        transaction: ClientTransaction,
        client: AnyClient,
        failure: ClientTransactionFailure,
        now: float,
    ) -> None:
        """``client``'s transaction ``key`` ended without a final response."""
        client.on_failure(failure, transaction.request, now)
        self._answered(key, client, False, now)

    def _answered(self, key: ClientKey, owner: AnyClient, succeeded: bool, now: float) -> None:
        """``owner`` took the outcome of ``key``; after the probe, the challenges held go again."""
        self.touch(owner)
        if not self.challenges.is_probe(key):
            return
        for client, challenge in self.challenges.finished():
            name = "WWW-Authenticate" if challenge.status == 401 else "Proxy-Authenticate"
            values = challenge.headers.get_all(name)
            if succeeded and self._digest.holds_answer(challenge.status, values):
                # The nonce now held was just accepted: answer with it, not afresh.
                client.resend_authorized()
                self.touch(client)
            elif self.challenges.admit(None, client):
                client.on_response(challenge, now)
                self.touch(client)
            else:
                self.challenges.hold(client, challenge)

    def forget_finished_messages(self) -> None:
        """Messages whose outcome was reported are done with."""
        for message_id in [key for key, message in self.messages.items() if message.finished]:
            del self.messages[message_id]

    def discard(self) -> None:
        """Every client forgets everything; nothing waits to start."""
        self.challenges.clear()
        self._starts.clear()
        self.start_at = None
        for client in self:
            client.discard()
        self.messages.clear()
