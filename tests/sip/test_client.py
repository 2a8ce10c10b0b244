"""What every client shares, run against each of them: registration, subscription, publication.

Challenges, 423 Min-Expires, retries after Retry-After or backoff, the refresh at 90 % and the
flow being down are decided once, in the client mechanism; these tests hold each client to it.
Canned answers through the user agent, driven time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from custom_components.sip_profiles.sip.client import FailureReason
from custom_components.sip_profiles.sip.documents.pidf import MyPresence
from custom_components.sip_profiles.sip.message import Request
from custom_components.sip_profiles.sip.uri import parse_sip_uri

from .canned import CHALLENGE, LOCAL, Harness, ok_for, reply
from .test_subscription import notify

BOB = parse_sip_uri("sip:bob@sip.test")


@dataclass(frozen=True)
class Kind:
    """How to drive one client through the user agent."""

    method: str
    start: Callable[[Harness, int], None]
    """Start the client asking for so many seconds."""
    status: Callable[[Harness], object]
    accept: Callable[[Harness, Request, int], None]
    """Accept the request for so many seconds, as the server would."""
    up: str
    """The state the client shows once the server accepted it."""
    initial: str
    """The state it shows while its first request is on its way."""


def _subscribe(harness: Harness, expires: int) -> None:
    harness.user_agent.subscribe(BOB, "presence", harness.now, expires=expires)


def _accept_subscribe(harness: Harness, request: Request, expires: int) -> None:
    harness.answer(reply(request, 200, "OK", f"Expires: {expires}"))
    harness.answer(notify(request, f"active;expires={expires}"))


def _subscription_status(harness: Harness) -> object:
    (status,) = harness.user_agent.subscriptions.values()
    return status


KINDS = [
    Kind(
        "REGISTER",
        lambda h, _: h.user_agent.register(h.now),
        lambda h: h.user_agent.registration.status,
        lambda h, request, expires: h.answer(ok_for(request, expires)),
        "registered",
        "registering",
    ),
    Kind("SUBSCRIBE", _subscribe, _subscription_status, _accept_subscribe, "active", "subscribing"),
    Kind(
        "PUBLISH",
        lambda h, _: h.user_agent.publish(MyPresence.BUSY, None, h.now),
        lambda h: h.user_agent.publication.status,
        lambda h, request, expires: h.answer(
            reply(request, 200, "OK", "SIP-ETag: e1", f"Expires: {expires}")
        ),
        "published",
        "publishing",
    ),
]
kinds = pytest.mark.parametrize("kind", KINDS, ids=[kind.method for kind in KINDS])


def sent(harness: Harness, kind: Kind) -> list[Request]:
    """The distinct requests of ``kind`` (retransmissions counted once)."""
    seen: dict[str, Request] = {}
    for request in harness.requests():
        if request.method == kind.method:
            seen.setdefault(request.top_via.branch or "", request)
    return list(seen.values())


def started(kind: Kind, expires: int = 3600) -> Harness:
    harness = Harness.create(expires=expires)
    kind.start(harness, expires)
    harness.drain()
    return harness


def field(harness: Harness, kind: Kind, name: str) -> object:
    return getattr(kind.status(harness), name)


@kinds
def test_a_challenge_is_answered_in_the_same_call(kind: Kind) -> None:
    harness = started(kind)
    first = sent(harness, kind)[-1]
    assert first.headers.get("Authorization") is None
    harness.answer(reply(first, 401, "Unauthorized", f"WWW-Authenticate: {CHALLENGE}"))
    second = sent(harness, kind)[-1]
    assert 'username="alice"' in (second.headers.get("Authorization") or "")
    assert "nc=00000001" in (second.headers.get("Authorization") or "")
    assert second.call_id == first.call_id
    assert second.cseq.number == first.cseq.number + 1
    kind.accept(harness, second, 600)
    assert str(field(harness, kind, "state")) == kind.up
    assert field(harness, kind, "status_code") == 200


@kinds
@pytest.mark.parametrize(
    "challenge",
    ['Digest realm="sip.test", nonce="n1", algorithm=SHA-512-256-sess-unknown', "Digest realm"],
    ids=["unsupported-algorithm", "malformed"],
)
def test_a_challenge_we_cannot_answer_fails_for_good(kind: Kind, challenge: str) -> None:
    harness = started(kind)
    harness.answer(
        reply(sent(harness, kind)[-1], 401, "Unauthorized", f"WWW-Authenticate: {challenge}")
    )
    assert (field(harness, kind, "state"), field(harness, kind, "reason")) == (
        "failed",
        FailureReason.AUTH_FAILED,
    )
    assert field(harness, kind, "status_code") == 401
    assert field(harness, kind, "retry_at") is None
    harness.advance(7200)
    assert len(sent(harness, kind)) == 1


@kinds
def test_423_adopts_min_expires_at_once(kind: Kind) -> None:
    harness = started(kind, expires=30)
    first = sent(harness, kind)[-1]
    harness.answer(reply(first, 423, "Interval Too Brief", "Min-Expires: 120"))
    again = sent(harness, kind)[-1]
    assert again.headers.get("Expires") == "120"
    assert again.call_id == first.call_id
    assert again.body == first.body
    kind.accept(harness, again, 120)
    assert field(harness, kind, "expires") == 120


@kinds
@pytest.mark.parametrize(
    "extra", [(), ("Min-Expires: 30",), ("Min-Expires: many",)], ids=["none", "lower", "bad"]
)
def test_423_without_a_usable_larger_minimum_is_a_refusal(
    kind: Kind, extra: tuple[str, ...]
) -> None:
    harness = started(kind, expires=60)
    harness.answer(reply(sent(harness, kind)[-1], 423, "Interval Too Brief", *extra))
    assert (field(harness, kind, "state"), field(harness, kind, "reason")) == (
        "failed",
        FailureReason.REJECTED,
    )
    assert field(harness, kind, "status_code") == 423
    assert len(sent(harness, kind)) == 1


@kinds
def test_423_again_and_again_gives_up_after_three_larger_tries(kind: Kind) -> None:
    harness = started(kind, expires=60)
    for minimum in (120, 240, 480, 960):
        harness.answer(
            reply(sent(harness, kind)[-1], 423, "Interval Too Brief", f"Min-Expires: {minimum}")
        )
    assert [r.headers.get("Expires") for r in sent(harness, kind)] == ["60", "120", "240", "480"]
    assert field(harness, kind, "reason") is FailureReason.REJECTED


@kinds
@pytest.mark.parametrize(
    ("status", "extra", "reason", "delay"),
    [
        (408, (), FailureReason.TIMEOUT, None),
        (480, (), FailureReason.SERVER_ERROR, None),
        (500, (), FailureReason.SERVER_ERROR, None),
        (503, ("Retry-After: 90",), FailureReason.SERVER_ERROR, 90),
        (503, ("Retry-After: soon",), FailureReason.SERVER_ERROR, None),
    ],
)
def test_passing_trouble_retries_after_retry_after_or_backoff(
    kind: Kind, status: int, extra: tuple[str, ...], reason: FailureReason, delay: int | None
) -> None:
    harness = started(kind)
    harness.answer(reply(sent(harness, kind)[-1], status, "Trouble", *extra))
    assert (field(harness, kind, "state"), field(harness, kind, "reason")) == ("failed", reason)
    assert field(harness, kind, "status_code") == status
    retry_at = field(harness, kind, "retry_at")
    assert isinstance(retry_at, float)
    if delay is not None:
        assert retry_at == pytest.approx(harness.now + delay)
    else:
        assert 15 <= retry_at - harness.now <= 30  # the first backoff: 30 s, jittered by half
    harness.advance(retry_at - harness.now - 0.1)
    assert len(sent(harness, kind)) == 1
    harness.advance(0.1)
    assert len(sent(harness, kind)) == 2
    assert str(field(harness, kind, "state")) == kind.initial


@kinds
def test_server_errors_back_off_exponentially_within_bounds(kind: Kind) -> None:
    harness = started(kind)
    delays: list[float] = []
    for _ in range(9):
        harness.answer(reply(sent(harness, kind)[-1], 500, "Server Error"))
        retry_at = field(harness, kind, "retry_at")
        assert isinstance(retry_at, float)
        delays.append(retry_at - harness.now)
        harness.advance(retry_at - harness.now)
    ceilings = [30, 60, 120, 240, 480, 960, 1800, 1800, 1800]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling * 0.5 <= delay <= ceiling


@kinds
def test_no_answer_fails_after_timer_f_and_tries_again_later(kind: Kind) -> None:
    harness = started(kind)
    harness.advance(31)
    assert str(field(harness, kind, "state")) == kind.initial
    harness.advance(2)
    assert (field(harness, kind, "state"), field(harness, kind, "reason")) == (
        "failed",
        FailureReason.TIMEOUT,
    )
    retry_at = field(harness, kind, "retry_at")
    assert isinstance(retry_at, float)
    harness.advance(retry_at - harness.now)
    assert len(sent(harness, kind)) == 2


@kinds
def test_refresh_at_ninety_percent_of_what_was_granted(kind: Kind) -> None:
    harness = started(kind)
    kind.accept(harness, sent(harness, kind)[-1], 600)
    assert field(harness, kind, "expires") == 600
    assert field(harness, kind, "refresh_at") == pytest.approx(harness.now + 540)
    harness.advance(539)
    assert len(sent(harness, kind)) == 1
    harness.advance(1)
    refresh = sent(harness, kind)[-1]
    assert len(sent(harness, kind)) == 2
    assert refresh.call_id == sent(harness, kind)[0].call_id


@kinds
def test_a_command_before_the_flow_is_up_waits_for_it(kind: Kind) -> None:
    harness = Harness.create(connected=False)
    kind.start(harness, 3600)
    harness.drain()
    assert sent(harness, kind) == []
    assert str(field(harness, kind, "state")) == kind.initial
    harness.user_agent.connection_up(LOCAL, harness.now)
    harness.drain()
    (request,) = sent(harness, kind)
    assert request.top_via.port == LOCAL[1]
    kind.accept(harness, request, 600)
    assert str(field(harness, kind, "state")) == kind.up


@kinds
def test_a_command_while_the_flow_is_down_waits_for_the_new_one(kind: Kind) -> None:
    harness = Harness.create()
    harness.user_agent.connection_lost(harness.now)
    harness.drain()
    kind.start(harness, 3600)
    harness.drain()
    assert sent(harness, kind) == []
    harness.user_agent.connection_up(("127.0.0.1", 5072), harness.now)
    harness.drain()
    (request,) = sent(harness, kind)
    assert request.top_via.port == 5072
    if kind.method != "PUBLISH":
        assert "127.0.0.1:5072" in (request.headers.get("Contact") or "")
    kind.accept(harness, request, 600)
    assert str(field(harness, kind, "state")) == kind.up
