"""Subscriptions at the edges: refusals, odd answers and NOTIFYs, ending at awkward moments.

Canned notifier answers through the user agent, driven time.
"""

from __future__ import annotations

import pytest

from custom_components.sip_profiles.sip.client import FailureReason
from custom_components.sip_profiles.sip.errors import LocalProtocolError
from custom_components.sip_profiles.sip.subscription import (
    SubscriptionKey,
    SubscriptionState,
    SubscriptionStatus,
)

from .canned import Harness, reply
from .test_subscription import BOB, notifies, notify, responses, subscribed, subscribes


def status_of(harness: Harness, key: SubscriptionKey) -> SubscriptionStatus:
    status = harness.user_agent.subscription_status(key)
    assert status is not None
    return status


def started(harness: Harness) -> SubscriptionKey:
    key = harness.user_agent.subscribe(BOB, "presence", harness.now)
    harness.drain()
    return key


def test_subscribing_again_to_a_live_subscription_sends_nothing() -> None:
    harness = Harness.create()
    key, _ = subscribed(harness)
    before = (status_of(harness, key), len(subscribes(harness)))

    assert harness.user_agent.subscribe(BOB, "presence", harness.now) == key
    harness.drain()

    assert (status_of(harness, key), len(subscribes(harness))) == before


@pytest.mark.parametrize(
    ("status", "phrase", "reason"),
    [
        (403, "Forbidden", FailureReason.FORBIDDEN),
        (404, "Not Found", FailureReason.NOT_FOUND),
        (604, "Does Not Exist Anywhere", FailureReason.NOT_FOUND),
        (486, "Busy Here", FailureReason.REJECTED),
    ],
)
def test_final_refusals_stop_until_subscribed_again(
    status: int, phrase: str, reason: FailureReason
) -> None:
    harness = Harness.create()
    key = started(harness)
    first = harness.last_request()
    harness.answer(reply(first, status, phrase))

    failed = status_of(harness, key)
    assert (failed.state, failed.reason, failed.status_code) == (
        SubscriptionState.FAILED,
        reason,
        status,
    )
    assert failed.retry_at is None
    harness.advance(7200)
    assert len(subscribes(harness)) == 1

    harness.user_agent.subscribe(BOB, "presence", harness.now)
    harness.drain()
    again = subscribes(harness)[-1]
    assert len(subscribes(harness)) == 2
    assert again.call_id != first.call_id
    assert status_of(harness, key).state is SubscriptionState.SUBSCRIBING


@pytest.mark.parametrize(
    ("status", "extra"),
    [(401, ('WWW-Authenticate: Digest realm="x", nonce="n", algorithm=nope',)), (486, ())],
)
def test_unsubscribing_while_the_subscribe_is_refused_ends_quietly(
    status: int, extra: tuple[str, ...]
) -> None:
    harness = Harness.create()
    key = started(harness)
    request = harness.last_request()
    harness.user_agent.unsubscribe(key, harness.now)
    harness.drain()
    assert status_of(harness, key).state is SubscriptionState.UNSUBSCRIBING

    harness.answer(reply(request, status, "No", *extra))

    assert status_of(harness, key) == SubscriptionStatus(SubscriptionState.UNSUBSCRIBED)
    assert len(subscribes(harness)) == 1


def test_unsubscribing_a_failed_subscription_ends_it_at_once_without_a_request() -> None:
    harness = Harness.create()
    key = started(harness)
    harness.answer(reply(harness.last_request(), 503, "Service Unavailable"))
    assert status_of(harness, key).state is SubscriptionState.FAILED

    harness.user_agent.unsubscribe(key, harness.now)
    harness.drain()

    assert status_of(harness, key) == SubscriptionStatus(SubscriptionState.UNSUBSCRIBED)
    harness.advance(3600)
    assert len(subscribes(harness)) == 1


def test_a_refused_unsubscribe_ends_the_subscription() -> None:
    harness = Harness.create()
    key, _ = subscribed(harness)
    harness.user_agent.unsubscribe(key, harness.now)
    harness.drain()
    harness.answer(reply(harness.last_request(), 481, "Call/Transaction Does Not Exist"))
    assert status_of(harness, key) == SubscriptionStatus(SubscriptionState.UNSUBSCRIBED)
    harness.advance(7200)
    assert subscribes(harness)[-1].headers.get("Expires") == "0"


def test_an_unanswered_unsubscribe_ends_the_subscription_after_timer_f() -> None:
    harness = Harness.create()
    key, _ = subscribed(harness)
    harness.user_agent.unsubscribe(key, harness.now)
    harness.drain()
    count = len(subscribes(harness))
    harness.advance(31)
    assert status_of(harness, key).state is SubscriptionState.UNSUBSCRIBING
    harness.advance(2)
    assert status_of(harness, key) == SubscriptionStatus(SubscriptionState.UNSUBSCRIBED)
    harness.advance(7200)
    assert len(subscribes(harness)) == count


def test_a_notify_with_another_to_tag_is_refused() -> None:
    harness = Harness.create()
    key, request = subscribed(harness)
    before = status_of(harness, key)
    data = notify(request, "terminated;reason=rejected", cseq=7).replace(
        f";tag={request.from_.tag}".encode(), b";tag=someone-else"
    )
    harness.answer(data)
    assert responses(harness)[-1].status == 481
    assert status_of(harness, key) == before


def test_a_notify_with_an_unreadable_subscription_state_gets_400() -> None:
    harness = Harness.create()
    key, request = subscribed(harness)
    before = status_of(harness, key)
    harness.answer(notify(request, "active;expires=soon", cseq=7))
    assert responses(harness)[-1].status == 400
    assert status_of(harness, key) == before
    assert len(notifies(harness)) == 1


@pytest.mark.parametrize("state", ["terminated;reason=moved-away", "terminated"])
def test_terminated_without_a_known_reason_retries_after_backoff(state: str) -> None:
    harness = Harness.create()
    key, request = subscribed(harness)
    harness.answer(notify(request, state, cseq=2, body=b""))
    failed = status_of(harness, key)
    assert (failed.state, failed.reason) == (
        SubscriptionState.FAILED,
        FailureReason.TERMINATED,
    )
    assert failed.retry_at is not None
    harness.advance(failed.retry_at - harness.now)
    again = subscribes(harness)[-1]
    assert again.call_id != request.call_id
    assert again.to.tag is None


def test_accepted_with_expires_zero_is_ended_and_tried_again_later() -> None:
    harness = Harness.create()
    key = started(harness)
    first = harness.last_request()
    harness.answer(reply(first, 202, "Accepted", "Expires: 0"))
    failed = status_of(harness, key)
    assert (failed.state, failed.reason, failed.status_code) == (
        SubscriptionState.FAILED,
        FailureReason.TERMINATED,
        202,
    )
    assert failed.retry_at is not None
    harness.advance(failed.retry_at - harness.now)
    assert subscribes(harness)[-1].call_id != first.call_id


def test_a_2xx_with_an_unreadable_expires_counts_as_a_server_error() -> None:
    harness = Harness.create()
    key = started(harness)
    harness.answer(reply(harness.last_request(), 200, "OK", "Expires: never"))
    failed = status_of(harness, key)
    assert (failed.state, failed.reason, failed.status_code) == (
        SubscriptionState.FAILED,
        FailureReason.SERVER_ERROR,
        200,
    )
    assert failed.retry_at is not None


def test_a_negative_expiry_is_refused_and_nothing_is_sent() -> None:
    harness = Harness.create()
    with pytest.raises(LocalProtocolError):
        harness.user_agent.subscribe(BOB, "presence", harness.now, expires=-1)
    harness.drain()
    assert subscribes(harness) == []


def test_a_notify_with_an_unknown_substate_gets_400() -> None:
    harness = Harness.create()
    key, request = subscribed(harness)
    before = status_of(harness, key)
    harness.answer(notify(request, "waiting;expires=600", cseq=7))
    assert responses(harness)[-1].status == 400
    assert status_of(harness, key) == before


def test_an_active_notify_while_unsubscribing_does_not_bring_the_subscription_back() -> None:
    harness = Harness.create()
    key, request = subscribed(harness)
    harness.user_agent.unsubscribe(key, harness.now)
    harness.drain()
    harness.answer(notify(request, "active;expires=600", cseq=2))
    assert responses(harness)[-1].status == 200
    assert status_of(harness, key).state is SubscriptionState.UNSUBSCRIBING
    assert notifies(harness)[-1].state is SubscriptionState.UNSUBSCRIBING


def test_unsubscribing_while_the_subscribe_is_accepted_ends_the_new_dialog() -> None:
    harness = Harness.create()
    key = started(harness)
    request = harness.last_request()
    harness.user_agent.unsubscribe(key, harness.now)
    harness.drain()
    assert len(subscribes(harness)) == 1

    harness.answer(reply(request, 200, "OK", "Expires: 600"))

    bye = subscribes(harness)[-1]
    assert len(subscribes(harness)) == 2
    assert bye.headers.get("Expires") == "0"
    assert bye.call_id == request.call_id
    assert bye.to.tag == "srv"
    assert status_of(harness, key).state is SubscriptionState.UNSUBSCRIBING
    harness.answer(reply(bye, 200, "OK", "Expires: 0"))
    harness.answer(notify(request, "terminated;reason=timeout", cseq=1, body=b""))
    assert status_of(harness, key) == SubscriptionStatus(SubscriptionState.UNSUBSCRIBED)
