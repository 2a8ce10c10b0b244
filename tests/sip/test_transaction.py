"""Non-INVITE client and server transactions with driven time (RFC 3261 §17.1.2, §17.2.2)."""

from __future__ import annotations

import itertools

import pytest

from custom_components.sip_profiles.sip.message import Request, Response, parse_message
from custom_components.sip_profiles.sip.target import Target, Transport
from custom_components.sip_profiles.sip.transaction import (
    ClientTransaction,
    ClientTransactionFailure,
    Retransmit,
    ServerTransaction,
    TimerSettings,
    TransactionState,
)

UDP = Target(Transport.UDP, "127.0.0.1", 5060)
TCP = Target(Transport.TCP, "127.0.0.1", 5060)
TIMERS = TimerSettings()

REQUEST = (
    b"REGISTER sip:sip.test SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc;rport\r\n"
    b"From: <sip:alice@sip.test>;tag=1\r\n"
    b"To: <sip:alice@sip.test>\r\n"
    b"Call-ID: call-1\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Max-Forwards: 70\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def request() -> Request:
    message = parse_message(REQUEST)
    assert isinstance(message, Request)
    return message


def response(status: int) -> Response:
    data = (
        f"SIP/2.0 {status} Whatever\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc;rport=5070\r\n"
        "From: <sip:alice@sip.test>;tag=1\r\n"
        "To: <sip:alice@sip.test>;tag=2\r\n"
        "Call-ID: call-1\r\n"
        "CSeq: 1 REGISTER\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Response)
    return message


def run_until(transaction: ClientTransaction, end: float) -> list[tuple[float, object]]:
    """Fire every timer up to ``end``; return (time, result) of each firing."""
    fired: list[tuple[float, object]] = []
    while (deadline := transaction.deadline) is not None and deadline <= end:
        fired.append((deadline, transaction.on_timer(deadline)))
    return fired


def test_udp_timer_e_doubles_to_t2_and_timer_f_times_out() -> None:
    transaction = ClientTransaction(request(), UDP, 0.0, TIMERS)
    fired = run_until(transaction, 100.0)
    retransmit_times = [t for t, result in fired if isinstance(result, Retransmit)]
    assert retransmit_times[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert all(b - a == 4.0 for a, b in itertools.pairwise(retransmit_times[3:]))
    assert fired[-1] == (32.0, ClientTransactionFailure.TIMEOUT)
    assert transaction.state is TransactionState.TERMINATED
    assert transaction.deadline is None
    assert all(r.data == transaction.data for _, r in fired if isinstance(r, Retransmit))


def test_tcp_never_retransmits_but_times_out() -> None:
    transaction = ClientTransaction(request(), TCP, 10.0, TIMERS)
    assert run_until(transaction, 100.0) == [(42.0, ClientTransactionFailure.TIMEOUT)]


def test_provisional_response_moves_retransmissions_to_t2() -> None:
    transaction = ClientTransaction(request(), UDP, 0.0, TIMERS)
    assert transaction.on_timer(0.5) == Retransmit(transaction.data)
    assert transaction.on_response(response(100), 0.7) is not None
    assert transaction.state is TransactionState.PROCEEDING
    assert transaction.deadline == 1.5
    assert isinstance(transaction.on_timer(1.5), Retransmit)
    assert transaction.deadline == 5.5


def test_final_response_is_delivered_once_and_timer_k_absorbs_duplicates() -> None:
    transaction = ClientTransaction(request(), UDP, 0.0, TIMERS)
    first = transaction.on_response(response(200), 0.2)
    assert first is not None
    assert first.status == 200
    assert transaction.state is TransactionState.COMPLETED
    assert transaction.on_response(response(200), 0.3) is None
    assert transaction.on_response(response(500), 0.4) is None
    assert transaction.deadline == pytest.approx(5.2)
    assert transaction.on_timer(5.2) is None
    assert transaction.state is TransactionState.TERMINATED


def test_reliable_transport_terminates_right_after_the_final_response() -> None:
    transaction = ClientTransaction(request(), TCP, 0.0, TIMERS)
    assert transaction.on_response(response(200), 1.0) is not None
    assert transaction.deadline == 1.0
    transaction.on_timer(1.0)
    assert transaction.state is TransactionState.TERMINATED


def test_transport_error_ends_a_pending_transaction_only() -> None:
    pending = ClientTransaction(request(), TCP, 0.0, TIMERS)
    assert pending.on_transport_error() is ClientTransactionFailure.TRANSPORT_ERROR
    answered = ClientTransaction(request(), UDP, 0.0, TIMERS)
    answered.on_response(response(200), 0.1)
    assert answered.on_transport_error() is None


def test_server_transaction_repeats_its_response_then_forgets() -> None:
    server = ServerTransaction(UDP, TIMERS)
    assert server.on_retransmission() is None
    data = server.respond(response(200), 1.0)
    assert server.on_retransmission() == data
    assert server.deadline == 33.0
    server.on_timer(32.9)
    assert server.state is TransactionState.COMPLETED
    server.on_timer(33.0)
    assert server.state is TransactionState.TERMINATED
    assert server.deadline is None
