"""Subscriptions, publication and watcher info against a real Kamailio.

Timers are driven with ``UserAgentRunner.advance_clock``; waits are bounded waits for events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
import socket

import pytest

from custom_components.sip_profiles.sip.aio.runner import UserAgentRunner
from custom_components.sip_profiles.sip.auth import Credentials, DigestClient
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
from custom_components.sip_profiles.sip.documents.pidf import MyPresence
from custom_components.sip_profiles.sip.message import Request, Response, parse_message
from custom_components.sip_profiles.sip.publication import PublicationState
from custom_components.sip_profiles.sip.registration import RegistrationState
from custom_components.sip_profiles.sip.subscription import (
    NotifyReceived,
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
from tests.harness.kamailio import TEST_ACCOUNTS, KamailioServer, pidf

WAIT = 10.0


@dataclass
class Client:
    """A runner plus everything it reported."""

    runner: UserAgentRunner
    events: list[UserAgentEvent] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
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


@pytest.fixture
async def make_client(kamailio_clean: KamailioServer) -> AsyncIterator[Callable[..., Client]]:
    clients: list[Client] = []

    def make(user: str, transport: Transport = Transport.UDP) -> Client:
        host, port = kamailio_clean.address(transport.value)
        settings = UserAgentSettings(
            aor=parse_sip_uri(kamailio_clean.aor(user)),
            credentials=(Credentials(user, TEST_ACCOUNTS[user]),),
            transport=transport,
        )
        runner = UserAgentRunner(UserAgent(settings, [Target(transport, host, port)]))
        client = Client(runner)

        def on_event(event: UserAgentEvent) -> None:
            client.events.append(event)
            client._changed.set()

        runner.add_listener(on_event)
        runner.add_tracer(
            lambda direction, _, data: (
                client.received if direction == "in" else client.sent
            ).append(data)
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


def raw_publish(server: KamailioServer, user: str, body: str) -> None:
    """PUBLISH ``body`` for ``user`` from a bare UDP socket: a second, hand-written client."""
    digest = DigestClient([Credentials(user, TEST_ACCOUNTS[user])])
    uri = server.aor(user)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(WAIT)
        port = sock.getsockname()[1]
        # Kamailio's SQLite store is sometimes locked by its other worker: 500, try again.
        for cseq in range(1, 8):
            authorization = "".join(
                f"{name}: {value}\r\n"
                for name, value in digest.authorization_headers("PUBLISH", uri)
            )
            request = (
                f"PUBLISH {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKraw{cseq}{port};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <{uri}>;tag=raw{port}\r\nTo: <{uri}>\r\nCall-ID: raw-{port}\r\n"
                f"CSeq: {cseq} PUBLISH\r\nEvent: presence\r\nExpires: 600\r\n"
                f"Content-Type: application/pidf+xml\r\n{authorization}"
                f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
            )
            sock.sendto(request.encode(), server.address("udp"))
            answer = parse_message(sock.recv(65535))
            assert isinstance(answer, Response)
            if answer.status == 200:
                return
            assert answer.status in (401, 500)
            if answer.status == 401:
                digest.handle_challenge(401, answer.headers.get_all("WWW-Authenticate"))
    raise AssertionError("PUBLISH was not accepted")


async def test_presence_changes_reach_the_watcher_and_unsubscribe_ends_it(
    make_client: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    alice = await registered(make_client("alice"))
    bob = await registered(make_client("bob"))
    key = alice.runner.subscribe(parse_sip_uri(kamailio_clean.aor("bob")), "presence")
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
            raw_publish, kamailio_clean, "bob", pidf(kamailio_clean.aor("bob"), basic)
        )
        await alice.wait_for(lambda count=count: len(alice.notifies(key)) > count)
        await alice.wait_for(lambda seen=seen: alice.presence(key)[-1] is seen)

    count = len(alice.notifies(key))
    alice.runner.unsubscribe(key)
    await alice.wait_for(lambda: alice.state(key) is SubscriptionState.UNSUBSCRIBED)
    final = alice.notifies(key)[-1]
    assert len(alice.notifies(key)) == count + 1
    assert final.state is SubscriptionState.UNSUBSCRIBED
    assert any(b"Subscription-State: terminated" in data for data in alice.received)


async def test_subscription_comes_back_after_a_server_restart(
    make_client: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    alice = await registered(make_client("alice"))
    key = alice.runner.subscribe(parse_sip_uri(kamailio_clean.aor("carol")), "presence")
    await alice.wait_for(lambda: alice.state(key) is SubscriptionState.ACTIVE)
    first = alice.runner.user_agent._clients.subscriptions[key].call_id
    kamailio_clean.restart()  # not in a thread: the server dies with the thread that forked it
    alice.runner.advance_clock(3240)  # the refresh: the new server knows no such dialog
    await alice.wait_for(
        lambda: (
            alice.runner.user_agent.subscription_status(key).reason  # type: ignore[union-attr]
            is FailureReason.DIALOG_LOST
        )
    )
    await alice.wait_for(lambda: alice.state(key) is SubscriptionState.ACTIVE)
    assert alice.runner.user_agent._clients.subscriptions[key].call_id != first
    count = len(alice.notifies(key))
    await asyncio.to_thread(
        raw_publish, kamailio_clean, "carol", pidf(kamailio_clean.aor("carol"), "open")
    )
    await alice.wait_for(lambda count=count: len(alice.notifies(key)) > count)
    assert alice.presence(key)[-1] is PresenceState.ONLINE


async def test_dialog_package_is_offered(
    make_client: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    alice = await registered(make_client("alice"))
    key = alice.runner.subscribe(parse_sip_uri(kamailio_clean.aor("bob")), "dialog")
    await alice.wait_for(lambda: alice.state(key) is SubscriptionState.ACTIVE)
    (first,) = alice.notifies(key)
    # Nothing publishes dialog state here: the first NOTIFY has no body, or an empty list.
    if first.body:
        assert parse_dialog_info(first.body).dialogs == ()


async def test_watcher_info_shows_a_new_watcher(
    make_client: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    alice = await registered(make_client("alice"))
    dave = await registered(make_client("dave"))
    key = alice.runner.subscribe(parse_sip_uri(kamailio_clean.aor("alice")), "presence.winfo")
    await alice.wait_for(lambda: alice.state(key) is SubscriptionState.ACTIVE)
    tracker = WatcherTracker()
    tracker.apply(parse_watcherinfo(alice.notifies(key)[0].body))
    assert [w for wl in tracker.watcher_lists for w in wl.watchers] == []
    dave.runner.subscribe(parse_sip_uri(kamailio_clean.aor("alice")), "presence")
    await alice.wait_for(lambda: len(alice.notifies(key)) > 1)
    for event in alice.notifies(key)[1:]:
        tracker.apply(parse_watcherinfo(event.body))
    watchers = [w for wl in tracker.watcher_lists for w in wl.watchers]
    assert [(w.uri, w.status) for w in watchers] == [("sip:dave@sip.test", WatcherStatus.ACTIVE)]


async def test_a_package_the_server_does_not_offer_is_reported(
    make_client: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    alice = await registered(make_client("alice"))
    key = alice.runner.subscribe(parse_sip_uri(kamailio_clean.aor("alice")), "message-summary")
    await alice.wait_for(lambda: alice.state(key) is SubscriptionState.FAILED)
    status = alice.runner.user_agent.subscription_status(key)
    assert status is not None
    assert status.reason is FailureReason.NOT_OFFERED
    assert status.status_code == 489


@pytest.mark.parametrize("transport", [Transport.UDP, Transport.TCP])
async def test_notifies_to_the_contact_as_sent(
    transport: Transport, make_client: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    """Without fix_nated_contact Kamailio sends NOTIFYs to our Contact as we wrote it.

    Over UDP that is our own socket, so they arrive. Over TCP Kamailio opens a new connection
    to it, where nothing listens; the failed attempt also closes our own connection (seen with
    Kamailio 5.6). We reconnect, register and subscribe again once; when that breaks the flow
    too, the subscription waits for backoff instead of flooding the server.
    """
    kamailio_clean.set_fix_nated_contact(False)
    alice = await registered(make_client("alice", transport))
    key = alice.runner.subscribe(parse_sip_uri(kamailio_clean.aor("bob")), "presence")
    if transport is Transport.UDP:
        await alice.wait_for(lambda: alice.state(key) is SubscriptionState.ACTIVE)
        return

    def waiting_for_backoff() -> bool:
        status = alice.runner.user_agent.subscription_status(key)
        assert status is not None
        return status.reason is FailureReason.DIALOG_LOST and status.retry_at is not None

    await alice.wait_for(waiting_for_backoff)
    assert alice.notifies(key) == []
    dialogs = {
        message.call_id
        for data in alice.sent
        if data.startswith(b"SUBSCRIBE ") and isinstance(message := parse_message(data), Request)
    }
    assert len(dialogs) == 2  # the first and the one started when the flow came back
