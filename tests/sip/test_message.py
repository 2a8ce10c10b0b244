"""Parsing, typed fields, serialization and stream framing of whole messages."""

from __future__ import annotations

import contextlib
import random

import pytest

from custom_components.sip_profiles.sip.errors import LocalProtocolError, RemoteProtocolError
from custom_components.sip_profiles.sip.headers import STAR, CSeq, Headers, Via, parse_via
from custom_components.sip_profiles.sip.message import (
    MAX_HEADERS,
    MAX_MESSAGE_SIZE,
    Message,
    Request,
    Response,
    StreamFramer,
    parse_message,
)
from custom_components.sip_profiles.sip.uri import SipUri, parse_uri

REGISTER = (
    b"REGISTER sip:example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:alice@example.com>;tag=1928301774\r\n'
    b"To: <sip:alice@example.com>\r\n"
    b"Call-ID: a84b4c76e66710@192.0.2.10\r\n"
    b"CSeq: 1826 REGISTER\r\n"
    b"Contact: <sip:alice@192.0.2.10:5060>;expires=3600\r\n"
    b"Expires: 7200\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
PIDF = b'<?xml version="1.0"?>\r\n<presence entity="sip:bob@example.com"/>\r\n'
NOTIFY = (
    b"NOTIFY sip:alice@192.0.2.10:5060 SIP/2.0\r\n"
    b"v: SIP/2.0/TCP 203.0.113.5;branch=z9hG4bKnashds8, SIP/2.0/UDP 198.51.100.1\r\n"
    b"f: <sip:bob@example.com>;tag=ffd2\r\n"
    b"t: <sip:alice@example.com>;tag=xfg9\r\n"
    b"i: 2010b@192.0.2.10\r\n"
    b"CSeq: 7 NOTIFY\r\n"
    b"m: <sip:bob@203.0.113.5>\r\n"
    b"o: presence;id=4\r\n"
    b"Subscription-State: active;expires=3599\r\n"
    b"c: application/pidf+xml\r\n"
    b"l: " + str(len(PIDF)).encode() + b"\r\n"
    b"\r\n" + PIDF
)
UNAUTHORIZED = (
    b"SIP/2.0 423 Interval Too Brief\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport=5060;received=192.0.2.99\r\n"
    b'From: "Alice" <sip:alice@example.com>;tag=1928301774\r\n'
    b"To: <sip:alice@example.com>;tag=37GkEhwl6\r\n"
    b"Call-ID: a84b4c76e66710@192.0.2.10\r\n"
    b"CSeq: 1826 REGISTER\r\n"
    b"Min-Expires: 3600\r\n"
    b"Retry-After: 30 (busy)\r\n"
    b"Contact: *\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


def test_request_fields() -> None:
    request = parse_message(REGISTER)
    assert isinstance(request, Request)
    assert request.method == "REGISTER"
    assert request.uri == SipUri("sip", "example.com")
    assert request.top_via.branch == "z9hG4bK776asdhds"
    assert request.top_via.rport is None
    assert request.cseq == CSeq(1826, "REGISTER")
    assert request.call_id == "a84b4c76e66710@192.0.2.10"
    assert request.from_.display_name == "Alice"
    assert request.from_.tag == "1928301774"
    assert request.to.tag is None
    contacts = request.contacts
    assert contacts != STAR
    assert [(str(c.uri), c.param("expires")) for c in contacts] == [
        ("sip:alice@192.0.2.10:5060", "3600")
    ]
    assert request.expires == 7200
    assert request.min_expires is None
    assert request.retry_after is None
    assert request.content_type is None
    assert request.event is None
    assert request.subscription_state is None
    assert request.body == b""


def test_a_remembered_top_via_is_read_back_until_the_fields_change() -> None:
    via = Via("UDP", "192.0.2.4", 5062, (("branch", "z9hG4bKmine"), ("rport", None)))
    request = Request(
        "OPTIONS", parse_uri("sip:example.com"), Headers([("Via", str(via)), ("CSeq", "1 OPTIONS")])
    )
    request.remember_top_via(via)
    assert request.top_via is via
    assert parse_via(str(via)) == via
    request.headers.set("Via", "SIP/2.0/TCP other.example.com;branch=z9hG4bKtheirs")
    assert request.top_via.branch == "z9hG4bKtheirs"


def test_compact_forms_and_body() -> None:
    notify = parse_message(NOTIFY)
    assert isinstance(notify, Request)
    assert [via.host for via in notify.vias] == ["203.0.113.5", "198.51.100.1"]
    assert notify.top_via.transport == "TCP"
    assert notify.from_.tag == "ffd2"
    assert notify.to.tag == "xfg9"
    assert notify.call_id == "2010b@192.0.2.10"
    event = notify.event
    assert event is not None
    assert (event.package, event.id) == ("presence", "4")
    state = notify.subscription_state
    assert state is not None
    assert (state.state, state.expires) == ("active", 3599)
    content_type = notify.content_type
    assert content_type is not None
    assert content_type.mime == "application/pidf+xml"
    assert notify.body == PIDF


def test_response_fields() -> None:
    response = parse_message(UNAUTHORIZED)
    assert isinstance(response, Response)
    assert (response.status, response.reason) == (423, "Interval Too Brief")
    assert response.top_via.rport == 5060
    assert response.top_via.received == "192.0.2.99"
    assert response.min_expires == 3600
    assert response.retry_after == 30
    assert response.contacts == STAR
    assert response.to.tag == "37GkEhwl6"


def test_absent_contact_is_an_empty_list() -> None:
    message = parse_message(
        REGISTER.replace(b"Contact: <sip:alice@192.0.2.10:5060>;expires=3600\r\n", b"")
    )
    assert message.contacts == []


def test_folded_lines_are_unfolded() -> None:
    data = REGISTER.replace(b"Expires: 7200", b"Expires:\r\n  7200").replace(
        b"Max-Forwards: 70", b"Subject: first\r\n\t second"
    )
    message = parse_message(data)
    assert message.expires == 7200
    assert message.headers.get("Subject") == "first second"


@pytest.mark.parametrize(
    ("field", "reader"),
    [
        (b"Call-ID", "call_id"),
        (b"CSeq", "cseq"),
        (b"From", "from_"),
        (b"To", "to"),
        (b"Via", "top_via"),
        (b"Via", "vias"),
    ],
)
def test_missing_mandatory_field_is_an_error_when_read(field: bytes, reader: str) -> None:
    lines = [line for line in UNAUTHORIZED.split(b"\r\n") if not line.startswith(field + b":")]
    message = parse_message(b"\r\n".join(lines))
    with pytest.raises(RemoteProtocolError):
        getattr(message, reader)


def test_repeated_single_value_field_is_an_error_when_read() -> None:
    message = parse_message(REGISTER.replace(b"Expires: 7200\r\n", b"Expires: 1\r\nExpires: 2\r\n"))
    with pytest.raises(RemoteProtocolError):
        _ = message.expires


def test_malformed_field_is_an_error_when_read_and_only_then() -> None:
    message = parse_message(REGISTER.replace(b"Expires: 7200", b"Expires: soon"))
    assert message.call_id == "a84b4c76e66710@192.0.2.10"
    with pytest.raises(RemoteProtocolError):
        _ = message.expires


def test_typed_values_follow_header_changes() -> None:
    message = parse_message(REGISTER)
    assert message.expires == 7200
    message.headers.set("Expires", "60")
    assert message.expires == 60


def test_datagram_without_content_length_takes_the_rest_as_body() -> None:
    data = REGISTER.replace(b"Content-Length: 0\r\n", b"") + b"hello"
    assert parse_message(data).body == b"hello"


def test_content_length_bounds_the_body() -> None:
    data = REGISTER.replace(b"Content-Length: 0", b"Content-Length: 3") + b"abcdef"
    assert parse_message(data).body == b"abc"


def test_leading_crlf_is_skipped() -> None:
    assert isinstance(parse_message(b"\r\n\r\n" + REGISTER), Request)


def test_empty_reason_phrase_and_utf8_reason() -> None:
    base = UNAUTHORIZED.split(b"\r\n", 1)[1]
    empty = parse_message(b"SIP/2.0 100 \r\n" + base)
    assert isinstance(empty, Response)
    assert empty.reason == ""
    utf8 = parse_message("SIP/2.0 200 Привет\r\n".encode() + base)
    assert isinstance(utf8, Response)
    assert utf8.reason == "Привет"


def _message_with_headers(count: int) -> bytes:
    extra = b"".join(b"X-Filler: %d\r\n" % index for index in range(count))
    return REGISTER.replace(b"Content-Length: 0\r\n", extra + b"Content-Length: 0\r\n")


def test_header_count_limit() -> None:
    fields = REGISTER.count(b"\r\n") - 2
    assert len(parse_message(_message_with_headers(MAX_HEADERS - fields)).headers) == MAX_HEADERS
    with pytest.raises(RemoteProtocolError):
        parse_message(_message_with_headers(MAX_HEADERS - fields + 1))


def test_size_limit() -> None:
    head = REGISTER.replace(b"Content-Length: 0\r\n", b"")
    largest = head + b"x" * (MAX_MESSAGE_SIZE - len(head))
    assert len(parse_message(largest).body) == MAX_MESSAGE_SIZE - len(head)
    with pytest.raises(RemoteProtocolError):
        parse_message(largest + b"x")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"garbage",
        b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\n",  # no empty line
        b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n".replace(b"INVITE s", b"INVITE  s"),
        b"INVITE sip:a@b SIP/2.0 \r\nCSeq: 1 INVITE\r\n\r\n",
        b"INVITE <sip:a@b> SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n",
        b"INVITE sip:a@b SIP/3.0\r\nCSeq: 1 INVITE\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\n\r\n",  # no CSeq
        b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 BYE\r\n\r\n",
        b"INVITE sip:a@b?Route=x SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n",
        b"IN(VITE sip:a@b SIP/2.0\r\nCSeq: 1 IN(VITE\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\nbad line\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\nVia: x\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\nContent-Length: 5\r\n\r\nabc",
        b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\nContent-Length: -1\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\nl: 1\r\nl: 2\r\n\r\nab",
        b"INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\nSubject: \xff\r\n\r\n",
        b"SIP/2.0 99 Low\r\n\r\n",
        b"SIP/2.0 700 High\r\n\r\n",
        b"SIP/2.0 4294967301 Big\r\n\r\n",
        b"SIP/2.0 200\r\n\r\n",
        b"SIP/2.0 200 O\x01K\r\n\r\n",
        b"SIP/2.0  200 OK\r\n\r\n",
        b"SIP/7.0 200 OK\r\n\r\n",
    ],
)
def test_malformed_messages_are_rejected(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_message(data)


# --- serialization ---------------------------------------------------------------------------


def _same(first: Message, second: Message) -> bool:
    if isinstance(first, Request) and isinstance(second, Request):
        start = (first.method, first.uri) == (second.method, second.uri)
    elif isinstance(first, Response) and isinstance(second, Response):
        start = (first.status, first.reason) == (second.status, second.reason)
    else:
        return False
    first_headers, second_headers = Headers(first.headers), Headers(second.headers)
    first_headers.remove("Content-Length")
    second_headers.remove("Content-Length")
    return start and first_headers == second_headers and first.body == second.body


@pytest.mark.parametrize("data", [REGISTER, NOTIFY, UNAUTHORIZED])
def test_to_bytes_round_trips(data: bytes) -> None:
    message = parse_message(data)
    again = parse_message(message.to_bytes())
    assert _same(again, message)
    assert again.to_bytes() == message.to_bytes()


def test_to_bytes_writes_canonical_names_and_content_length() -> None:
    request = Request(
        "MESSAGE",
        parse_uri("sip:bob@example.com"),
        Headers([("v", "SIP/2.0/UDP h;branch=z9hG4bK1"), ("l", "999"), ("cseq", "1 MESSAGE")]),
        b"hello",
    )
    assert request.to_bytes() == (
        b"MESSAGE sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"CSeq: 1 MESSAGE\r\n"
        b"Content-Length: 5\r\n"
        b"\r\n"
        b"hello"
    )


def test_response_to_bytes() -> None:
    response = Response(200, "OK", Headers([("CSeq", "1 OPTIONS")]))
    assert response.to_bytes() == b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize(
    "message",
    [
        Request("BAD METHOD", parse_uri("sip:a@b"), Headers()),
        Response(99, "Low", Headers()),
        Response(200, "O\r\nK", Headers()),
    ],
)
def test_impossible_messages_are_local_errors(message: Message) -> None:
    with pytest.raises(LocalProtocolError):
        message.to_bytes()


# --- robustness ------------------------------------------------------------------------------


def _read_everything(message: Message) -> None:
    for name in (
        "vias",
        "top_via",
        "cseq",
        "call_id",
        "from_",
        "to",
        "contacts",
        "expires",
        "min_expires",
        "retry_after",
        "content_type",
        "event",
        "subscription_state",
    ):
        try:
            getattr(message, name)
        except RemoteProtocolError:
            continue


def _mutate(data: bytes, rng: random.Random) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        position = rng.randrange(len(buffer) + 1)
        action = rng.randrange(4)
        if action == 0 and position < len(buffer):
            del buffer[position : position + rng.randint(1, 8)]
        elif action == 1:
            buffer[position:position] = rng.choice(
                [
                    b"\r\n",
                    b" ",
                    b";",
                    b",",
                    b'"',
                    b"<",
                    b">",
                    b":",
                    b"%",
                    b"\x00",
                    b"\xff",
                    b"\\",
                    b"9" * 12,
                ]
            )
        elif action == 2 and position < len(buffer):
            buffer[position] = rng.randrange(256)
        else:
            start = rng.randrange(len(buffer) + 1)
            buffer[position:position] = buffer[start : start + rng.randint(1, 20)]
    return bytes(buffer)


def test_mutated_messages_parse_or_raise_remote_protocol_error() -> None:
    rng = random.Random(4475)
    seeds = [REGISTER, NOTIFY, UNAUTHORIZED]
    parsed = 0
    for _ in range(3000):
        data = _mutate(rng.choice(seeds), rng)
        try:
            message = parse_message(data)
        except RemoteProtocolError:
            continue
        parsed += 1
        _read_everything(message)
        assert _same(parse_message(message.to_bytes()), message)
        framer = StreamFramer()
        with contextlib.suppress(RemoteProtocolError):
            for index in range(0, len(data), 7):
                framer.feed(data[index : index + 7])
                while framer.next_message() is not None:
                    pass
    assert parsed > 0
