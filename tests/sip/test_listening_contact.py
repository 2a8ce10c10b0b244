"""The Contact of a TCP/TLS user agent names its listening socket; Via names the flow.

A server that opens a new connection for a request (its NOTIFYs, say) reaches the listening
socket; one that reuses the flow still reaches us over it. When the flow is opened again the
unchanged binding is renewed over it, and the dialogs start over once.
"""

from __future__ import annotations

import random

from custom_components.sip_profiles.sip.message import Request
from custom_components.sip_profiles.sip.registration import RegistrationState
from custom_components.sip_profiles.sip.subscription import SubscriptionState
from custom_components.sip_profiles.sip.target import Target, Transport
from custom_components.sip_profiles.sip.uri import parse_sip_uri
from custom_components.sip_profiles.sip.useragent import UserAgent
from tests.sip.canned import Harness, ok_for, reply, settings

SERVER = Target(Transport.TCP, "127.0.0.1", 5060)
FLOW = ("127.0.0.1", 40000)
LISTENING = ("127.0.0.1", 45000)
LISTENING_CONTACT = "<sip:alice@127.0.0.1:45000;transport=tcp>"


def tcp_harness() -> Harness:
    user_agent = UserAgent(settings(transport=Transport.TCP), [SERVER], rng=random.Random(7))
    harness = Harness(user_agent)
    user_agent.connection_up(FLOW, harness.now, listening=LISTENING)
    return harness


def test_register_and_subscribe_name_the_listening_socket_and_via_the_flow() -> None:
    harness = tcp_harness()
    harness.user_agent.register(harness.now)
    harness.drain()
    harness.answer(ok_for(harness.last_request()), SERVER)
    harness.user_agent.subscribe(parse_sip_uri("sip:bob@sip.test"), "presence", harness.now)
    harness.drain()

    register, subscribe = harness.requests()
    for request in (register, subscribe):
        assert request.headers.get("Contact") == LISTENING_CONTACT
        assert (request.top_via.host, request.top_via.port) == FLOW


def test_a_reopened_flow_registers_the_unchanged_contact_again() -> None:
    harness = tcp_harness()
    harness.user_agent.register(harness.now)
    harness.drain()
    harness.answer(ok_for(harness.last_request()), SERVER)
    assert harness.status.state is RegistrationState.REGISTERED

    harness.user_agent.connection_lost(harness.now)
    harness.user_agent.connection_up(("127.0.0.1", 40001), harness.now, listening=LISTENING)
    harness.drain()

    again = harness.last_request()
    assert len(harness.requests()) == 2
    assert again.method == "REGISTER"
    assert again.headers.get("Contact") == LISTENING_CONTACT
    assert again.top_via.port == 40001


def test_a_flow_and_registration_lost_together_restart_the_dialogs_once() -> None:
    harness = tcp_harness()
    user_agent = harness.user_agent
    user_agent.register(harness.now)
    harness.drain()
    harness.answer(ok_for(harness.last_request()), SERVER)
    key = user_agent.subscribe(parse_sip_uri("sip:bob@sip.test"), "presence", harness.now)
    harness.drain()
    harness.answer(reply(harness.last_request(), 200, "OK", "Expires: 3600"), SERVER)
    harness.answer(notify_for(harness.last_request()), SERVER)
    harness.advance(3300)  # the refreshes are on their way when the flow breaks
    user_agent.connection_lost(harness.now)
    harness.drain()
    assert harness.status.state is RegistrationState.FAILED
    before = len(harness.requests())

    user_agent.connection_up(("127.0.0.1", 40001), harness.now, listening=LISTENING)
    harness.drain()
    register = next(r for r in harness.requests()[before:] if r.method == "REGISTER")
    harness.answer(ok_for(register), SERVER)

    assert harness.status.state is RegistrationState.REGISTERED
    (subscribe,) = [r for r in harness.requests()[before:] if r.method == "SUBSCRIBE"]
    harness.answer(reply(subscribe, 200, "OK", "Expires: 3600"), SERVER)
    harness.answer(notify_for(subscribe), SERVER)

    assert harness.sent[-1].data.startswith(b"SIP/2.0 200 OK\r\n")
    status = user_agent.subscription_status(key)
    assert status is not None
    assert status.state is SubscriptionState.ACTIVE


def notify_for(subscribe: Request) -> bytes:
    """The first NOTIFY of the dialog ``subscribe`` started, as Kamailio writes it."""
    return (
        "NOTIFY sip:alice@127.0.0.1:45000;transport=tcp SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKn1\r\n"
        f"To: {subscribe.headers.get('From')}\r\n"
        f"From: {subscribe.headers.get('To')};tag=srv\r\n"
        "CSeq: 1 NOTIFY\r\n"
        f"Call-ID: {subscribe.call_id}\r\n"
        "Content-Length: 0\r\n"
        "Event: presence\r\n"
        "Contact: <sip:127.0.0.1:5060;transport=tcp>\r\n"
        "Subscription-State: active;expires=3600\r\n\r\n"
    ).encode()
