"""Subscriptions through the user agent, with canned notifier answers and driven time."""

from __future__ import annotations

import itertools

import pytest

from custom_components.sip_profiles.sip.client import FailureReason
from custom_components.sip_profiles.sip.documents.pidf import MyPresence
from custom_components.sip_profiles.sip.message import Request, Response, parse_message
from custom_components.sip_profiles.sip.subscription import (
    NotifyReceived,
    SubscriptionChanged,
    SubscriptionKey,
    SubscriptionState,
)
from custom_components.sip_profiles.sip.uri import parse_sip_uri

from .canned import CHALLENGE, SERVER, Harness, ok_for, reply

BOB = parse_sip_uri("sip:bob@sip.test")
_BRANCHES = itertools.count()
PIDF = b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:bob@sip.test"/>'


def subscribes(harness: Harness) -> list[Request]:
    """Distinct SUBSCRIBE requests (retransmissions counted once)."""
    seen: dict[str, Request] = {}
    for request in harness.requests():
        if request.method == "SUBSCRIBE":
            seen.setdefault(request.top_via.branch or "", request)
    return list(seen.values())


def responses(harness: Harness) -> list[Response]:
    out: list[Response] = []
    for transmit in harness.sent:
        if transmit.data.startswith(b"SIP/2.0"):
            message = parse_message(transmit.data)
            assert isinstance(message, Response)
            out.append(message)
    return out


def notify(
    subscription: Request,
    state: str = "active;expires=600",
    *,
    cseq: int = 1,
    body: bytes = PIDF,
    from_tag: str = "srv",
    call_id: str | None = None,
    event: str = "presence",
    branch: str | None = None,
    extra: tuple[str, ...] = (),
) -> bytes:
    """A NOTIFY from the notifier in the dialog of ``subscription`` (a new branch unless given)."""
    branch = branch or f"z9hG4bK{next(_BRANCHES)}"
    local_tag = subscription.from_.tag
    lines = [
        "NOTIFY sip:alice@127.0.0.1:5070 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}",
        "Max-Forwards: 70",
        f"From: <sip:bob@sip.test>;tag={from_tag}",
        f"To: <sip:alice@sip.test>;tag={local_tag}",
        f"Call-ID: {call_id or subscription.call_id}",
        f"CSeq: {cseq} NOTIFY",
        f"Event: {event}",
        f"Subscription-State: {state}",
        "Contact: <sip:presence@127.0.0.1:5060;transport=udp>",
        *extra,
    ]
    if body:
        lines.append("Content-Type: application/pidf+xml")
    lines += [f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


def notifies(harness: Harness) -> list[NotifyReceived]:
    return [e for e in harness.events if isinstance(e, NotifyReceived)]


def status_changes(harness: Harness) -> list[SubscriptionChanged]:
    return [e for e in harness.events if isinstance(e, SubscriptionChanged)]


def subscribed(
    harness: Harness, expires: int = 600, *headers: str
) -> tuple[SubscriptionKey, Request]:
    """Subscribe to Bob's presence: SUBSCRIBE -> 401 -> SUBSCRIBE -> 200 -> NOTIFY active."""
    key = harness.user_agent.subscribe(BOB, "presence", harness.now)
    harness.drain()
    harness.answer(
        reply(harness.last_request(), 401, "Unauthorized", f"WWW-Authenticate: {CHALLENGE}")
    )
    request = harness.last_request()
    harness.answer(reply(request, 200, "OK", f"Expires: {expires}", *headers))
    harness.answer(notify(request, f"active;expires={expires}"))
    return key, request


def test_subscribe_sends_event_accept_contact_and_expires_and_answers_the_challenge() -> None:
    harness = Harness.create()
    key = harness.user_agent.subscribe(BOB, "presence", harness.now)
    harness.drain()
    assert key == SubscriptionKey("sip:bob@sip.test", "presence")
    first = harness.last_request()
    assert first.method == "SUBSCRIBE"
    assert str(first.uri) == "sip:bob@sip.test"
    assert first.headers.get("Event") == "presence"
    assert first.headers.get("Accept") == "application/pidf+xml"
    assert first.headers.get("Expires") == "3600"
    assert first.headers.get("Contact") == "<sip:alice@127.0.0.1:5070>"
    assert first.to.tag is None
    assert harness.user_agent.subscription_status(key).state is SubscriptionState.SUBSCRIBING

    harness.answer(reply(first, 401, "Unauthorized", f"WWW-Authenticate: {CHALLENGE}"))
    second = harness.last_request()
    assert 'uri="sip:bob@sip.test"' in (second.headers.get("Authorization") or "")
    assert second.call_id == first.call_id
    assert second.cseq.number == first.cseq.number + 1

    harness.answer(reply(second, 200, "OK", "Expires: 600"))
    status = harness.user_agent.subscription_status(key)
    assert status.expires == 600
    assert status.refresh_at == pytest.approx(harness.now + 540)

    harness.answer(notify(second))
    assert harness.user_agent.subscription_status(key).state is SubscriptionState.ACTIVE
    (event,) = notifies(harness)
    assert event == NotifyReceived(key, SubscriptionState.ACTIVE, "application/pidf+xml", PIDF)
    answer = responses(harness)[-1]
    assert answer.status == 200
    assert answer.to.tag == second.from_.tag
    assert answer.call_id == second.call_id


@pytest.mark.parametrize(
    ("package", "accept"),
    [("dialog", "application/dialog-info+xml"), ("presence.winfo", "application/watcherinfo+xml")],
)
def test_accept_follows_the_event_package(package: str, accept: str) -> None:
    harness = Harness.create()
    harness.user_agent.subscribe(BOB, package, harness.now)
    harness.drain()
    assert harness.last_request().headers.get("Event") == package
    assert harness.last_request().headers.get("Accept") == accept


def test_refresh_at_ninety_percent_in_the_dialog_to_the_remote_target() -> None:
    harness = Harness.create()
    route = "Record-Route: <sip:p1.sip.test;lr>, <sip:p2.sip.test;lr>"
    key, request = subscribed(harness, 600, "Contact: <sip:pres@10.0.0.9:5060>", route)
    harness.advance(539)
    assert len(subscribes(harness)) == 2
    harness.advance(1)
    refresh = subscribes(harness)[-1]
    assert len(subscribes(harness)) == 3
    assert str(refresh.uri) == "sip:presence@127.0.0.1:5060;transport=udp"  # NOTIFY's Contact
    assert refresh.headers.get_all("Route") == ["<sip:p2.sip.test;lr>", "<sip:p1.sip.test;lr>"]
    assert refresh.call_id == request.call_id
    assert refresh.from_.tag == request.from_.tag
    assert refresh.to.tag == "srv"
    assert refresh.cseq.number == request.cseq.number + 1
    assert "Authorization" in refresh.headers
    harness.answer(reply(refresh, 200, "OK", "Expires: 600"))
    status = harness.user_agent.subscription_status(key)
    assert status.state is SubscriptionState.ACTIVE
    assert status.refresh_at == pytest.approx(harness.now + 540)


def test_a_notify_that_overtakes_the_200_forms_the_dialog() -> None:
    harness = Harness.create()
    key = harness.user_agent.subscribe(BOB, "presence", harness.now)
    harness.drain()
    request = harness.last_request()
    harness.answer(notify(request, "pending;expires=3600", body=b"", from_tag="early",
                          extra=("Record-Route: <sip:p1.sip.test;lr>",)))  # fmt: skip
    assert responses(harness)[-1].status == 200
    assert harness.user_agent.subscription_status(key).state is SubscriptionState.PENDING
    harness.answer(reply(request, 200, "OK", "Expires: 3600"))  # its To tag is "srv"
    harness.answer(notify(request, cseq=2, from_tag="early", branch="z9hG4bKn2"))
    assert harness.user_agent.subscription_status(key).state is SubscriptionState.ACTIVE
    harness.advance(540)  # the NOTIFY granted 600 s
    refresh = subscribes(harness)[-1]
    assert refresh.to.tag == "early"
    assert refresh.headers.get_all("Route") == ["<sip:p1.sip.test;lr>"]
    assert len(notifies(harness)) == 2


@pytest.mark.parametrize("reason", ["deactivated", "timeout"])
def test_deactivated_or_timeout_subscribes_again_at_once_in_a_new_dialog(reason: str) -> None:
    harness = Harness.create()
    key, request = subscribed(harness)
    harness.answer(
        notify(request, f"terminated;reason={reason}", cseq=2, body=b"", branch="z9hG4bKn2")
    )
    assert responses(harness)[-1].status == 200
    again = subscribes(harness)[-1]
    assert again.call_id != request.call_id
    assert again.to.tag is None
    assert again.from_.tag != request.from_.tag
    status = harness.user_agent.subscription_status(key)
    assert status.state is SubscriptionState.SUBSCRIBING
    assert status.reason == reason
    # the old dialog is gone: its NOTIFYs are refused
    harness.answer(notify(request, cseq=3, branch="z9hG4bKold"))
    assert responses(harness)[-1].status == 481


def test_deactivated_again_before_any_active_notify_backs_off() -> None:
    harness = Harness.create()
    _, request = subscribed(harness)
    harness.answer(
        notify(request, "terminated;reason=deactivated", cseq=2, body=b"", branch="z9hG4bKn2")
    )
    again = subscribes(harness)[-1]
    harness.answer(notify(again, "terminated;reason=deactivated", body=b""))
    count = len(subscribes(harness))
    status = harness.user_agent.subscription_status(SubscriptionKey("sip:bob@sip.test", "presence"))
    assert status.state is SubscriptionState.FAILED
    assert status.retry_at is not None
    assert 15 <= status.retry_at - harness.now <= 30
    harness.advance(30)
    assert len(subscribes(harness)) == count + 1


@pytest.mark.parametrize(
    ("state", "delay"), [("terminated;reason=probation;retry-after=120", 120),
                         ("terminated;reason=giveup;retry-after=45", 45)]
)  # fmt: skip
def test_probation_and_giveup_wait_for_retry_after(state: str, delay: int) -> None:
    harness = Harness.create()
    key, request = subscribed(harness)
    harness.answer(notify(request, state, cseq=2, body=b"", branch="z9hG4bKn2"))
    count = len(subscribes(harness))
    status = harness.user_agent.subscription_status(key)
    assert status.state is SubscriptionState.FAILED
    assert status.retry_at == pytest.approx(harness.now + delay)
    harness.advance(delay - 1)
    assert len(subscribes(harness)) == count
    harness.advance(1)
    assert len(subscribes(harness)) == count + 1
    assert subscribes(harness)[-1].call_id != request.call_id


def test_giveup_without_retry_after_backs_off() -> None:
    harness = Harness.create()
    key, request = subscribed(harness)
    harness.answer(
        notify(request, "terminated;reason=giveup", cseq=2, body=b"", branch="z9hG4bKn2")
    )
    status = harness.user_agent.subscription_status(key)
    assert status.reason is FailureReason.GIVEUP
    assert status.retry_at is not None
    assert 15 <= status.retry_at - harness.now <= 30


@pytest.mark.parametrize("reason", ["rejected", "noresource", "invariant"])
def test_final_reasons_stop_and_say_why(reason: str) -> None:
    harness = Harness.create()
    key, request = subscribed(harness)
    harness.answer(
        notify(request, f"terminated;reason={reason}", cseq=2, body=b"", branch="z9hG4bKn2")
    )
    count = len(subscribes(harness))
    status = harness.user_agent.subscription_status(key)
    assert status.state is SubscriptionState.FAILED
    assert status.reason == reason
    assert status.retry_at is None
    harness.advance(7200)
    assert len(subscribes(harness)) == count


def test_481_to_a_refresh_subscribes_anew() -> None:
    harness = Harness.create()
    key, request = subscribed(harness)
    harness.advance(540)
    refresh = subscribes(harness)[-1]
    harness.answer(reply(refresh, 481, "Call/Transaction Does Not Exist"))
    again = subscribes(harness)[-1]
    assert again.call_id != request.call_id
    assert again.to.tag is None
    assert str(again.uri) == "sip:bob@sip.test"
    assert harness.user_agent.subscription_status(key).reason is FailureReason.DIALOG_LOST


def test_489_reports_the_package_as_not_offered() -> None:
    harness = Harness.create()
    key = harness.user_agent.subscribe(BOB, "presence.winfo", harness.now)
    harness.drain()
    harness.answer(reply(harness.last_request(), 489, "Bad Event"))
    status = harness.user_agent.subscription_status(key)
    assert status.state is SubscriptionState.FAILED
    assert status.reason is FailureReason.NOT_OFFERED
    assert status.status_code == 489
    harness.advance(7200)
    assert len(subscribes(harness)) == 1


def test_a_foreign_notify_gets_481_and_changes_nothing() -> None:
    harness = Harness.create()
    key, request = subscribed(harness)
    before = (harness.user_agent.subscription_status(key), len(harness.events))
    harness.answer(notify(request, "terminated;reason=rejected", call_id="other-call", cseq=9))
    assert responses(harness)[-1].status == 481
    harness.answer(notify(request, "terminated;reason=rejected", from_tag="intruder", cseq=9,
                          branch="z9hG4bKn2"))  # fmt: skip
    assert responses(harness)[-1].status == 481
    harness.answer(notify(request, "terminated;reason=rejected", event="dialog", cseq=9,
                          branch="z9hG4bKn3"))  # fmt: skip
    assert responses(harness)[-1].status == 481
    assert (harness.user_agent.subscription_status(key), len(harness.events)) == before


def test_a_malformed_or_old_notify_changes_nothing() -> None:
    harness = Harness.create()
    key, request = subscribed(harness)
    before = harness.user_agent.subscription_status(key)
    bad = notify(request, cseq=5).replace(b"Subscription-State: active;expires=600\r\n", b"")
    harness.answer(bad)
    assert responses(harness)[-1].status == 400
    harness.answer(notify(request, "terminated;reason=rejected", cseq=0, branch="z9hG4bKn4"))
    assert responses(harness)[-1].status == 500
    assert harness.user_agent.subscription_status(key) == before
    assert len(notifies(harness)) == 1


def test_a_retransmitted_notify_gets_the_same_200_and_is_applied_once() -> None:
    harness = Harness.create()
    _, request = subscribed(harness)
    data = notify(request, cseq=2, branch="z9hG4bKagain")
    harness.answer(data)
    harness.answer(data)
    assert len(notifies(harness)) == 2
    first, second = (t.data for t in harness.sent[-2:])
    assert first == second
    assert first.startswith(b"SIP/2.0 200")


def test_a_copy_of_a_notify_is_its_transaction_until_timer_j_then_a_new_request() -> None:
    harness = Harness.create()
    _, request = subscribed(harness)
    data = notify(request, cseq=2, branch="z9hG4bKcopy")
    harness.answer(data)
    harness.advance(31.5)  # Timer J: 64 T1 = 32 s over UDP
    harness.answer(data)
    assert len(notifies(harness)) == 2  # the copy was answered by the transaction
    assert responses(harness)[-1].to_bytes() == responses(harness)[-2].to_bytes()
    harness.advance(1)
    harness.answer(data)  # the transaction is gone: the same CSeq again is taken anew
    assert len(notifies(harness)) == 3
    assert responses(harness)[-1].status == 200


def test_a_notify_sent_again_in_a_new_transaction_is_taken() -> None:
    # Over TCP the transaction of an answered NOTIFY ends at once (Timer J is 0): a notifier
    # that sends it again (its 200 went with a broken connection) reaches the dialog itself.
    harness = Harness.create()
    key, request = subscribed(harness)
    before = harness.user_agent.subscription_status(key)
    harness.answer(notify(request, cseq=1, branch="z9hG4bKresent"))
    assert responses(harness)[-1].status == 200
    assert harness.user_agent.subscription_status(key) == before


def test_unsubscribe_waits_for_the_final_notify() -> None:
    harness = Harness.create()
    key, request = subscribed(harness)
    harness.user_agent.unsubscribe(key, harness.now)
    harness.drain()
    bye = harness.last_request()
    assert bye.headers.get("Expires") == "0"
    assert bye.call_id == request.call_id
    assert bye.to.tag == "srv"
    assert harness.user_agent.subscription_status(key).state is SubscriptionState.UNSUBSCRIBING
    harness.answer(reply(bye, 200, "OK", "Expires: 0"))
    harness.answer(
        notify(request, "terminated;reason=timeout", cseq=2, body=b"", branch="z9hG4bKn2")
    )
    assert harness.user_agent.subscription_status(key).state is SubscriptionState.UNSUBSCRIBED
    assert notifies(harness)[-1].state is SubscriptionState.UNSUBSCRIBED
    harness.advance(7200)
    assert len(subscribes(harness)) == 3


def test_unsubscribe_ends_without_a_final_notify_after_a_while() -> None:
    harness = Harness.create()
    key, _ = subscribed(harness)
    harness.user_agent.unsubscribe(key, harness.now)
    harness.drain()
    harness.answer(reply(harness.last_request(), 200, "OK", "Expires: 0"))
    harness.advance(40)
    assert harness.user_agent.subscription_status(key).state is SubscriptionState.UNSUBSCRIBED


def test_the_flow_coming_back_starts_new_dialogs() -> None:
    harness = Harness.create()
    key, request = subscribed(harness)
    harness.user_agent.connection_lost(harness.now)
    harness.drain()
    harness.user_agent.connection_up(("127.0.0.1", 5072), harness.now)
    harness.drain()
    again = subscribes(harness)[-1]
    assert again.call_id != request.call_id
    assert again.headers.get("Contact") == "<sip:alice@127.0.0.1:5072>"
    assert harness.user_agent.subscription_status(key).reason is FailureReason.DIALOG_LOST


def test_concurrent_stale_challenges_are_answered_once_and_do_not_poison_the_credentials() -> None:
    harness = Harness.create()
    _, first = subscribed(harness)
    carol = parse_sip_uri("sip:carol@sip.test")
    harness.user_agent.subscribe(carol, "presence", harness.now)
    harness.drain()
    carols = harness.last_request()
    harness.answer(reply(carols, 200, "OK", "Expires: 600"))
    harness.answer(notify(carols))
    harness.advance(540)
    refreshes = subscribes(harness)[-2:]
    assert {r.call_id for r in refreshes} != {first.call_id}
    stale = 'Digest realm="sip.test", nonce="n{}", qop="auth", algorithm=MD5, stale=true'
    harness.answer(reply(refreshes[0], 401, "Unauthorized", f"WWW-Authenticate: {stale.format(2)}"))
    harness.answer(reply(refreshes[1], 401, "Unauthorized", f"WWW-Authenticate: {stale.format(3)}"))
    assert len(subscribes(harness)) == len(refreshes) + 3 + 1  # only the first was answered
    probe = subscribes(harness)[-1]
    assert 'nonce="n2"' in (probe.headers.get("Authorization") or "")
    harness.answer(reply(probe, 200, "OK", "Expires: 600"))
    resent = subscribes(harness)[-1]
    assert resent.call_id == refreshes[1].call_id
    assert 'nonce="n2"' in (resent.headers.get("Authorization") or "")
    harness.answer(reply(resent, 200, "OK", "Expires: 600"))
    states = {s.state for s in harness.user_agent.subscriptions.values()}
    assert SubscriptionState.FAILED not in states
    harness.user_agent.register(harness.now)
    harness.drain()
    assert 'nonce="n2"' in (harness.last_request().headers.get("Authorization") or "")


def test_bad_package_is_refused_and_nothing_is_sent() -> None:
    from custom_components.sip_profiles.sip.errors import LocalProtocolError  # noqa: PLC0415

    harness = Harness.create()
    with pytest.raises(LocalProtocolError):
        harness.user_agent.subscribe(BOB, "pres ence", harness.now)
    harness.drain()
    assert subscribes(harness) == []
    assert harness.user_agent.subscriptions == {}


def test_a_notify_for_no_subscription_is_refused() -> None:
    harness = Harness.create()
    fake = Request("SUBSCRIBE", BOB, parse_message(notify_stub()).headers)
    harness.answer(notify(fake))
    assert responses(harness)[-1].status == 481
    assert harness.events == []
    assert SERVER.port == 5060


def notify_stub() -> bytes:
    return (
        b"SUBSCRIBE sip:bob@sip.test SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\n"
        b"From: <sip:alice@sip.test>;tag=zz\r\nTo: <sip:bob@sip.test>\r\nCall-ID: nobody\r\n"
        b"CSeq: 1 SUBSCRIBE\r\nContent-Length: 0\r\n\r\n"
    )


def test_a_flow_that_keeps_breaking_before_any_notify_backs_off() -> None:
    harness = Harness.create()
    key, _ = subscribed(harness)
    for port in (5072, 5074):
        harness.user_agent.connection_lost(harness.now)
        harness.user_agent.connection_up(("127.0.0.1", port), harness.now)
        harness.drain()
    status = harness.user_agent.subscription_status(key)
    assert status is not None
    assert status.state is SubscriptionState.FAILED
    assert status.reason is FailureReason.DIALOG_LOST
    assert status.retry_at is not None
    assert len(subscribes(harness)) == 3


def test_proxy_challenges_are_answered() -> None:
    harness = Harness.create()
    key = harness.user_agent.subscribe(BOB, "presence", harness.now)
    harness.drain()
    harness.answer(
        reply(harness.last_request(), 407, "Proxy Authentication Required",
              f"Proxy-Authenticate: {CHALLENGE}")
    )  # fmt: skip
    again = harness.last_request()
    assert 'username="alice"' in (again.headers.get("Proxy-Authorization") or "")
    harness.answer(reply(again, 200, "OK", "Expires: 600"))
    assert harness.user_agent.subscription_status(key).status_code == 200


def test_the_registration_coming_back_starts_new_dialogs_and_publishes_anew() -> None:
    harness = Harness.create()
    harness.register_through_challenge(expires=600)
    key, request = subscribed(harness)
    harness.user_agent.publish(MyPresence.AWAY, None, harness.now)
    harness.drain()
    harness.answer(reply(harness.last_request(), 200, "OK", "SIP-ETag: e1", "Expires: 3600"))
    harness.advance(540)  # the REGISTER refresh fails...
    refresh = [r for r in harness.requests() if r.method == "REGISTER"][-1]
    harness.answer(reply(refresh, 500, "Server Error"))
    assert harness.user_agent.subscription_status(key).state is SubscriptionState.ACTIVE
    harness.advance(30)  # ... and its retry succeeds
    retry = [r for r in harness.requests() if r.method == "REGISTER"][-1]
    harness.answer(ok_for(retry, 600))
    again = subscribes(harness)[-1]
    assert again.call_id != request.call_id
    publish = [r for r in harness.requests() if r.method == "PUBLISH"][-1]
    assert publish.headers.get("SIP-If-Match") is None
    assert publish.body


def test_no_notify_after_the_200_fails_and_subscribes_again_after_backoff() -> None:
    harness = Harness.create()
    key = harness.user_agent.subscribe(BOB, "presence", harness.now)
    harness.drain()
    first = harness.last_request()
    harness.answer(reply(first, 200, "OK", "Expires: 3600"))
    harness.advance(31)
    assert harness.user_agent.subscription_status(key).state is SubscriptionState.SUBSCRIBING
    harness.advance(1)
    status = harness.user_agent.subscription_status(key)
    assert status.state is SubscriptionState.FAILED
    assert status.reason is FailureReason.NO_NOTIFY
    assert status.retry_at is not None
    harness.advance(30)
    again = subscribes(harness)[-1]
    assert again.call_id != first.call_id
    # the old dialog's late NOTIFY is refused
    harness.answer(notify(first))
    assert responses(harness)[-1].status == 481
