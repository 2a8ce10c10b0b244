"""The user agent's admission of requests: paced subscription starts and one fresh challenge
answer at a time, after which the held nonce answers the rest.

Canned answers through the user agent, driven time.
"""

from __future__ import annotations

from custom_components.sip_profiles.sip.admission import PacingPolicy, StartPacer
from custom_components.sip_profiles.sip.message import Request, parse_message
from custom_components.sip_profiles.sip.registration import RegistrationState
from custom_components.sip_profiles.sip.subscription import SubscriptionState
from custom_components.sip_profiles.sip.uri import parse_sip_uri

from .canned import CHALLENGE, Harness, ok_for, reply
from .test_subscription import notify, subscribes

PROXY_CHALLENGE = 'Digest realm="sip.test", nonce="p1", qop="auth", algorithm=MD5'


def buddies(count: int) -> list[str]:
    return [f"sip:b{index:03d}@sip.test" for index in range(count)]


def serve(harness: Harness, *, seconds: float = 10.0) -> int:
    """A notifier that challenges every SUBSCRIBE without an answer to its nonce ``p1``.

    Returns how many distinct SUBSCRIBEs it was sent.
    """
    end = harness.now + seconds
    seen: set[str] = set()
    read = 0
    while True:
        fresh: list[Request] = []
        for transmit in harness.sent[read:]:
            message = parse_message(transmit.data) if transmit.data.strip() else None
            if not isinstance(message, Request) or message.method != "SUBSCRIBE":
                continue
            if (branch := message.top_via.branch or "") not in seen:
                seen.add(branch)
                fresh.append(message)
        read = len(harness.sent)
        for request in fresh:
            if 'nonce="p1"' not in (request.headers.get("Proxy-Authorization") or ""):
                challenge = f"Proxy-Authenticate: {PROXY_CHALLENGE}"
                harness.answer(reply(request, 407, "Proxy Authentication Required", challenge))
            else:
                harness.answer(reply(request, 200, "OK", "Expires: 3600"))
                harness.answer(notify(request, "active;expires=3600"))
        if not fresh:
            if harness.now >= end:
                return len(seen)
            harness.advance(0.1)


def test_the_pacer_lets_a_burst_go_then_a_steady_rate() -> None:
    pacer = StartPacer(PacingPolicy(burst=3, rate=2.0))
    assert [pacer.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert pacer.next_at(0.0) == 0.5
    assert not pacer.take(0.4)
    assert pacer.take(0.5)
    assert not pacer.take(0.5)
    assert pacer.take(10.0)
    assert [pacer.take(10.0) for _ in range(3)] == [True, True, False]


def test_subscriptions_start_once_the_registration_succeeded() -> None:
    harness = Harness.create()
    harness.user_agent.register(harness.now)
    harness.drain()
    for uri in buddies(3):
        harness.user_agent.subscribe(parse_sip_uri(uri), "presence", harness.now)
    harness.drain()
    assert subscribes(harness) == []
    register = harness.last_request()
    harness.answer(reply(register, 401, "Unauthorized", f"WWW-Authenticate: {CHALLENGE}"))
    assert subscribes(harness) == []
    harness.answer(ok_for(harness.last_request()))
    assert harness.user_agent.registration.state is RegistrationState.REGISTERED
    # The first goes alone: its answer tells the others how to authorize.
    (scout,) = subscribes(harness)
    assert 'nonce="n1"' in (scout.headers.get("Authorization") or "")
    harness.answer(
        reply(scout, 407, "Proxy Authentication Required", f"Proxy-Authenticate: {PROXY_CHALLENGE}")
    )
    answered = subscribes(harness)[-1]
    assert len(subscribes(harness)) == 2
    harness.answer(reply(answered, 200, "OK", "Expires: 3600"))
    others = subscribes(harness)[2:]
    assert len(others) == 2
    for count, request in enumerate(others, start=2):
        proxy = request.headers.get("Proxy-Authorization") or ""
        assert 'nonce="p1"' in proxy
        assert f"nc={count:08x}" in proxy


def test_a_failing_registration_holds_the_subscriptions_back() -> None:
    harness = Harness.create()
    harness.user_agent.register(harness.now)
    harness.drain()
    harness.user_agent.subscribe(parse_sip_uri("sip:bob@sip.test"), "presence", harness.now)
    harness.drain()
    harness.answer(reply(harness.last_request(), 503, "Service Unavailable", "Retry-After: 60"))
    harness.advance(59)
    assert subscribes(harness) == []
    harness.advance(1)
    harness.answer(ok_for(harness.last_request()))
    assert len(subscribes(harness)) == 1


def test_starts_go_in_a_burst_then_at_a_steady_rate() -> None:
    harness = Harness.create(pacing=PacingPolicy(burst=3, rate=2.0))
    for uri in buddies(7):
        harness.user_agent.subscribe(parse_sip_uri(uri), "presence", harness.now)
    harness.drain()
    (scout,) = subscribes(harness)
    harness.answer(reply(scout, 200, "OK", "Expires: 3600"))
    assert len(subscribes(harness)) == 3  # the burst
    harness.advance(0.49)
    assert len(subscribes(harness)) == 3
    harness.advance(0.01)
    assert len(subscribes(harness)) == 4
    harness.advance(1.5)
    assert len(subscribes(harness)) == 7


def test_a_restart_takes_one_challenge_not_one_per_subscription() -> None:
    harness = Harness.create()
    harness.register_through_challenge()
    count = 40
    keys = [
        harness.user_agent.subscribe(parse_sip_uri(uri), "presence", harness.now)
        for uri in buddies(count)
    ]
    serve(harness)
    statuses = harness.user_agent.subscriptions
    assert all(statuses[key].state is SubscriptionState.ACTIVE for key in keys)

    # A restart: the flow breaks, the registrar forgets our nonces.
    harness.user_agent.digest.forget()
    harness.user_agent.connection_lost(harness.now)
    harness.sent.clear()
    harness.user_agent.connection_up(("127.0.0.1", 5072), harness.now)
    harness.drain()
    sent = serve(harness)
    statuses = harness.user_agent.subscriptions
    assert all(statuses[key].state is SubscriptionState.ACTIVE for key in keys)
    assert sent == count + 1  # one challenge for the whole restart: 1.025 per subscription
