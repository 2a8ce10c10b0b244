"""Subscriptions, publication, busy lamps and watcher info against a real Kamailio.

Each runs over UDP, TCP and TLS, with the server sending its NOTIFYs over our own flow
(``fix_nated_contact()``: the Contact is moved to where the SUBSCRIBE came from) and to the
Contact as we wrote it (a new connection to our listening socket over TCP and TLS).
Timers are driven with ``UserAgentRunner.advance_clock``; waits are bounded waits for events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
import functools

import pytest

from custom_components.sip_profiles.sip.aio.runner import UserAgentRunner
from custom_components.sip_profiles.sip.aio.tls import client_ssl_context
from custom_components.sip_profiles.sip.auth import Credentials
from custom_components.sip_profiles.sip.client import FailureReason
from custom_components.sip_profiles.sip.documents import (
    PresenceState,
    WatcherStatus,
    WatcherTracker,
    parse_dialog_info,
    parse_pidf,
    parse_watcherinfo,
    summarize,
)
from custom_components.sip_profiles.sip.documents.dialog_info import LampState, lamp_of
from custom_components.sip_profiles.sip.documents.pidf import MyPresence
from custom_components.sip_profiles.sip.publication import PublicationState
from custom_components.sip_profiles.sip.registration import RegistrationState
from custom_components.sip_profiles.sip.subscription import (
    NotifyReceived,
    SubscriptionChanged,
    SubscriptionKey,
    SubscriptionState,
)
from custom_components.sip_profiles.sip.target import Target, Transport
from custom_components.sip_profiles.sip.uri import parse_sip_uri
from custom_components.sip_profiles.sip.useragent import (
    UserAgent,
    UserAgentEvent,
    UserAgentSettings,
)
from tests.harness.kamailio import KamailioServer, pidf
from tests.harness.publisher import raw_publish

WAIT = 10.0


@dataclass(frozen=True)
class Route:
    """The transport of the clients, and whether NOTIFYs come over their own flow."""

    transport: Transport
    over_our_flow: bool


ROUTES = [
    pytest.param(Route(transport, over_our_flow), id=f"{transport.value}-{name}")
    for transport in (Transport.UDP, Transport.TCP, Transport.TLS)
    for over_our_flow, name in ((True, "notify-on-our-flow"), (False, "notify-to-contact"))
]


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest, kamailio_clean: KamailioServer) -> Route:
    """One combination of the matrix, with the server set to send NOTIFYs that way."""
    chosen: Route = request.param
    kamailio_clean.set_fix_nated_contact(chosen.over_our_flow)
    return chosen


@dataclass
class Client:
    """A runner plus everything it reported, and every message with its peer."""

    runner: UserAgentRunner
    events: list[UserAgentEvent] = field(default_factory=list)
    received: list[tuple[Target, bytes]] = field(default_factory=list)
    sent: list[tuple[Target, bytes]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def notifies(self, key: SubscriptionKey) -> list[NotifyReceived]:
        return [e for e in self.events if isinstance(e, NotifyReceived) and e.key == key]

    def presence(self, key: SubscriptionKey) -> list[PresenceState]:
        """Every presence the NOTIFYs of ``key`` carried, as the Home Assistant layer reads it."""
        return [
            summarize(parse_pidf(e.body) if e.body else None)
            for e in self.notifies(key)
        ]  # fmt: skip

    def state(self, key: SubscriptionKey) -> SubscriptionState | None:
        status = self.runner.user_agent.subscription_status(key)
        return status.state if status is not None else None

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def assert_notifies_came(self, route: Route) -> None:
        """NOTIFYs came the route's way, and each was answered where it came from."""
        sources = {address(peer) for peer, data in self.received if data.startswith(b"NOTIFY ")}
        answered = {
            address(peer)
            for peer, data in self.sent
            if data.startswith(b"SIP/2.0 200 ") and b" NOTIFY\r\n" in data
        }
        server = address(self.runner.user_agent.target)
        assert sources
        assert answered == sources
        if route.over_our_flow or route.transport is Transport.UDP:
            assert sources == {server}
        else:
            assert server not in sources
            assert {transport for transport, _, _ in sources} == {route.transport}


def address(peer: Target) -> tuple[Transport, str, int]:
    """Where a peer is, whatever name its certificate is checked against."""
    return peer.transport, peer.host, peer.port


@pytest.fixture
async def make_client(kamailio_clean: KamailioServer) -> AsyncIterator[Callable[..., Client]]:
    clients: list[Client] = []
    ca_file = str(kamailio_clean.ca_file)

    def make(user: str, transport: Transport = Transport.UDP) -> Client:
        host, port = kamailio_clean.address(transport.value)
        settings = UserAgentSettings(
            aor=parse_sip_uri(kamailio_clean.aor(user)),
            credentials=(Credentials(user, kamailio_clean.accounts[user]),),
            transport=transport,
        )
        target = Target(transport, host, port, server_name="sip.test")
        tls = client_ssl_context(ca_file=ca_file) if transport is Transport.TLS else None
        runner = UserAgentRunner(UserAgent(settings, [target]), ssl_context=tls)
        client = Client(runner)

        def on_event(event: UserAgentEvent) -> None:
            client.events.append(event)
            client._changed.set()

        runner.add_listener(on_event)
        runner.add_tracer(
            lambda direction, peer, data: (
                client.received if direction == "in" else client.sent
            ).append((peer, data))
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.runner.stop(unregister_timeout=2)
    # flows that broke and came back left bindings of earlier ports behind
    for client in clients:
        kamailio_clean.remove_bindings(str(client.runner.user_agent.settings.aor))


async def registered(client: Client) -> Client:
    await client.runner.start()
    client.runner.register()
    await client.wait_for(
        lambda: client.runner.user_agent.registration.state is RegistrationState.REGISTERED
    )
    return client


async def test_presence_changes_reach_the_watcher_and_unsubscribe_ends_it(
    route: Route, make_client: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    watched = kamailio_clean.new_account("bob")
    alice = await registered(make_client("alice", route.transport))
    bob = await registered(make_client(watched, route.transport))
    key = alice.runner.subscribe(parse_sip_uri(kamailio_clean.aor(watched)), "presence")
    await alice.wait_for(lambda: alice.state(key) is SubscriptionState.ACTIVE)

    expected = [
        (MyPresence.AVAILABLE, PresenceState.ONLINE),
        (MyPresence.BUSY, PresenceState.BUSY),
        (MyPresence.OFFLINE, PresenceState.OFFLINE),
    ]
    for chosen, seen in expected:
        count = len(alice.notifies(key))
        bob.runner.publish(chosen, f"now {chosen}")
        await alice.wait_for(lambda count=count: len(alice.notifies(key)) > count)
        await alice.wait_for(lambda seen=seen: alice.presence(key)[-1] is seen)
        assert bob.runner.user_agent.publication.state is PublicationState.PUBLISHED

    bob.runner.unpublish()
    await bob.wait_for(
        lambda: bob.runner.user_agent.publication.state is PublicationState.UNPUBLISHED
    )
    # Each raw PUBLISH is a publication of its own, and the server shows them together.
    for basic, seen in (("closed", PresenceState.OFFLINE), ("open", PresenceState.ONLINE)):
        count = len(alice.notifies(key))
        await asyncio.to_thread(
            raw_publish, kamailio_clean, watched, pidf(kamailio_clean.aor(watched), basic)
        )
        await alice.wait_for(lambda count=count: len(alice.notifies(key)) > count)
        await alice.wait_for(lambda seen=seen: alice.presence(key)[-1] is seen)

    count = len(alice.notifies(key))
    alice.runner.unsubscribe(key)
    await alice.wait_for(lambda: alice.state(key) is SubscriptionState.UNSUBSCRIBED)
    final = alice.notifies(key)[-1]
    assert len(alice.notifies(key)) == count + 1
    assert final.state is SubscriptionState.UNSUBSCRIBED
    assert any(b"Subscription-State: terminated" in data for _, data in alice.received)
    alice.assert_notifies_came(route)


async def test_subscription_comes_back_after_a_server_restart(
    route: Route, make_client: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    watched = kamailio_clean.new_account("carol")
    alice = await registered(make_client("alice", route.transport))
    key = alice.runner.subscribe(parse_sip_uri(kamailio_clean.aor(watched)), "presence")
    await alice.wait_for(lambda: alice.state(key) is SubscriptionState.ACTIVE)
    first = alice.runner.user_agent._clients.subscriptions[key].call_id
    kamailio_clean.restart()  # not in a thread: the server dies with the thread that forked it
    kamailio_clean.set_fix_nated_contact(route.over_our_flow)
    alice.runner.advance_clock(3240)  # the refresh: the new server knows no such dialog

    def dialog_lost() -> bool:
        # Reported as it happened: the new dialog may be active before the test looks.
        return any(
            isinstance(e, SubscriptionChanged)
            and e.key == key
            and e.status.reason is FailureReason.DIALOG_LOST
            for e in alice.events
        )

    await alice.wait_for(dialog_lost)
    await alice.wait_for(lambda: alice.state(key) is SubscriptionState.ACTIVE)
    assert alice.runner.user_agent._clients.subscriptions[key].call_id != first
    count = len(alice.notifies(key))
    await asyncio.to_thread(
        raw_publish, kamailio_clean, watched, pidf(kamailio_clean.aor(watched), "open")
    )
    await alice.wait_for(lambda count=count: len(alice.notifies(key)) > count)
    assert alice.presence(key)[-1] is PresenceState.ONLINE
    alice.assert_notifies_came(route)


async def test_busy_lamp_follows_the_published_dialog_state(
    route: Route, make_client: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    watched = kamailio_clean.new_account("bob")
    alice = await registered(make_client("alice", route.transport))
    key = alice.runner.subscribe(parse_sip_uri(kamailio_clean.aor(watched)), "dialog")
    await alice.wait_for(lambda: alice.state(key) is SubscriptionState.ACTIVE)
    (first,) = alice.notifies(key)
    # Nothing published dialog state yet: the first NOTIFY has no body, or an empty list.
    if first.body:
        assert parse_dialog_info(first.body).dialogs == ()

    for state, lamp in (("confirmed", LampState.IN_CALL), ("terminated", LampState.IDLE)):
        count = len(alice.notifies(key))
        body = dialog_info(kamailio_clean.aor(watched), state)
        await asyncio.to_thread(
            functools.partial(
                raw_publish,
                kamailio_clean,
                watched,
                body,
                event="dialog",
                content_type="application/dialog-info+xml",
            )
        )
        await alice.wait_for(lambda count=count: len(alice.notifies(key)) > count)
        notify = alice.notifies(key)[-1]
        assert lamp_of(parse_dialog_info(notify.body).dialogs).state is lamp
    alice.assert_notifies_came(route)


def dialog_info(entity: str, state: str) -> str:
    """A dialog-info document (RFC 4235) with one call of ``entity`` in ``state``."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" '
        f'entity="{entity}"><dialog id="call-1" direction="initiator">'
        f"<state>{state}</state></dialog></dialog-info>\n"
    )


async def test_watcher_info_shows_a_new_watcher(
    route: Route, make_client: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    watched = kamailio_clean.new_account("alice")
    alice = await registered(make_client(watched, route.transport))
    dave = await registered(make_client(kamailio_clean.new_account("dave")))
    key = alice.runner.subscribe(parse_sip_uri(kamailio_clean.aor(watched)), "presence.winfo")
    await alice.wait_for(lambda: alice.state(key) is SubscriptionState.ACTIVE)
    tracker = WatcherTracker()
    tracker.apply(parse_watcherinfo(alice.notifies(key)[0].body))
    assert [w for wl in tracker.watcher_lists for w in wl.watchers] == []
    dave.runner.subscribe(parse_sip_uri(kamailio_clean.aor(watched)), "presence")
    await alice.wait_for(lambda: len(alice.notifies(key)) > 1)
    for event in alice.notifies(key)[1:]:
        tracker.apply(parse_watcherinfo(event.body))
    watchers = [w for wl in tracker.watcher_lists for w in wl.watchers]
    dave_uri = str(dave.runner.user_agent.settings.aor)
    assert [(w.uri, w.status) for w in watchers] == [(dave_uri, WatcherStatus.ACTIVE)]
    alice.assert_notifies_came(route)


async def test_a_package_the_server_does_not_offer_is_reported(
    make_client: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    kamailio_clean.set_no_mwi(True)
    alice = await registered(make_client("alice"))
    key = alice.runner.subscribe(parse_sip_uri(kamailio_clean.aor("alice")), "message-summary")
    await alice.wait_for(lambda: alice.state(key) is SubscriptionState.FAILED)
    status = alice.runner.user_agent.subscription_status(key)
    assert status is not None
    assert status.reason is FailureReason.NOT_OFFERED
    assert status.status_code == 489
