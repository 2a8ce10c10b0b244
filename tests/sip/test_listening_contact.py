"""The Contact of a TCP/TLS user agent names its listening socket; Via names the flow.

A server that opens a new connection for a request (its NOTIFYs, say) reaches the listening
socket; one that reuses the flow still reaches us over it.
"""

from __future__ import annotations

import random

from custom_components.sip_profiles.sip.registration import RegistrationState
from custom_components.sip_profiles.sip.target import Target, Transport
from custom_components.sip_profiles.sip.uri import parse_sip_uri
from custom_components.sip_profiles.sip.useragent import UserAgent
from tests.sip.canned import Harness, ok_for, settings

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
