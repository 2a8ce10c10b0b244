"""Calls, messages and voicemail waiting against a real Kamailio, over UDP, TCP and TLS.

The profile registers with Kamailio; a hand-written caller on a bare UDP socket calls it through
the registrar (which forks the INVITE to the registered contact and passes CANCELs on), and
publishes or NOTIFYs message summaries. Waits are bounded waits for events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from custom_components.sip_profiles.sip.aio.runner import UserAgentRunner
from custom_components.sip_profiles.sip.aio.tls import client_ssl_context
from custom_components.sip_profiles.sip.auth import Credentials
from custom_components.sip_profiles.sip.calls import CallEnded, CallOutcome, IncomingCall
from custom_components.sip_profiles.sip.documents.message_summary import (
    MESSAGE_SUMMARY,
    MessageCounts,
    MessageSummary,
    build_message_summary,
    parse_message_summary,
)
from custom_components.sip_profiles.sip.inbound import UnsolicitedNotify
from custom_components.sip_profiles.sip.messaging import MessageReceived, MessageSent
from custom_components.sip_profiles.sip.subscription import NotifyReceived, SubscriptionState
from custom_components.sip_profiles.sip.target import Target, Transport
from custom_components.sip_profiles.sip.uri import parse_sip_uri
from custom_components.sip_profiles.sip.useragent import (
    UserAgent,
    UserAgentEvent,
    UserAgentSettings,
)
from tests.harness.caller import Call, RawPeer, open_peer, unsolicited_notify
from tests.harness.kamailio import TEST_ACCOUNTS, KamailioServer
from tests.harness.publisher import raw_publish
from tests.sip.test_live_presence import Client, registered

TRANSPORTS = [Transport.UDP, Transport.TCP, Transport.TLS]


@pytest.fixture
async def make_profile(kamailio_clean: KamailioServer) -> AsyncIterator[Callable[..., Client]]:
    profiles: list[Client] = []

    def make(user: str, transport: Transport) -> Client:
        host, port = kamailio_clean.address(transport.value)
        settings = UserAgentSettings(
            aor=parse_sip_uri(kamailio_clean.aor(user)),
            credentials=(Credentials(user, TEST_ACCOUNTS[user]),),
            transport=transport,
            show_calls=True,
        )
        ssl_context = (
            client_ssl_context(ca_file=str(kamailio_clean.ca_file))
            if transport is Transport.TLS
            else None
        )
        target = Target(transport, host, port, server_name="sip.test")
        runner = UserAgentRunner(UserAgent(settings, [target]), ssl_context=ssl_context)
        profile = Client(runner)

        def on_event(event: UserAgentEvent) -> None:
            profile.events.append(event)
            profile._changed.set()

        runner.add_listener(on_event)

        def on_message(direction: str, _: Target, data: bytes) -> None:
            (profile.received if direction == "in" else profile.sent).append(data)
            profile._changed.set()

        runner.add_tracer(on_message)
        profiles.append(profile)
        return profile

    yield make
    for profile in profiles:
        await profile.runner.stop(unregister_timeout=2)


@pytest.fixture
async def peer() -> AsyncIterator[RawPeer]:
    async with open_peer() as raw:
        yield raw


def calls(profile: Client) -> list[IncomingCall | CallEnded]:
    return [e for e in profile.events if isinstance(e, IncomingCall | CallEnded)]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        ('SIP;cause=200;text="Call completed elsewhere"', CallOutcome.ANSWERED_ELSEWHERE),
        (None, CallOutcome.MISSED),
    ],
)
async def test_call_rings_and_is_cancelled(
    transport: Transport,
    reason: str | None,
    outcome: CallOutcome,
    make_profile: Callable[..., Client],
    peer: RawPeer,
    kamailio_clean: KamailioServer,
) -> None:
    alice = await registered(make_profile("alice", transport))
    call = Call(peer, kamailio_clean, "alice")
    call.invite()
    ringing = await peer.response("INVITE", 180)
    assert ringing.to.tag
    await alice.wait_for(lambda: len(calls(alice)) == 1)
    assert calls(alice) == [IncomingCall(call.call_id, "door", "Front Door", call.uri)]
    assert alice.runner.user_agent.inbound.calls.ringing == (call.call_id,)

    call.cancel(reason)
    await peer.response("CANCEL", 200)
    terminated = await peer.response("INVITE", 487)
    call.ack(terminated)
    await alice.wait_for(lambda: len(calls(alice)) == 2)
    assert calls(alice)[-1] == CallEnded(call.call_id, outcome)
    assert alice.runner.user_agent.inbound.calls.ringing == ()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_declined_call_ends_for_the_caller_with_603(
    transport: Transport,
    make_profile: Callable[..., Client],
    peer: RawPeer,
    kamailio_clean: KamailioServer,
) -> None:
    alice = await registered(make_profile("alice", transport))
    call = Call(peer, kamailio_clean, "alice")
    call.invite()
    await alice.wait_for(lambda: len(calls(alice)) == 1)
    assert alice.runner.user_agent.decline_call(None, alice.runner.now())
    alice.runner.advance_clock(0)  # sends what the command queued
    declined = await peer.response("INVITE", 603)
    call.ack(declined)
    assert calls(alice)[-1] == CallEnded(call.call_id, CallOutcome.DECLINED)
    # The registrar ACKs the 603 hop by hop; the profile's transaction takes it.
    await alice.wait_for(lambda: any(data.startswith(b"ACK ") for data in alice.received))
    declines = sum(data.startswith(b"SIP/2.0 603") for data in alice.sent)
    alice.runner.advance_clock(64 * 0.5)
    assert sum(data.startswith(b"SIP/2.0 603") for data in alice.sent) == declines
    assert alice.runner.user_agent.inbound.calls.deadline is None


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("proxy_auth", [False, True])
async def test_messages_both_ways_with_digest(
    transport: Transport,
    proxy_auth: bool,
    make_profile: Callable[..., Client],
    kamailio_clean: KamailioServer,
) -> None:
    kamailio_clean.set_proxy_auth(proxy_auth)
    alice = await registered(make_profile("alice", transport))
    bob = await registered(make_profile("bob", Transport.UDP))
    await send_and_receive(alice, bob, "Door is open")
    await send_and_receive(bob, alice, "Thanks ✓")
    if proxy_auth:
        # The registrar asked for proxy credentials: the MESSAGE was sent again with them.
        assert any(
            data.startswith(b"MESSAGE ") and b"Proxy-Authorization:" in data for data in alice.sent
        )


async def send_and_receive(sender: Client, receiver: Client, text: str) -> None:
    aor = sender.runner.user_agent.settings.aor
    message_id = sender.runner.user_agent.send_message(
        receiver.runner.user_agent.settings.aor, text, sender.runner.now()
    )
    sender.runner.advance_clock(0)
    await sender.wait_for(lambda: MessageSent(message_id) in sender.events)
    await receiver.wait_for(lambda: any(isinstance(e, MessageReceived) for e in receiver.events))
    (received,) = [e for e in receiver.events if isinstance(e, MessageReceived)]
    assert (received.sender, received.text) == (str(aor), text)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_voicemail_counts_from_a_published_summary(
    transport: Transport, make_profile: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    alice = await registered(make_profile("alice", transport))
    key = alice.runner.subscribe(alice.runner.user_agent.settings.aor, "message-summary")
    await alice.wait_for(lambda: alice.state(key) is SubscriptionState.ACTIVE)
    summary = MessageSummary(True, kamailio_clean.aor("alice"), MessageCounts(2, 5, 1, 0))
    await asyncio.to_thread(
        raw_publish,
        kamailio_clean,
        "alice",
        build_message_summary(summary).decode(),
        event="message-summary",
        content_type=MESSAGE_SUMMARY,
    )

    def counted() -> list[MessageSummary]:
        return [
            parse_message_summary(e.body)
            for e in alice.events
            if isinstance(e, NotifyReceived) and e.key == key and e.body.strip()
        ]

    await alice.wait_for(lambda: bool(counted()))
    assert counted()[-1] == summary


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_voicemail_counts_from_an_unsolicited_notify_through_the_registrar(
    transport: Transport,
    make_profile: Callable[..., Client],
    peer: RawPeer,
    kamailio_clean: KamailioServer,
) -> None:
    alice = await registered(make_profile("alice", transport))
    body = build_message_summary(MessageSummary(True, None, MessageCounts(3, 0)))
    peer.send(
        unsolicited_notify(peer, kamailio_clean.aor("alice"), body), kamailio_clean.address("udp")
    )
    await peer.response("NOTIFY", 200)
    await alice.wait_for(lambda: any(isinstance(e, UnsolicitedNotify) for e in alice.events))
    (notified,) = [e for e in alice.events if isinstance(e, UnsolicitedNotify)]
    assert parse_message_summary(notified.body).new_messages == 3


async def test_unsolicited_notify_from_elsewhere_gets_403(
    make_profile: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    alice = await registered(make_profile("alice", Transport.UDP))
    local = alice.runner.user_agent.local_address
    assert local is not None
    # Another loopback address than the registrar's: not one of the profile's servers.
    async with open_peer("127.0.0.2") as stranger:
        body = build_message_summary(MessageSummary(True, None, MessageCounts(9, 9)))
        stranger.send(unsolicited_notify(stranger, f"sip:alice@{local[0]}:{local[1]}", body), local)
        await stranger.response("NOTIFY", 403)
    assert not any(isinstance(e, UnsolicitedNotify) for e in alice.events)
