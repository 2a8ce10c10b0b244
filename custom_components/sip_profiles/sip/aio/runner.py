"""Drive a sans-I/O :class:`UserAgent` on an asyncio loop.

The runner is the only place where the core meets the clock and the sockets: it feeds the user
agent received bytes and due timers (its clock's time as ``now``), sends what it asks to send,
opens the flows it asks for, and hands its events to listeners.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
import logging
import math
import ssl

import aiodns

from ..backoff import Backoff
from ..documents.pidf import MyPresence
from ..publication import PublicationState
from ..registration import RegistrationState
from ..subscription import DEFAULT_EXPIRES, SubscriptionKey, SubscriptionState
from ..target import Target, Transport
from ..uri import SipUri
from ..useragent import ConnectionNeeded, UserAgent, UserAgentEvent, UserAgentSettings
from .resolver import locate
from .tls import self_signed_server_context
from .transport import TransportLayer

_LOGGER = logging.getLogger(__name__)

_REGISTRATION_UP = (RegistrationState.REGISTERED, RegistrationState.REGISTERING)
_PUBLICATION_UP = (PublicationState.PUBLISHED, PublicationState.PUBLISHING)
_SUBSCRIPTION_UP = (
    SubscriptionState.ACTIVE,
    SubscriptionState.PENDING,
    SubscriptionState.SUBSCRIBING,
)

TIMER_GRID = 2.0
"""A timer due at least ``TIMER_SLACK_FROM`` seconds ahead fires when the loop's clock reaches a
multiple of this many seconds, up to that much late: the keep-alives, refreshes and retries of
every profile then share the loop's wake-ups (200 profiles' keep-alives wake it once every two
seconds instead of almost seven times a second). Transaction timers are nearer and exact."""
TIMER_SLACK_FROM = 10.0

EventListener = Callable[[UserAgentEvent], None]
TraceListener = Callable[[str, Target, bytes], None]
"""Called with ``"in"`` or ``"out"``, the peer and the raw bytes of every message."""


class UserAgentRunner:
    """Runs one user agent: its flows, its timers and its event listeners."""

    def __init__(
        self,
        user_agent: UserAgent,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 5.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Wrap ``user_agent``; ``start()`` opens the first flow.

        ``ssl_context`` is for our TLS connections; ``server_ssl_context`` for the ones a
        server opens to our Contact (a self-signed certificate when None).
        ``clock`` is a monotonic clock in seconds, the loop's own by default; a host that
        moves time in its tests (Home Assistant's freezer) passes the one it moves.
        """
        self.user_agent = user_agent
        self._server_ssl_context = server_ssl_context
        self._loop = asyncio.get_running_loop()
        self._clock = clock or self._loop.time
        self._transports = TransportLayer(
            on_message=self._on_message,
            on_flow_lost=self._on_flow_lost,
            ssl_context=ssl_context,
            connect_timeout=connect_timeout,
        )
        self._listeners: list[EventListener] = []
        self._tracers: list[TraceListener] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._reconnect_backoff = Backoff(user_agent.settings.backoff)
        self._clock_offset = 0.0
        self._closed = False

    @property
    def transports(self) -> TransportLayer:
        """The flows, for their counters."""
        return self._transports

    def add_listener(self, listener: EventListener) -> Callable[[], None]:
        """Call ``listener`` with every event; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def add_tracer(self, tracer: TraceListener) -> Callable[[], None]:
        """Call ``tracer`` with every message sent and received; returns its remover."""
        self._tracers.append(tracer)
        return lambda: self._tracers.remove(tracer)

    def now(self) -> float:
        """The user agent's clock: the loop's monotonic time, plus what ``advance_clock`` added."""
        return self._clock() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the user agent's clock forward, firing every timer due on the way, in order.

        Lets tests and benchmarks reach a refresh or a retry without waiting for it.
        """
        end = self.now() + seconds
        while (deadline := self.user_agent.next_deadline()) is not None and deadline <= end:
            self._clock_offset += max(deadline - self.now(), 0.0)
            self._on_timer()
        self._clock_offset += max(end - self.now(), 0.0)
        self._pump()

    async def start(self) -> None:
        """Open the flow to the first target; raises OSError/ssl.SSLError when it cannot."""
        await self._connect(self.user_agent.target)

    def register(self) -> None:
        """Register now and keep the registration up."""
        self.user_agent.register(self.now())
        self._pump()

    def unregister(self) -> None:
        """Remove our binding and stop refreshing."""
        self.user_agent.unregister(self.now())
        self._pump()

    def unregister_all(self) -> None:
        """Remove every binding of the address of record."""
        self.user_agent.unregister_all(self.now())
        self._pump()

    def query_bindings(self) -> None:
        """Ask the registrar for the bindings of the address of record."""
        self.user_agent.query_bindings(self.now())
        self._pump()

    def subscribe(
        self, uri: SipUri, event_package: str, *, expires: int = DEFAULT_EXPIRES
    ) -> SubscriptionKey:
        """Watch ``uri`` for ``event_package`` and keep the subscription up."""
        key = self.user_agent.subscribe(uri, event_package, self.now(), expires=expires)
        self._pump()
        return key

    def unsubscribe(self, key: SubscriptionKey) -> None:
        """End the subscription ``key``."""
        self.user_agent.unsubscribe(key, self.now())
        self._pump()

    def publish(self, presence: MyPresence, note: str | None = None) -> None:
        """Publish our presence and keep it published."""
        self.user_agent.publish(presence, note, self.now())
        self._pump()

    def unpublish(self) -> None:
        """Remove our published presence."""
        self.user_agent.unpublish(self.now())
        self._pump()

    def send_message(self, uri: SipUri, text: str) -> str:
        """Send ``text`` to ``uri`` in a MESSAGE; returns the id its outcome event carries."""
        message_id = self.user_agent.send_message(uri, text, self.now())
        self._pump()
        return message_id

    def decline_call(self, call_id: str | None) -> bool:
        """Answer a ringing call 603 Decline; False when no such call rings."""
        declined = self.user_agent.decline_call(call_id, self.now())
        self._pump()
        return declined

    async def stop(self, *, unregister: bool = True, unregister_timeout: float = 5.0) -> None:
        """Wind down, then close every flow; idempotent.

        With ``unregister``, our publication is removed, every subscription ended and the
        binding removed first, waiting at most ``unregister_timeout`` s for the answers, so the
        server keeps nothing of ours that would outlive us.
        """
        if self._closed:
            return
        if unregister and not self._wound_down():
            settled = self._loop.create_future()

            def _on_event(_: UserAgentEvent) -> None:
                if self._wound_down() and not settled.done():
                    settled.set_result(None)

            remove = self.add_listener(_on_event)
            try:
                self._wind_down()
                if not self._wound_down():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(settled, unregister_timeout)
            finally:
                remove()
        self._closed = True
        self.user_agent.discard()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        await self._transports.close()

    # -- internals -----------------------------------------------------------------------------

    def _wind_down(self) -> None:
        user_agent, now = self.user_agent, self.now()
        if user_agent.publication.state in _PUBLICATION_UP:
            user_agent.unpublish(now)
        for key, status in user_agent.subscriptions.items():
            if status.state in _SUBSCRIPTION_UP:
                user_agent.unsubscribe(key, now)
        if user_agent.registration.state in _REGISTRATION_UP:
            user_agent.unregister(now)
        self._pump()

    def _wound_down(self) -> bool:
        """Nothing of ours is left at the server, and nothing is on its way there."""
        user_agent = self.user_agent
        return (
            user_agent.registration.state
            not in (*_REGISTRATION_UP, RegistrationState.UNREGISTERING)
            and user_agent.publication.state
            not in (*_PUBLICATION_UP, PublicationState.UNPUBLISHING)
            and all(
                status.state not in (*_SUBSCRIPTION_UP, SubscriptionState.UNSUBSCRIBING)
                for status in user_agent.subscriptions.values()
            )
        )

    async def _connect(self, target: Target) -> None:
        local = await self._transports.connect(target)
        listening = await self._listen(target.transport, local[0])
        self._reconnect_backoff.reset()
        self.user_agent.connection_up(local, self.now(), listening=listening)
        self._pump()

    async def _listen(self, transport: Transport, host: str) -> tuple[str, int] | None:
        """Where a server can open a TCP/TLS connection to us, for the Contact.

        None for UDP, whose one socket receives everything, and when no socket can be
        opened: then requests reach us only over our own connection.
        """
        if not transport.reliable:
            return None
        try:
            context = None
            if transport is Transport.TLS:
                context = self._server_ssl_context or await asyncio.to_thread(
                    self_signed_server_context
                )
            return await self._transports.listen(transport, host, context)
        except (OSError, ssl.SSLError) as err:
            _LOGGER.warning(
                "Cannot accept %s connections on %s (%s); the server reaches us over ours only",
                transport.value,
                host,
                err,
            )
            return None

    async def _reconnect(self, target: Target) -> None:
        """Open a new flow, retrying with backoff until it works or the runner stops."""
        while not self._closed:
            try:
                await self._connect(target)
            except (OSError, ssl.SSLError) as err:
                delay = self._reconnect_backoff.next_delay()
                _LOGGER.debug("Cannot reach %s (%s); next try in %.0f s", target, err, delay)
                await asyncio.sleep(delay)
            else:
                return

    def _on_message(self, data: bytes, source: Target) -> None:
        if self._closed:
            return
        for tracer in self._tracers:
            tracer("in", source, data)
        self.user_agent.receive(data, source, self.now())
        self._pump()

    def _on_flow_lost(self, target: Target, exc: Exception | None) -> None:
        if self._closed or target != self.user_agent.target:
            return
        _LOGGER.debug("Flow to %s lost: %s", target, exc)
        self.user_agent.connection_lost(self.now())
        self._pump()

    def _on_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None
        if self._closed:
            return
        self.user_agent.handle_timers(self.now())
        self._pump()

    def _pump(self) -> None:
        """Send, dispatch events and re-arm the timer after every input to the user agent."""
        user_agent = self.user_agent
        for transmit in user_agent.take_transmits():
            for tracer in self._tracers:
                tracer("out", transmit.target, transmit.data)
            self._transports.send(transmit.target, transmit.data)
        for event in user_agent.take_events():
            if isinstance(event, ConnectionNeeded):
                self._start_reconnect(event.target)
            for listener in list(self._listeners):
                listener(event)
        deadline = user_agent.next_deadline()
        # A timer armed earlier than needed stays: when it fires, handle_timers finds nothing
        # due and the timer is armed again. This spares a cancel and call_later per message,
        # as each request's transaction moves the deadline a little later.
        if deadline is not None and (self._timer_at is None or deadline < self._timer_at):
            if self._timer is not None:
                self._timer.cancel()
            delay = max(deadline - self.now(), 0.0)
            when = self._loop.time() + delay
            if delay >= TIMER_SLACK_FROM:
                when = math.ceil(when / TIMER_GRID) * TIMER_GRID
            self._timer = self._loop.call_at(when, self._on_timer)
            self._timer_at = deadline

    def _start_reconnect(self, target: Target) -> None:
        if self._closed or (self._connecting is not None and not self._connecting.done()):
            return
        self._connecting = self._loop.create_task(self._reconnect(target))


def server_uri(settings: UserAgentSettings) -> SipUri:
    """The URI whose server receives our requests: outbound proxy, else registrar, else domain."""
    if settings.outbound_proxy is not None:
        return settings.outbound_proxy
    if settings.registrar is not None:
        return settings.registrar
    aor = settings.aor
    return SipUri(aor.scheme, aor.host, port=aor.port)


async def start_user_agent(
    settings: UserAgentSettings,
    *,
    resolver: aiodns.DNSResolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
    server_ssl_context: ssl.SSLContext | None = None,
    connect_timeout: float = 5.0,
    clock: Callable[[], float] | None = None,
) -> UserAgentRunner:
    """Locate the server (RFC 3263); return a runner with a flow to the first target that works.

    Raises ``LocationError``, ``OSError`` or ``ssl.SSLError`` (the last target's) when no flow
    can be opened.
    """
    targets = await locate(server_uri(settings), transport=settings.transport, resolver=resolver)
    last_error: OSError | ssl.SSLError | None = None
    for index, target in enumerate(targets):
        # Each runner starts with the remaining targets so later failover keeps their order.
        runner = UserAgentRunner(
            UserAgent(settings, targets[index:]),
            ssl_context=ssl_context,
            server_ssl_context=server_ssl_context,
            connect_timeout=connect_timeout,
            clock=clock,
        )
        try:
            await runner.start()
        except (OSError, ssl.SSLError) as err:
            _LOGGER.debug("Cannot open a flow to %s: %s", target, err)
            last_error = err
            await runner.stop(unregister=False)
            continue
        return runner
    assert last_error is not None  # locate() never returns an empty list
    raise last_error
