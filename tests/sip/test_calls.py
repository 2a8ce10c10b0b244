"""Incoming calls watched, never answered: canned INVITEs, CANCELs and ACKs with driven time."""

from __future__ import annotations

import pytest

from custom_components.sip_profiles.sip.calls import (
    MAX_RINGING,
    MAX_TRANSACTIONS,
    RING_LIMIT,
    CallEnded,
    CallOutcome,
    IncomingCall,
)
from custom_components.sip_profiles.sip.target import Target, Transport

from .canned import Harness
from .test_subscription import responses

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)
TCP_SERVER = Target(Transport.TCP, "127.0.0.1", 5060)


def invite(
    *,
    branch: str = "z9hG4bKinv1",
    call_id: str = "call-1",
    to_tag: str | None = None,
    user: str = "alice",
    extra: tuple[str, ...] = (),
    transport: str = "UDP",
) -> bytes:
    to = "<sip:alice@sip.test>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"INVITE sip:{user}@127.0.0.1:5070 SIP/2.0",
        f"Via: SIP/2.0/{transport} 127.0.0.1:5060;branch={branch};rport",
        "Record-Route: <sip:127.0.0.1;lr>",
        'From: "Front Door" <sip:door@sip.test>;tag=caller1',
        f"To: {to}",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
        "Contact: <sip:door@127.0.0.1:5090>",
        "Max-Forwards: 69",
        *extra,
        "Content-Type: application/sdp",
        f"Content-Length: {len(SDP)}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + SDP


def in_transaction(
    method: str,
    *,
    branch: str = "z9hG4bKinv1",
    call_id: str = "call-1",
    to_tag: str | None = None,
    extra: tuple[str, ...] = (),
    transport: str = "UDP",
) -> bytes:
    """A CANCEL or ACK of the INVITE of ``branch`` (same Via branch, CSeq number)."""
    to = "<sip:alice@sip.test>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} sip:alice@127.0.0.1:5070 SIP/2.0",
        f"Via: SIP/2.0/{transport} 127.0.0.1:5060;branch={branch};rport",
        'From: "Front Door" <sip:door@sip.test>;tag=caller1',
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        "Max-Forwards: 69",
        *extra,
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def statuses(harness: Harness, method: str = "INVITE") -> list[int]:
    return [r.status for r in responses(harness) if r.cseq.method == method]


def call_events(harness: Harness) -> list[IncomingCall | CallEnded]:
    return [e for e in harness.events if isinstance(e, IncomingCall | CallEnded)]


@pytest.fixture
def ringing() -> Harness:
    """A registered profile that shows calls, with one call ringing."""
    harness = Harness.create(show_calls=True)
    harness.register_through_challenge()
    harness.sent.clear()
    harness.answer(invite())
    return harness


def test_invite_rings_and_is_reported(ringing: Harness) -> None:
    (response,) = responses(ringing)
    assert (response.status, response.reason) == (180, "Ringing")
    assert response.to.tag
    assert response.headers.get("Record-Route") == "<sip:127.0.0.1;lr>"
    assert response.headers.get("Contact") == "<sip:alice@127.0.0.1:5070>"
    assert not response.body
    assert call_events(ringing) == [
        IncomingCall("call-1", "door", "Front Door", "sip:alice@sip.test")
    ]
    assert ringing.user_agent.inbound.calls.ringing == ("call-1",)


def test_asserted_identity_names_the_caller() -> None:
    harness = Harness.create(show_calls=True)
    harness.register_through_challenge()
    harness.answer(
        invite(extra=('P-Asserted-Identity: "Pizza Place" <tel:+4930123456;phone-context=x>',))
    )
    (call,) = call_events(harness)
    assert isinstance(call, IncomingCall)
    assert (call.caller_number, call.caller_name) == ("+4930123456", "Pizza Place")


def test_retransmitted_invite_gets_the_same_180_and_fires_nothing(ringing: Harness) -> None:
    ringing.answer(invite())
    first, again = (t.data for t in ringing.sent)
    assert first == again
    assert len(call_events(ringing)) == 1


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        (('Reason: SIP ;cause=200 ;text="Call completed elsewhere"',), "answered_elsewhere"),
        (("Reason: Q.850;cause=16",), "missed"),
        ((), "missed"),
    ],
)
def test_cancel_ends_the_call(ringing: Harness, reason: tuple[str, ...], outcome: str) -> None:
    ringing.answer(in_transaction("CANCEL", extra=reason))
    assert statuses(ringing, "CANCEL") == [200]
    assert statuses(ringing) == [180, 487]
    ringing_180, terminated = (r for r in responses(ringing) if r.cseq.method == "INVITE")
    assert terminated.to.tag == ringing_180.to.tag
    assert call_events(ringing)[-1] == CallEnded("call-1", CallOutcome(outcome))
    assert ringing.user_agent.inbound.calls.ringing == ()


def test_cancel_racing_the_180_the_invite_copy_gets_the_487(ringing: Harness) -> None:
    # Our 180 was lost: the caller's INVITE comes again after its CANCEL.
    ringing.answer(in_transaction("CANCEL"))
    ringing.answer(invite())
    assert statuses(ringing) == [180, 487, 487]
    assert [type(e) for e in call_events(ringing)] == [IncomingCall, CallEnded]


def test_cancel_before_its_invite_matches_nothing() -> None:
    harness = Harness.create(show_calls=True)
    harness.register_through_challenge()
    harness.answer(in_transaction("CANCEL"))
    assert statuses(harness, "CANCEL") == [481]
    harness.answer(invite())
    assert statuses(harness) == [180]


def test_cancel_after_the_final_answer_changes_nothing(ringing: Harness) -> None:
    assert ringing.user_agent.decline_call(None, ringing.now)
    ringing.drain()
    ringing.answer(in_transaction("CANCEL", branch="z9hG4bKinv1"))
    assert statuses(ringing, "CANCEL") == [200]
    assert statuses(ringing) == [180, 603]
    assert [e for e in call_events(ringing) if isinstance(e, CallEnded)] == [
        CallEnded("call-1", CallOutcome.DECLINED)
    ]


def test_final_answer_is_retransmitted_until_timer_h(ringing: Harness) -> None:
    ringing.answer(in_transaction("CANCEL"))
    ringing.advance(31.9)
    # Timer G: 0.5, 1, 2, then every T2 (4 s) until Timer H at 64*T1 = 32 s.
    assert statuses(ringing) == [180] + [487] * 11
    ringing.advance(100)
    assert statuses(ringing) == [180] + [487] * 11
    assert ringing.user_agent.inbound.calls.deadline is None


def test_ack_stops_the_retransmissions_and_is_absorbed(ringing: Harness) -> None:
    ringing.answer(in_transaction("CANCEL"))
    ringing.advance(0.6)
    to_tag = responses(ringing)[-1].to.tag
    ringing.answer(in_transaction("ACK", to_tag=to_tag))
    sent = len(ringing.sent)
    ringing.answer(in_transaction("ACK", to_tag=to_tag))
    ringing.advance(60)
    assert len(ringing.sent) == sent
    assert statuses(ringing) == [180, 487, 487]
    assert ringing.user_agent.inbound.calls.deadline is None


def test_decline_answers_603_and_the_ack_ends_it(ringing: Harness) -> None:
    assert ringing.user_agent.decline_call("call-1", ringing.now)
    ringing.drain()
    decline = responses(ringing)[-1]
    assert (decline.status, decline.reason) == (603, "Decline")
    assert call_events(ringing)[-1] == CallEnded("call-1", CallOutcome.DECLINED)
    ringing.answer(in_transaction("ACK", to_tag=decline.to.tag))
    ringing.advance(60)
    assert statuses(ringing) == [180, 603]
    assert not ringing.user_agent.decline_call(None, ringing.now)


def test_decline_without_call_id_takes_the_newest(ringing: Harness) -> None:
    ringing.answer(invite(branch="z9hG4bKinv2", call_id="call-2"))
    assert not ringing.user_agent.decline_call("call-9", ringing.now)
    assert ringing.user_agent.decline_call(None, ringing.now)
    ringing.drain()
    assert ringing.user_agent.inbound.calls.ringing == ("call-1",)


def test_over_a_stream_the_final_answer_is_sent_once_and_the_ack_ends_it() -> None:
    harness = Harness.create(show_calls=True)
    harness.register_through_challenge()
    harness.answer(invite(transport="TCP"), TCP_SERVER)
    harness.answer(in_transaction("CANCEL", transport="TCP"), TCP_SERVER)
    harness.advance(10)
    assert statuses(harness) == [180, 487]
    assert all(t.target == TCP_SERVER for t in harness.sent[-3:])
    harness.answer(in_transaction("ACK", transport="TCP"), TCP_SERVER)
    harness.advance(0)
    assert harness.user_agent.inbound.calls.deadline is None


@pytest.mark.parametrize(
    ("extra", "status", "after"), [(("Expires: 30",), 487, 30.0), ((), 480, RING_LIMIT)]
)
def test_a_call_that_rings_too_long_is_missed(
    extra: tuple[str, ...], status: int, after: float
) -> None:
    harness = Harness.create(show_calls=True)
    harness.register_through_challenge()
    harness.answer(invite(extra=extra))
    harness.advance(after - 0.1)
    assert statuses(harness) == [180]
    harness.advance(0.2)
    assert statuses(harness) == [180, status]
    assert call_events(harness)[-1] == CallEnded("call-1", CallOutcome.MISSED)


def test_re_invite_gets_481(ringing: Harness) -> None:
    ringing.answer(invite(branch="z9hG4bKre", call_id="other", to_tag="abc"))
    assert statuses(ringing) == [180, 481]
    assert len(call_events(ringing)) == 1


def test_invite_for_another_address_gets_404(ringing: Harness) -> None:
    ringing.answer(invite(branch="z9hG4bKbob", call_id="for-bob", user="bob"))
    assert statuses(ringing) == [180, 404]
    assert len(call_events(ringing)) == 1


def test_the_same_invite_by_another_path_gets_482(ringing: Harness) -> None:
    ringing.answer(invite(branch="z9hG4bKfork"))
    assert statuses(ringing) == [180, 482]
    assert len(call_events(ringing)) == 1


@pytest.mark.parametrize("show_calls", [False, True])
def test_calls_not_shown_get_480(show_calls: bool) -> None:
    harness = Harness.create(show_calls=show_calls)
    if not show_calls:
        harness.register_through_challenge()  # shown only while registered
    harness.answer(invite())
    assert statuses(harness) == [480]
    assert call_events(harness) == []
    harness.answer(in_transaction("ACK", to_tag=responses(harness)[0].to.tag))
    harness.advance(60)
    assert statuses(harness) == [480]


def test_too_many_calls_at_once_get_486() -> None:
    harness = Harness.create(show_calls=True)
    harness.register_through_challenge()
    for index in range(MAX_RINGING + 1):
        harness.answer(invite(branch=f"z9hG4bK{index}", call_id=f"call-{index}"))
    assert statuses(harness) == [180] * MAX_RINGING + [486]


def test_a_flood_of_refused_invites_keeps_a_bounded_number_of_transactions() -> None:
    harness = Harness.create()  # calls not shown: every INVITE is refused with 480
    for index in range(MAX_TRANSACTIONS + 5):
        harness.answer(invite(branch=f"z9hG4bKf{index}", call_id=f"flood-{index}"))
    assert statuses(harness) == [480] * MAX_TRANSACTIONS + [486] * 5
    assert len(harness.user_agent.inbound.calls._calls) == MAX_TRANSACTIONS
    harness.advance(64 * 0.5)  # Timer H ends the unacknowledged ones
    assert harness.user_agent.inbound.calls._calls == {}
    harness.answer(invite(branch="z9hG4bKlate", call_id="late"))
    assert statuses(harness)[-1] == 480


def test_no_session_description_is_kept(ringing: Harness) -> None:
    calls = ringing.user_agent.inbound.calls._calls
    assert calls
    assert all(call.request.body == b"" for call in calls.values())


def test_discard_forgets_every_call(ringing: Harness) -> None:
    ringing.user_agent.discard()
    assert ringing.user_agent.inbound.calls.ringing == ()
    assert ringing.user_agent.inbound.calls.deadline is None
