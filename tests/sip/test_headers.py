"""Header field values and the Headers multimap."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from custom_components.sip_profiles.sip.errors import LocalProtocolError, RemoteProtocolError
from custom_components.sip_profiles.sip.headers import (
    STAR,
    ContentType,
    CSeq,
    EventHeader,
    Headers,
    NameAddr,
    SubscriptionState,
    Via,
    canonical_name,
    parse_contacts,
    parse_content_type,
    parse_cseq,
    parse_event,
    parse_name_addr,
    parse_retry_after,
    parse_subscription_state,
    parse_uint,
    parse_via,
)
from custom_components.sip_profiles.sip.uri import AbsoluteUri, SipUri, parse_uri

# --- name-addr -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parsed", "built"),
    [
        (
            parse_name_addr('"Alice" <sip:alice@example.com>;tag=1'),
            NameAddr(SipUri("sip", "example.com", "alice"), "Alice", (("tag", "1"),)),
        ),
        (parse_name_addr("sip:bob@example.com"), NameAddr(SipUri("sip", "example.com", "bob"))),
        (
            parse_via("SIP/2.0/udp 192.0.2.1:5060;branch=z9hG4bK1"),
            Via("UDP", "192.0.2.1", 5060, (("branch", "z9hG4bK1"),)),
        ),
    ],
)
def test_parsed_values_behave_like_constructed_ones(
    parsed: NameAddr | Via, built: NameAddr | Via
) -> None:
    assert type(parsed) is type(built)
    assert parsed == built
    assert hash(parsed) == hash(built)
    assert repr(parsed) == repr(built)
    assert str(parsed) == str(built)
    assert pickle.loads(pickle.dumps(parsed)) == built
    assert copy.deepcopy(parsed) == built
    assert dataclasses.replace(parsed, params=()) == dataclasses.replace(built, params=())
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.params = ()  # type: ignore[misc]


def test_quoted_display_name_with_escapes_and_params() -> None:
    address = parse_name_addr('"J Rosenberg \\\\\\""  <sip:jdrosen@example.com> ;  tag = 98asjd8')
    assert address.display_name == 'J Rosenberg \\"'
    assert address.uri == SipUri("sip", "example.com", user="jdrosen")
    assert address.params == (("tag", "98asjd8"),)
    assert address.param("TAG") == "98asjd8"
    assert address.tag == "98asjd8"


def test_token_display_name_without_space_before_bracket() -> None:
    address = parse_name_addr("caller<sip:caller@example.com>;tag=323")
    assert address.display_name == "caller"
    assert address.tag == "323"


def test_token_display_name_words_are_joined_by_one_space() -> None:
    assert parse_name_addr("A.\t Bell  <sip:a@b>").display_name == "A. Bell"


def test_addr_spec_params_belong_to_the_header() -> None:
    address = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam;tag=x")
    assert address.uri == SipUri("sip", "gw1.example.net", user="+19725552222")
    assert address.params == (("unknownparam", None), ("tag", "x"))
    assert address.display_name is None


def test_bracketed_uri_keeps_its_own_params() -> None:
    address = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert isinstance(address.uri, SipUri)
    assert address.uri.params == (("unknownparam", None),)
    assert address.params == ()


def test_other_schemes_in_addresses() -> None:
    assert parse_name_addr("isbn:2983792873").uri == AbsoluteUri("isbn", "2983792873")
    assert parse_name_addr("<http://www.example.com>;tag=3").uri == AbsoluteUri(
        "http", "//www.example.com"
    )


def test_name_addr_text_always_uses_brackets() -> None:
    uri = parse_uri("sip:alice@example.com")
    assert str(NameAddr(uri)) == "<sip:alice@example.com>"
    assert str(NameAddr(uri, "Alice", (("tag", "1"),))) == "Alice <sip:alice@example.com>;tag=1"
    assert str(NameAddr(uri, "Bell, Alexander")) == '"Bell, Alexander" <sip:alice@example.com>'
    assert str(NameAddr(uri, 'say "hi"')) == '"say \\"hi\\"" <sip:alice@example.com>'


@pytest.mark.parametrize(
    "text",
    [
        '"J Rosenberg \\"" <sip:jdrosen@example.com>;tag=1',
        "Alice <sip:alice@example.com;transport=tcp>;expires=60;q=0.5",
        "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
        '"BEL:\x07 NUL:\x00" <sip:a@b>',
        '<sip:a@b>;x="quoted value"',
    ],
)
def test_name_addr_text_parses_to_the_same_value(text: str) -> None:
    address = parse_name_addr(text)
    assert parse_name_addr(str(address)) == address


@pytest.mark.parametrize(
    "text",
    [
        "",
        '"Mr. J. User <sip:j.user@example.com>',
        "Bell, Alexander <sip:a.g.bell@example.com>",
        "< sip:t.watson@example.org >",
        "<sip:a@b",
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        '"Joe" <sip:joe@example.org>;;;;',
        "<sip:a@b> junk",
        '"a" sip:a@b',
        "<sip:a@b>;tag",
        "<sip:a@b>;=x",
        "<sip:a@b>;x=a b",
    ],
)
def test_malformed_addresses_are_rejected(text: str) -> None:
    if text == "<sip:a@b>;tag":
        # A parameter without a value is allowed: this one must parse.
        assert parse_name_addr(text).param("tag") == ""
        return
    with pytest.raises(RemoteProtocolError):
        parse_name_addr(text)


# --- Contact ---------------------------------------------------------------------------------


def test_contacts_from_several_fields_and_commas() -> None:
    contacts = parse_contacts(
        [
            '"Quoted, comma" <sip:a@example.com>;expires=60, <sip:b@example.com>;q=0.5',
            "sip:c@example.com",
        ]
    )
    assert contacts != STAR
    assert [str(contact.uri) for contact in contacts] == [
        "sip:a@example.com",
        "sip:b@example.com",
        "sip:c@example.com",
    ]
    assert contacts[0].display_name == "Quoted, comma"
    assert contacts[0].param("expires") == "60"
    assert contacts[1].param("q") == "0.5"


def test_contact_star() -> None:
    assert parse_contacts([" * "]) == STAR
    assert parse_contacts([]) == []


def test_contact_star_must_stand_alone() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_contacts(["*", "<sip:a@b>"])
    with pytest.raises(RemoteProtocolError):
        parse_contacts(["*, <sip:a@b>"])


# --- Via -------------------------------------------------------------------------------------


def test_via_with_branch_rport_and_received() -> None:
    via = parse_via("SIP/2.0/udp 192.0.2.1:5060;branch=z9hG4bK776;rport=5062;received=192.0.2.9")
    assert via == Via(
        "UDP",
        "192.0.2.1",
        5060,
        (("branch", "z9hG4bK776"), ("rport", "5062"), ("received", "192.0.2.9")),
    )
    assert via.branch == "z9hG4bK776"
    assert via.rport == 5062
    assert via.received == "192.0.2.9"
    assert str(via) == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport=5062;received=192.0.2.9"


def test_via_with_empty_rport_and_white_space_everywhere() -> None:
    via = parse_via(
        "SIP  /   2.0 / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8 ; rport"
    )
    assert via.transport == "TCP"
    assert via.host == "spindle.example.com"
    assert via.port is None
    assert via.branch == "z9hG4bK9ikj8"
    assert via.rport is None


def test_via_ipv6_host() -> None:
    via = parse_via("SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bKx;received=[2001:db8::7]")
    assert via.host == "2001:db8::9"
    assert via.host_port == "[2001:db8::9]:5061"
    assert via.received == "[2001:db8::7]"
    assert parse_via(str(via)) == via


def test_via_unknown_transport_is_kept() -> None:
    assert parse_via("SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKa").transport == "UNKNOWN"


def test_via_protocol_name_is_case_insensitive() -> None:
    via = parse_via("sip/2.0/tcp Host.Example.com")
    assert (via.transport, via.host, via.port) == ("TCP", "host.example.com", None)


def test_via_bad_rport_is_an_error_when_read() -> None:
    via = parse_via("SIP/2.0/UDP h;rport=abc")
    with pytest.raises(RemoteProtocolError):
        _ = via.rport


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/7.0/UDP host",
        "SIP/2.0/UDP 192.0.2.15;;,;,,",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP -host-",
        "SIP/2.0/UDP host;branch=a b",
        "SIP/2.0/U(P host",
        "SIP/2.0/UDP [host]",
    ],
)
def test_malformed_vias_are_rejected(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_via(text)


# --- numbers, CSeq, Retry-After --------------------------------------------------------------


def test_cseq() -> None:
    assert parse_cseq("0009 INVITE") == CSeq(9, "INVITE")
    assert parse_cseq(f"{2**31 - 1} REGISTER") == CSeq(2**31 - 1, "REGISTER")
    assert str(CSeq(7, "NOTIFY")) == "7 NOTIFY"


@pytest.mark.parametrize(
    "text",
    ["", "1", "INVITE", f"{2**31} INVITE", "36893488147419103232 REGISTER", "1 IN(VITE", "-1 A"],
)
def test_malformed_cseq_is_rejected(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_cseq(text)


def test_uint_bounds() -> None:
    assert parse_uint(" 0068 ") == 68
    assert parse_uint(str(2**32 - 1)) == 2**32 - 1
    for text in ["", "-1", "1.5", str(2**32), "1" * 100, "12 3"]:
        with pytest.raises(RemoteProtocolError):
            parse_uint(text)


def test_retry_after_with_comment_and_params() -> None:
    assert parse_retry_after("18000") == 18000
    assert parse_retry_after("120 (I'm in a meeting);duration=3600") == 120
    with pytest.raises(RemoteProtocolError):
        parse_retry_after("949302838503028349304023988")
    with pytest.raises(RemoteProtocolError):
        parse_retry_after("soon")


# --- Subscription-State, Event, Content-Type -------------------------------------------------


def test_subscription_state() -> None:
    assert parse_subscription_state("Active;expires=600") == SubscriptionState(
        "active", 600, None, None, (("expires", "600"),)
    )
    terminated = parse_subscription_state("terminated;reason=timeout;retry-after=30")
    assert terminated.state == "terminated"
    assert terminated.reason == "timeout"
    assert terminated.retry_after == 30
    assert terminated.expires is None
    with pytest.raises(RemoteProtocolError):
        parse_subscription_state("active;expires=soon")
    with pytest.raises(RemoteProtocolError):
        parse_subscription_state("")


def test_event() -> None:
    assert parse_event("presence;id=7") == EventHeader("presence", "7", (("id", "7"),))
    assert parse_event("dialog").id is None
    with pytest.raises(RemoteProtocolError):
        parse_event("pres ence")


def test_content_type() -> None:
    content_type = parse_content_type("Application/PIDF+XML ; charset=UTF-8")
    assert content_type == ContentType("application", "pidf+xml", (("charset", "UTF-8"),))
    assert content_type.mime == "application/pidf+xml"
    assert parse_content_type('multipart/mixed;boundary="a b"').params == (("boundary", "a b"),)
    for text in ["", "text", "text/", "/plain", "te xt/plain", "text/plain;;"]:
        with pytest.raises(RemoteProtocolError):
            parse_content_type(text)


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("v", "Via"),
        ("call-id", "Call-ID"),
        ("CSEQ", "CSeq"),
        ("www-authenticate", "WWW-Authenticate"),
        ("i", "Call-ID"),
        ("m", "Contact"),
        ("l", "Content-Length"),
        ("o", "Event"),
        ("u", "Allow-Events"),
        ("X-Custom", "X-Custom"),
        ("NewFangledHeader", "NewFangledHeader"),
    ],
)
def test_canonical_name(name: str, canonical: str) -> None:
    assert canonical_name(name) == canonical


# --- Headers ---------------------------------------------------------------------------------


def test_headers_lookup_is_case_insensitive_and_knows_compact_forms() -> None:
    headers = Headers([("v", "SIP/2.0/UDP a"), ("VIA", "SIP/2.0/UDP b, SIP/2.0/UDP c"), ("i", "x")])
    assert headers.get("via") == "SIP/2.0/UDP a"
    assert headers.get_all("Via") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b, SIP/2.0/UDP c"]
    assert headers.get_list("v") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b", "SIP/2.0/UDP c"]
    assert headers.get("Call-ID") == "x"
    assert "call-id" in headers
    assert "Route" not in headers
    assert 3 not in headers
    assert headers.get("Route") is None
    assert headers.get_all("Route") == []
    assert list(headers) == [
        ("Via", "SIP/2.0/UDP a"),
        ("Via", "SIP/2.0/UDP b, SIP/2.0/UDP c"),
        ("Call-ID", "x"),
    ]
    assert len(headers) == 3


def test_lines_spell_names_as_usual_and_leave_out_one_header() -> None:
    headers = Headers(
        [("v", "SIP/2.0/UDP a"), ("l", "0"), ("x-Custom", "1"), ("CONTENT-LENGTH", "9")]
    )
    assert headers.lines(without="Content-Length") == ["Via: SIP/2.0/UDP a", "x-Custom: 1"]
    assert headers.lines(without="X-CUSTOM") == [
        "Via: SIP/2.0/UDP a",
        "Content-Length: 0",
        "Content-Length: 9",
    ]


def test_get_list_keeps_commas_inside_quotes_and_brackets() -> None:
    headers = Headers([("Contact", '"a, b" <sip:x@y;p=1,2>, <sip:z@w>')])
    assert headers.get_list("Contact") == ['"a, b" <sip:x@y;p=1,2>', "<sip:z@w>"]


def test_set_replaces_every_field_at_the_first_position() -> None:
    headers = Headers([("X-A", "1"), ("Route", "r1"), ("X-B", "2"), ("route", "r2")])
    headers.set("ROUTE", "r3")
    assert list(headers) == [("X-A", "1"), ("Route", "r3"), ("X-B", "2")]
    headers.set("c", "text/plain")
    assert list(headers)[-1] == ("Content-Type", "text/plain")


def test_add_and_remove() -> None:
    headers = Headers()
    headers.add("Supported", "path")
    headers.add("k", "outbound")
    assert headers.get_list("Supported") == ["path", "outbound"]
    headers.remove("supported")
    assert len(headers) == 0
    headers.remove("supported")
    assert len(headers) == 0


def test_typed_values_are_cached_until_a_change() -> None:
    headers = Headers([("Expires", "60")])
    calls: list[int] = []

    def read(fields: Headers) -> int:
        calls.append(1)
        return parse_uint(fields.get("Expires") or "")

    assert headers.typed("expires", read) == 60
    assert headers.typed("expires", read) == 60
    assert len(calls) == 1
    headers.set("Expires", "90")
    assert headers.typed("expires", read) == 90
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("name", "value"),
    [("Bad Name", "x"), ("", "x"), ("Subject", "line\r\nInjected: yes"), ("Subject", "a\nb")],
)
def test_adding_a_bad_field_is_a_local_error(name: str, value: str) -> None:
    headers = Headers([("To", "<sip:a@b>")])
    with pytest.raises(LocalProtocolError):
        headers.add(name, value)
    with pytest.raises(LocalProtocolError):
        headers.set(name, value)
    assert list(headers) == [("To", "<sip:a@b>")]


def test_repr_shows_names_not_values() -> None:
    headers = Headers([("Authorization", 'Digest response="6629fae49393a05397450978507c4ef1"')])
    assert "6629fae4" not in repr(headers)
    assert "Authorization" in repr(headers)


def test_parse_block_rejects_bad_lines() -> None:
    assert list(Headers.parse_block("TO :  sip:a@b\r\nX-Y: z")) == [("To", "sip:a@b"), ("X-Y", "z")]
    for block in ["no colon", ": empty name", "Bad Name: x", "A: b\rc", "A: b\nc", "A(: b"]:
        with pytest.raises(RemoteProtocolError):
            Headers.parse_block(block)
