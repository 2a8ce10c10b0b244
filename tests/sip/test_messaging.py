"""MESSAGE in and out, and message-summary NOTIFYs outside a subscription, with canned bytes."""

from __future__ import annotations

import pytest

from custom_components.sip_profiles.sip.client import FailureReason
from custom_components.sip_profiles.sip.inbound import UnsolicitedNotify
from custom_components.sip_profiles.sip.message import Request, Response, parse_message
from custom_components.sip_profiles.sip.messaging import (
    MAX_TEXT,
    MessageFailed,
    MessageReceived,
    MessageSent,
)
from custom_components.sip_profiles.sip.subscription import SubscriptionChanged, SubscriptionState
from custom_components.sip_profiles.sip.target import Target, Transport
from custom_components.sip_profiles.sip.uri import parse_sip_uri

from .canned import CHALLENGE, SERVER, Harness, reply

BOB = parse_sip_uri("sip:bob@sip.test")
SUMMARY = (
    b"Messages-Waiting: yes\r\nMessage-Account: sip:alice@sip.test\r\nVoice-Message: 2/8 (1/0)\r\n"
)


def incoming(
    method: str,
    body: bytes,
    *,
    content_type: str = "text/plain;charset=UTF-8",
    user: str = "alice",
    extra: tuple[str, ...] = (),
    branch: str = "z9hG4bKm1",
) -> bytes:
    head = "\r\n".join(
        [
            f"{method} sip:{user}@127.0.0.1:5070 SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport",
            'From: "Bob" <sip:bob@sip.test>;tag=b1',
            "To: <sip:alice@sip.test>",
            "Call-ID: m-1",
            f"CSeq: 3 {method}",
            "Max-Forwards: 69",
            *extra,
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "",
            "",
        ]
    )
    return head.encode() + body


def last_response(harness: Harness) -> Response:
    message = parse_message(harness.sent[-1].data)
    assert isinstance(message, Response)
    return message


@pytest.fixture
def registered() -> Harness:
    harness = Harness.create()
    harness.register_through_challenge()
    return harness


def test_text_message_is_taken_while_registered(registered: Harness) -> None:
    registered.answer(incoming("MESSAGE", "Dinner is ready ✓".encode()))
    assert last_response(registered).status == 200
    assert registered.events[-1] == MessageReceived(
        "sip:bob@sip.test", "Bob", "Dinner is ready ✓", truncated=False
    )


def test_long_text_is_cut_and_says_so(registered: Harness) -> None:
    registered.answer(incoming("MESSAGE", "ä".encode() * 3000))
    event = registered.events[-1]
    assert isinstance(event, MessageReceived)
    assert event.truncated
    assert len(event.text.encode()) <= MAX_TEXT
    assert event.text == "ä" * (MAX_TEXT // 2)


@pytest.mark.parametrize("content_type", ["application/im-iscomposing+xml", "text/html"])
def test_other_content_types_get_415(registered: Harness, content_type: str) -> None:
    before = len(registered.events)
    registered.answer(incoming("MESSAGE", b"<x/>", content_type=content_type))
    response = last_response(registered)
    assert response.status == 415
    assert response.headers.get("Accept") == "text/plain"
    assert len(registered.events) == before


def test_messages_are_refused_while_not_registered() -> None:
    harness = Harness.create()
    harness.answer(incoming("MESSAGE", b"hello"))
    assert last_response(harness).status == 480
    assert not any(isinstance(e, MessageReceived) for e in harness.events)


def test_message_for_another_address_gets_404(registered: Harness) -> None:
    registered.answer(incoming("MESSAGE", b"hello", user="carol"))
    assert last_response(registered).status == 404


def sent_messages(harness: Harness) -> list[Request]:
    return [r for r in harness.requests() if r.method == "MESSAGE"]


def test_outgoing_message_answers_the_challenge_once(registered: Harness) -> None:
    message_id = registered.user_agent.send_message(BOB, "Door open", registered.now)
    registered.drain()
    (first,) = sent_messages(registered)
    assert first.uri == BOB
    assert first.body == b"Door open"
    assert first.headers.get("Content-Type") == "text/plain;charset=UTF-8"
    proxy_challenge = CHALLENGE.replace('nonce="n1"', 'nonce="n2"')
    registered.answer(reply(first, 407, "Proxy Authentication Required",
                            f"Proxy-Authenticate: {proxy_challenge}"))  # fmt: skip
    second = sent_messages(registered)[-1]
    assert second.cseq.number == first.cseq.number + 1
    assert 'nonce="n2"' in (second.headers.get("Proxy-Authorization") or "")
    registered.answer(reply(second, 200, "OK"))
    assert registered.events[-1] == MessageSent(message_id)
    assert registered.user_agent._clients.messages == {}


def test_outgoing_message_refused(registered: Harness) -> None:
    message_id = registered.user_agent.send_message(BOB, "hi", registered.now)
    registered.drain()
    registered.answer(reply(sent_messages(registered)[-1], 404, "Not Found"))
    assert registered.events[-1] == MessageFailed(message_id, 404, "Not Found")


def test_outgoing_message_with_wrong_credentials_fails_after_one_answer(
    registered: Harness,
) -> None:
    message_id = registered.user_agent.send_message(BOB, "hi", registered.now)
    registered.drain()
    fresh = CHALLENGE.replace('nonce="n1"', 'nonce="n3"')
    registered.answer(reply(sent_messages(registered)[-1], 401, "Unauthorized",
                            f"WWW-Authenticate: {fresh}"))  # fmt: skip
    again = CHALLENGE.replace('nonce="n1"', 'nonce="n4"')
    registered.answer(reply(sent_messages(registered)[-1], 401, "Unauthorized",
                            f"WWW-Authenticate: {again}"))  # fmt: skip
    assert len(sent_messages(registered)) == 2
    assert registered.events[-1] == MessageFailed(message_id, 401, "Unauthorized")


def test_outgoing_message_times_out(registered: Harness) -> None:
    message_id = registered.user_agent.send_message(BOB, "hi", registered.now)
    registered.drain()
    registered.advance(31.9)
    assert not any(isinstance(e, MessageFailed) for e in registered.events)
    registered.advance(0.2)
    assert registered.events[-1] == MessageFailed(message_id, None, "timeout")


def test_outgoing_message_without_a_flow_fails_at_once() -> None:
    harness = Harness.create()
    harness.user_agent.connection_lost(harness.now)
    message_id = harness.user_agent.send_message(BOB, "hi", harness.now)
    harness.drain()
    assert harness.events[-1] == MessageFailed(message_id, None, "transport_error")


def unsolicited(event: str = "message-summary", body: bytes = SUMMARY) -> bytes:
    return incoming(
        "NOTIFY",
        body,
        content_type="application/simple-message-summary",
        extra=(f"Event: {event}", "Subscription-State: active"),
    )


def test_unsolicited_message_summary_from_the_registrar_is_taken(registered: Harness) -> None:
    registered.answer(unsolicited())
    assert last_response(registered).status == 200
    assert registered.events[-1] == UnsolicitedNotify("application/simple-message-summary", SUMMARY)


def test_unsolicited_message_summary_from_elsewhere_gets_403(registered: Harness) -> None:
    before = len(registered.events)
    registered.answer(unsolicited(), Target(Transport.UDP, "127.0.0.2", 5060))
    assert last_response(registered).status == 403
    assert len(registered.events) == before


def test_unsolicited_notify_of_another_package_gets_481(registered: Harness) -> None:
    registered.answer(unsolicited(event="presence"), SERVER)
    assert last_response(registered).status == 481


def test_message_summary_subscription_asks_for_the_summary_and_489_is_not_offered(
    registered: Harness,
) -> None:
    key = registered.user_agent.subscribe(
        parse_sip_uri("sip:alice@sip.test"), "message-summary", registered.now
    )
    registered.drain()
    subscribe = registered.last_request()
    assert subscribe.headers.get("Event") == "message-summary"
    assert subscribe.headers.get("Accept") == "application/simple-message-summary"
    registered.answer(reply(subscribe, 489, "Bad Event"))
    status = registered.user_agent.subscription_status(key)
    assert status is not None
    assert (status.state, status.reason) == (
        SubscriptionState.FAILED,
        FailureReason.NOT_OFFERED,
    )
    assert status.retry_at is None
    assert isinstance(registered.events[-1], SubscriptionChanged)


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        ("text/plain;charset=ISO-8859-1", "Grüße".encode("latin-1"), "Grüße"),
        ("text/plain;charset=x-unheard-of", "Grüße".encode(), "Grüße"),
        ("text/plain", b"caf\xe9", "caf\ufffd"),
    ],
)
def test_text_is_read_in_its_charset(
    registered: Harness, content_type: str, body: bytes, text: str
) -> None:
    registered.answer(incoming("MESSAGE", body, content_type=content_type))
    event = registered.events[-1]
    assert isinstance(event, MessageReceived)
    assert event.text == text


def test_message_challenged_while_the_registration_answers_its_own_waits_for_it() -> None:
    harness = Harness.create()
    harness.user_agent.register(harness.now)
    harness.drain()
    register = harness.last_request()
    message_id = harness.user_agent.send_message(BOB, "hi", harness.now)
    harness.drain()
    (first,) = sent_messages(harness)
    harness.answer(reply(register, 401, "Unauthorized", f"WWW-Authenticate: {CHALLENGE}"))
    harness.answer(reply(first, 401, "Unauthorized", f"WWW-Authenticate: {CHALLENGE}"))
    assert len(sent_messages(harness)) == 1  # waits for the registration's answer
    harness.answer(reply(harness.last_request(), 200, "OK"))
    again = sent_messages(harness)[-1]
    assert again is not first
    assert 'nonce="n1"' in (again.headers.get("Authorization") or "")
    harness.answer(reply(again, 200, "OK"))
    assert harness.events[-1] == MessageSent(message_id)
