"""The registration client through the user agent, with canned answers and driven time."""

from __future__ import annotations

import re

import pytest

from custom_components.sip_profiles.sip.backoff import Backoff, BackoffPolicy
from custom_components.sip_profiles.sip.documents.pidf import MyPresence
from custom_components.sip_profiles.sip.grammar import param, parse_params
from custom_components.sip_profiles.sip.message import Request, parse_message
from custom_components.sip_profiles.sip.registration import (
    AllBindingsRemoved,
    BindingsListed,
    FailureReason,
    OperationFailed,
    RegistrationState,
)
from custom_components.sip_profiles.sip.target import Target, Transport
from custom_components.sip_profiles.sip.uri import parse_sip_uri
from custom_components.sip_profiles.sip.useragent import ConnectionNeeded, MessageDropped

from .canned import CHALLENGE, LOCAL, SERVER, Harness, ok_for, reply


def register_count(harness: Harness) -> int:
    """Distinct REGISTER transactions (retransmissions not counted)."""
    return len({r.top_via.branch for r in harness.requests() if r.method == "REGISTER"})


def test_register_answers_the_challenge_and_schedules_the_refresh() -> None:
    harness = Harness.create()
    harness.user_agent.register(harness.now)
    harness.drain()
    first = harness.last_request()
    assert first.method == "REGISTER"
    assert str(first.uri) == "sip:sip.test"
    assert first.headers.get("Authorization") is None
    assert first.headers.get("Expires") == "3600"
    assert first.top_via.branch is not None
    assert first.top_via.branch.startswith("z9hG4bK")
    assert "rport" in dict(first.top_via.params)
    assert harness.status.state is RegistrationState.REGISTERING

    harness.answer(reply(first, 401, "Unauthorized", f"WWW-Authenticate: {CHALLENGE}"))
    second = harness.last_request()
    authorization = second.headers.get("Authorization") or ""
    assert 'username="alice"' in authorization
    assert "nc=00000001" in authorization
    assert second.cseq.number == first.cseq.number + 1
    assert second.call_id == first.call_id
    assert second.from_.param("tag") == first.from_.param("tag")

    harness.answer(ok_for(second, 1800))
    status = harness.status
    assert status.state is RegistrationState.REGISTERED
    assert status.expires == 1800
    assert status.refresh_at == pytest.approx(harness.now + 1620)
    assert status.contact == "sip:alice@127.0.0.1:5070"
    assert status.bindings[0].ours


def test_refresh_keeps_call_id_and_tag_and_reuses_the_nonce() -> None:
    harness = Harness.create()
    harness.register_through_challenge(expires=600)
    registered = harness.last_request()
    harness.advance(539)
    assert harness.last_request() is not None
    assert harness.last_request().cseq.number == registered.cseq.number
    harness.advance(1)
    refresh = harness.last_request()
    assert refresh.cseq.number == registered.cseq.number + 1
    assert refresh.call_id == registered.call_id
    assert refresh.from_.param("tag") == registered.from_.param("tag")
    assert "nc=00000002" in (refresh.headers.get("Authorization") or "")
    harness.answer(ok_for(refresh, 600))
    assert harness.status.state is RegistrationState.REGISTERED
    assert [s.state for s in harness.statuses()].count(RegistrationState.REGISTERING) == 1


def test_every_request_gets_fresh_random_branch_and_cnonce() -> None:
    # Tokens are cut from blocks of random octets; 40 requests use several blocks.
    harness = Harness.create()
    harness.register_through_challenge(expires=600)
    for _ in range(40):
        harness.advance(540)
        harness.answer(ok_for(harness.last_request(), 600))
    requests = harness.requests()
    branches = [r.top_via.branch or "" for r in requests]
    cnonces = [
        param(parse_params((r.headers.get("Authorization") or "")[7:], ","), "cnonce")
        for r in requests[1:]
    ]
    assert len(requests) == 42
    assert len(set(branches)) == len(branches)
    assert all(re.fullmatch("z9hG4bK[0-9a-f]{24}", branch) for branch in branches)
    assert len(set(cnonces)) == len(cnonces)
    assert all(re.fullmatch("[0-9a-f]{32}", cnonce or "") for cnonce in cnonces)


def test_a_stale_nonce_is_answered_without_a_failure() -> None:
    harness = Harness.create()
    harness.register_through_challenge(expires=600)
    harness.advance(540)
    stale = CHALLENGE.replace('nonce="n1"', 'nonce="n2", stale=true')
    harness.answer(reply(harness.last_request(), 401, "Unauthorized", f"WWW-Authenticate: {stale}"))
    retry = harness.last_request()
    assert 'nonce="n2"' in (retry.headers.get("Authorization") or "")
    harness.answer(ok_for(retry, 600))
    assert RegistrationState.FAILED not in [s.state for s in harness.statuses()]


def test_wrong_password_stops_after_two_registers() -> None:
    harness = Harness.create()
    harness.user_agent.register(harness.now)
    harness.drain()
    for _ in range(2):
        harness.answer(
            reply(harness.last_request(), 401, "Unauthorized", f"WWW-Authenticate: {CHALLENGE}")
        )
    assert register_count(harness) == 2
    assert harness.status.state is RegistrationState.FAILED
    assert harness.status.reason is FailureReason.AUTH_FAILED
    assert harness.status.retry_at is None
    harness.advance(7200)
    assert register_count(harness) == 2


def test_rejected_nonce_reuse_gets_one_fresh_answer_then_stops() -> None:
    harness = Harness.create()
    harness.register_through_challenge(expires=600)
    harness.advance(540)
    fresh = CHALLENGE.replace('nonce="n1"', 'nonce="n9"')
    for _ in range(2):
        harness.answer(
            reply(harness.last_request(), 401, "Unauthorized", f"WWW-Authenticate: {fresh}")
        )
    assert register_count(harness) == 4
    assert harness.status.reason is FailureReason.AUTH_FAILED


@pytest.mark.parametrize(
    ("status", "reason"),
    [(403, FailureReason.FORBIDDEN), (404, FailureReason.NOT_FOUND), (488, FailureReason.REJECTED)],
)
def test_final_rejections_stop_without_retrying(status: int, reason: FailureReason) -> None:
    harness = Harness.create()
    harness.user_agent.register(harness.now)
    harness.drain()
    harness.answer(reply(harness.last_request(), status, "No"))
    assert harness.status.state is RegistrationState.FAILED
    assert harness.status.reason is reason
    assert harness.status.status_code == status
    assert harness.status.retry_at is None
    harness.advance(86400)
    assert register_count(harness) == 1


def test_backoff_policy_bounds_and_reset() -> None:
    backoff = Backoff(BackoffPolicy(base=1, cap=8, jitter=0.5))
    delays = [backoff.next_delay() for _ in range(6)]
    for delay, ceiling in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next_delay() <= 1


def test_udp_timeout_retransmits_then_fails_and_retries_later() -> None:
    harness = Harness.create()
    harness.user_agent.register(harness.now)
    harness.drain()
    harness.advance(31.9)
    # Timer E: 0.5, 1.5, 3.5, 7.5, then every 4 s up to 31.5.
    assert harness.user_agent.stats.retransmissions == 10
    harness.advance(0.1)
    assert harness.status.reason is FailureReason.TIMEOUT
    assert harness.status.retry_at is not None
    assert 15 <= harness.status.retry_at - harness.now <= 30


def test_duplicate_final_responses_change_nothing() -> None:
    harness = Harness.create()
    harness.register_through_challenge()
    events_before = len(harness.events)
    request = harness.last_request()
    harness.answer(ok_for(request, 3600))
    harness.answer(reply(request, 500, "Late"))
    assert len(harness.events) == events_before
    assert harness.status.state is RegistrationState.REGISTERED


def test_unregister_sends_expires_zero_for_our_contact() -> None:
    harness = Harness.create()
    harness.register_through_challenge()
    harness.user_agent.unregister(harness.now)
    harness.drain()
    request = harness.last_request()
    assert request.headers.get("Expires") == "0"
    assert request.headers.get("Contact") == "<sip:alice@127.0.0.1:5070>"
    assert harness.status.state is RegistrationState.UNREGISTERING
    harness.answer(reply(request, 200, "OK"))
    assert harness.status.state is RegistrationState.UNREGISTERED
    harness.advance(7200)
    assert register_count(harness) == 3


def test_unregister_all_counts_then_removes_every_binding() -> None:
    harness = Harness.create()
    harness.register_through_challenge()
    harness.user_agent.unregister_all(harness.now)
    harness.drain()
    query = harness.last_request()
    assert query.headers.get("Contact") is None
    harness.answer(
        reply(
            query,
            200,
            "OK",
            "Contact: <sip:alice@127.0.0.1:5070>;expires=3000",
            "Contact: <sip:alice@192.0.2.9:5060>;expires=100",
        )
    )
    removal = harness.last_request()
    assert removal.headers.get("Contact") == "*"
    assert removal.headers.get("Expires") == "0"
    harness.answer(reply(removal, 200, "OK"))
    assert AllBindingsRemoved(2) in harness.events
    assert RegistrationState.UNREGISTERED in [s.state for s in harness.statuses()]


def test_an_enabled_registration_registers_again_after_unregister_all() -> None:
    harness = Harness.create()
    harness.register_through_challenge(expires=600)
    harness.user_agent.unregister_all(harness.now)
    harness.drain()
    harness.answer(reply(harness.last_request(), 200, "OK"))
    harness.answer(reply(harness.last_request(), 200, "OK"))
    again = harness.last_request()
    assert again.headers.get("Contact") == "<sip:alice@127.0.0.1:5070>"
    assert harness.status.state is RegistrationState.REGISTERING
    harness.answer(ok_for(again, 600))
    assert harness.status.state is RegistrationState.REGISTERED
    harness.advance(540)
    assert register_count(harness) == 6  # challenge, register, count, remove, again, refresh


def test_unregister_all_works_on_a_disabled_registration_and_it_stays_unregistered() -> None:
    harness = Harness.create()
    harness.register_through_challenge(expires=600)
    harness.user_agent.unregister(harness.now)
    harness.drain()
    harness.answer(reply(harness.last_request(), 200, "OK"))
    harness.user_agent.unregister_all(harness.now)
    harness.drain()
    harness.answer(reply(harness.last_request(), 200, "OK", "Contact: <sip:alice@192.0.2.9>"))
    removal = harness.last_request()
    assert removal.headers.get("Contact") == "*"
    harness.answer(reply(removal, 200, "OK"))
    assert AllBindingsRemoved(1) in harness.events
    assert harness.status.state is RegistrationState.UNREGISTERED
    sent = register_count(harness)
    harness.advance(7200)
    assert register_count(harness) == sent


def test_query_lists_bindings_without_changing_state() -> None:
    harness = Harness.create()
    harness.register_through_challenge()
    harness.user_agent.query_bindings(harness.now)
    harness.drain()
    harness.answer(
        reply(harness.last_request(), 200, "OK", "Contact: <sip:alice@192.0.2.9>;expires=99;q=0.5")
    )
    listed = [e for e in harness.events if isinstance(e, BindingsListed)]
    assert len(listed) == 1
    (binding,) = listed[0].bindings
    assert binding.contact == "sip:alice@192.0.2.9"
    assert binding.expires == 99
    assert binding.q == 0.5
    assert not binding.ours
    assert harness.status.state is RegistrationState.REGISTERED


def test_query_failure_is_reported_and_changes_nothing() -> None:
    harness = Harness.create()
    harness.register_through_challenge()
    harness.user_agent.query_bindings(harness.now)
    harness.drain()
    harness.answer(reply(harness.last_request(), 500, "Oops"))
    assert OperationFailed.__name__ in [type(e).__name__ for e in harness.events]
    assert harness.status.state is RegistrationState.REGISTERED


def test_discard_sends_nothing() -> None:
    harness = Harness.create()
    harness.register_through_challenge()
    sent = len(harness.sent)
    harness.user_agent.discard()
    harness.drain()
    harness.advance(7200)
    assert len(harness.sent) == sent
    assert harness.status.state is RegistrationState.UNREGISTERED


def test_nat_address_seen_by_the_registrar_moves_the_contact() -> None:
    harness = Harness.create()
    harness.user_agent.register(harness.now)
    harness.drain()
    request = harness.last_request()
    natted = reply(request, 200, "OK", "Contact: <sip:alice@127.0.0.1:5070>;expires=3600").replace(
        b";rport\r\n", b";rport=40000;received=203.0.113.5\r\n"
    )
    harness.answer(natted)
    moved = harness.last_request()
    assert moved is not request
    contacts = moved.headers.get_list("Contact")
    assert contacts[0].startswith("<sip:alice@203.0.113.5:40000>")
    assert contacts[1] == "<sip:alice@127.0.0.1:5070>;expires=0"
    answer = ok_for(moved, 3600).replace(b";rport\r\n", b";rport=40000;received=203.0.113.5\r\n")
    harness.answer(answer)
    assert harness.status.public_address == ("203.0.113.5", 40000)
    assert harness.status.contact == "sip:alice@203.0.113.5:40000"
    assert register_count(harness) == 2


def test_optional_contact_parameters_and_supported() -> None:
    harness = Harness.create(
        contact_q=0.7,
        instance_id="urn:uuid:00000000-0000-0000-0000-000000000001",
        reg_id=1,
        supported=("path", "outbound"),
    )
    harness.user_agent.register(harness.now)
    harness.drain()
    request = harness.last_request()
    (contact,) = request.contacts if request.contacts != "*" else []
    assert contact.param("q") == "0.7"
    assert contact.param("+sip.instance") == "<urn:uuid:00000000-0000-0000-0000-000000000001>"
    assert contact.param("reg-id") == "1"
    assert request.headers.get_list("Supported") == ["path", "outbound"]


def test_outbound_proxy_adds_a_loose_route() -> None:
    harness = Harness.create(outbound_proxy=parse_sip_uri("sip:proxy.sip.test:5080"))
    harness.user_agent.register(harness.now)
    harness.drain()
    assert harness.last_request().headers.get("Route") == "<sip:proxy.sip.test:5080;lr>"


def test_fails_over_to_the_next_target_on_timeout() -> None:
    second = Target(Transport.UDP, "127.0.0.2", 5060)
    harness = Harness.create(targets=[SERVER, second])
    harness.user_agent.register(harness.now)
    harness.drain()
    harness.advance(32)
    assert ConnectionNeeded(second) in harness.events
    harness.user_agent.connection_up(("127.0.0.1", 5071), harness.now)
    harness.drain()
    assert harness.sent[-1].target == second
    harness.answer(ok_for(harness.last_request()), source=second)
    assert harness.status.state is RegistrationState.REGISTERED


def test_connection_loss_fails_pending_work_and_reregisters_when_back() -> None:
    harness = Harness.create(
        transport=Transport.TCP, targets=[Target(Transport.TCP, "127.0.0.1", 5060)]
    )
    harness.register_through_challenge()
    harness.user_agent.connection_lost(harness.now)
    harness.drain()
    assert isinstance(harness.events[-1], ConnectionNeeded)
    harness.user_agent.connection_up(("127.0.0.1", 40001), harness.now)
    harness.drain()
    request = harness.last_request()
    assert request.contacts != "*"
    assert str(request.contacts[0].uri) == "sip:alice@127.0.0.1:40001;transport=tcp"


def test_keepalive_pings_at_the_configured_interval() -> None:
    harness = Harness.create(keepalive_interval=25.0)
    harness.advance(24.9)
    assert not [t for t in harness.sent if t.data == b"\r\n\r\n"]
    harness.advance(0.1)
    harness.advance(25)
    assert len([t for t in harness.sent if t.data == b"\r\n\r\n"]) == 2


def test_malformed_bytes_are_dropped_and_counted() -> None:
    harness = Harness.create()
    harness.answer(b"NOT SIP AT ALL\r\n\r\n")
    assert harness.user_agent.stats.malformed_dropped == 1
    assert isinstance(harness.events[-1], MessageDropped)
    assert harness.sent == []


def test_stray_responses_are_ignored() -> None:
    harness = Harness.create()
    harness.register_through_challenge()
    stray = ok_for(harness.last_request()).replace(b"branch=z9hG4bK", b"branch=z9hG4bKother")
    before = len(harness.events)
    harness.answer(stray)
    assert harness.user_agent.stats.stray_responses == 1
    assert len(harness.events) == before


def incoming(method: str, branch: str = "z9hG4bKin1") -> bytes:
    return (
        f"{method} sip:alice@127.0.0.1:5070 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport\r\n"
        "From: <sip:sip.test>;tag=x\r\n"
        "To: <sip:alice@sip.test>\r\n"
        "Call-ID: in-1\r\n"
        f"CSeq: 7 {method}\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("method", "status"), [("OPTIONS", 200), ("INVITE", 480), ("NOTIFY", 481), ("FROB", 501)]
)
def test_incoming_requests_are_answered(method: str, status: int) -> None:
    harness = Harness.create()
    harness.answer(incoming(method))
    (transmit,) = harness.sent
    response = parse_message(transmit.data)
    assert not isinstance(response, Request)
    assert response.status == status
    assert response.cseq.method == method
    assert response.to.param("tag")
    assert transmit.target == SERVER
    if status in (200, 405, 501):
        assert "OPTIONS" in response.headers.get_list("Allow")


def test_retransmitted_requests_get_the_same_answer() -> None:
    harness = Harness.create()
    harness.answer(incoming("OPTIONS"))
    harness.answer(incoming("OPTIONS"))
    assert len(harness.sent) == 2
    assert harness.sent[0].data == harness.sent[1].data
    assert harness.user_agent.stats.requests_answered == 1
    harness.advance(32)
    harness.answer(incoming("OPTIONS"))
    assert harness.user_agent.stats.requests_answered == 2


def test_local_address_is_the_contact() -> None:
    harness = Harness.create()
    assert harness.user_agent.local_address == LOCAL


def test_finished_transactions_leave_after_timer_k_and_j_in_a_long_soak() -> None:
    harness = Harness.create()
    user_agent = harness.user_agent

    def last_sent() -> Request:
        request = parse_message(harness.sent[-1].data)
        assert isinstance(request, Request)
        harness.sent.clear()
        return request

    peak_client = peak_server = 0
    for cycle in range(5000):
        user_agent.digest.forget()
        user_agent.register(harness.now)
        harness.drain()
        harness.answer(reply(last_sent(), 401, "Unauthorized", f"WWW-Authenticate: {CHALLENGE}"))
        harness.answer(ok_for(last_sent()))
        # A request from the server that no dialog matches: its transaction lingers (Timer J).
        notify = (
            "NOTIFY sip:alice@127.0.0.1:5070 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsoak{cycle}\r\n"
            "From: <sip:bob@sip.test>;tag=b\r\nTo: <sip:alice@sip.test>;tag=a\r\n"
            f"Call-ID: soak-{cycle}\r\nCSeq: 1 NOTIFY\r\nEvent: presence\r\n"
            "Subscription-State: active\r\nContent-Length: 0\r\n\r\n"
        )
        harness.answer(notify.encode())
        harness.sent.clear()
        harness.events.clear()
        harness.advance(0.2)
        peak_client = max(peak_client, len(user_agent._transactions.client))
        peak_server = max(peak_server, len(user_agent._transactions.server))
    assert harness.status.state is RegistrationState.REGISTERED
    # Two REGISTERs per 0.2 s linger for T4 (5 s), a NOTIFY per 0.2 s for 64 * T1 (32 s).
    assert peak_client <= 2 * 26
    assert peak_server <= 161
    assert len(user_agent._transactions._client_timers) <= peak_client + 2
    assert len(user_agent._transactions._server_timers) <= peak_server + 1
    harness.advance(33)
    assert not user_agent._transactions.client
    assert not user_agent._transactions.server
    assert not user_agent._transactions._client_timers
    assert not user_agent._transactions._server_timers


def test_a_request_due_as_the_flow_fails_over_waits_for_the_next_flow() -> None:
    second = Target(Transport.UDP, "127.0.0.2", 5060)
    harness = Harness.create(targets=[SERVER, second], expires=600)
    harness.user_agent.register(harness.now)
    harness.drain()
    harness.answer(ok_for(harness.last_request(), 600))  # refresh at +540
    harness.advance(32)
    harness.user_agent.publish(MyPresence.AWAY, None, harness.now)
    harness.drain()
    harness.answer(reply(harness.last_request(), 200, "OK", "SIP-ETag: e1", "Expires: 600"))
    # The REGISTER refresh goes unanswered: its Timer F fires with the PUBLISH refresh.
    harness.advance(540)
    assert harness.user_agent.publication.status.refresh_at is None  # it fired
    publishes = [r for r in harness.requests() if r.method == "PUBLISH"]
    assert harness.status.state is RegistrationState.FAILED
    assert ConnectionNeeded(second) in harness.events
    harness.user_agent.connection_up(("127.0.0.1", 5072), harness.now)
    harness.drain()
    refresh = [r for r in harness.requests() if r.method == "PUBLISH"][len(publishes) :]
    assert [r.headers.get("SIP-If-Match") for r in refresh] == ["e1"]
    assert refresh[0].top_via.port == 5072
