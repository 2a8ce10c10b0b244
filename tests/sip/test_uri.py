"""SIP and absolute URIs: parts, escapes, IPv6, parameters, headers and canonical text."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from custom_components.sip_profiles.sip.errors import RemoteProtocolError
from custom_components.sip_profiles.sip.uri import AbsoluteUri, SipUri, parse_sip_uri, parse_uri


def test_parts_of_a_full_sip_uri() -> None:
    uri = parse_uri(
        "sips:Alice:secret@Example.COM:5061;Transport=TCP;lr?Subject=hi&Priority=urgent"
    )
    assert uri == SipUri(
        scheme="sips",
        host="example.com",
        user="Alice",
        password="secret",
        port=5061,
        params=(("transport", "TCP"), ("lr", None)),
        headers=(("Subject", "hi"), ("Priority", "urgent")),
    )
    assert isinstance(uri, SipUri)
    assert uri.param("TRANSPORT") == "TCP"
    assert uri.param("lr") == ""
    assert uri.param("maddr") is None


def test_scheme_is_case_insensitive() -> None:
    assert parse_sip_uri("SIP:bob@host").scheme == "sip"


def test_escapes_are_decoded_and_written_back() -> None:
    uri = parse_sip_uri("sip:sips%3Auser%40example.com@example.net;n%61me=v%61lue%25%34%31")
    assert uri.user == "sips:user@example.com"
    assert uri.params == (("name", "value%41"),)
    assert str(uri) == "sip:sips%3Auser%40example.com@example.net;name=value%2541"


def test_user_part_may_hold_semicolons_and_question_marks() -> None:
    uri = parse_sip_uri("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u@example.net"
    assert uri.host == "example.com"
    assert uri.params == ()


def test_ipv6_host_without_brackets() -> None:
    uri = parse_sip_uri("sip:[2001:DB8::10]:5070;maddr=[2001:db8::1]")
    assert uri.host == "2001:db8::10"
    assert uri.port == 5070
    assert uri.host_port == "[2001:db8::10]:5070"
    assert str(uri) == "sip:[2001:db8::10]:5070;maddr=[2001:db8::1]"


def test_host_port_without_port() -> None:
    assert parse_sip_uri("sip:example.com").host_port == "example.com"


def test_password_stays_out_of_repr() -> None:
    uri = parse_sip_uri("sip:alice:hunter2@example.com")
    assert uri.password == "hunter2"
    assert "hunter2" not in repr(uri)


def test_parsed_uri_behaves_like_a_constructed_one() -> None:
    parsed = parse_sip_uri("sip:alice:secret@example.com:5060;transport=udp")
    built = SipUri("sip", "example.com", "alice", "secret", 5060, (("transport", "udp"),))
    assert type(parsed) is SipUri
    assert parsed == built
    assert hash(parsed) == hash(built)
    assert repr(parsed) == repr(built)
    assert "secret" not in repr(parsed)
    assert pickle.loads(pickle.dumps(parsed)) == built
    assert copy.deepcopy(parsed) == built
    assert dataclasses.replace(parsed, port=5061) == dataclasses.replace(built, port=5061)
    assert dataclasses.asdict(parsed) == dataclasses.asdict(built)
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.host = "example.net"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        parsed.extra = 1  # type: ignore[attr-defined]


def test_undecodable_octets_survive_a_round_trip() -> None:
    uri = parse_sip_uri("sip:%FF%00@host")
    assert str(uri) == "sip:%FF%00@host"


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@example.com",
        "sip:alice@example.com:5060;transport=udp;lr",
        "sips:[::1]:5061",
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d@example.com",
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        "sip:null-%00-null@example.com",
        "sip:I%20have%20spaces@example.net",
    ],
)
def test_canonical_text_parses_to_the_same_uri(text: str) -> None:
    uri = parse_uri(text)
    assert parse_uri(str(uri)) == uri


def test_escaped_header_is_decoded() -> None:
    uri = parse_sip_uri("sip:user@example.com?Route=%3Csip:sip.example.com%3E")
    assert uri.headers == (("Route", "<sip:sip.example.com>"),)


@pytest.mark.parametrize(
    ("text", "scheme", "rest"),
    [
        ("tel:+1-201-555-0123", "tel", "+1-201-555-0123"),
        ("soap.beep://192.0.2.103:3002", "soap.beep", "//192.0.2.103:3002"),
        (
            "nobodyKnowsThisScheme:totallyopaquecontent",
            "nobodyknowsthisscheme",
            "totallyopaquecontent",
        ),
    ],
)
def test_other_schemes_are_opaque(text: str, scheme: str, rest: str) -> None:
    uri = parse_uri(text)
    assert uri == AbsoluteUri(scheme, rest)
    assert str(uri) == f"{scheme}:{rest}"


def test_parse_sip_uri_refuses_other_schemes() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_sip_uri("tel:+12015550123")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "example.com",
        ":foo",
        "1sip:foo",
        "<sip:user@example.com>",
        "sip:user@example.com; lr",
        "sip: user@example.com",
        "sip:user@exa mple.com",
        "sip:",
        "sip:@example.com",
        "sip:user@",
        "sip:user@example.com:99999",
        "sip:user@example.com:",
        "sip:user@-bad-.com",
        "sip:user@[2001:db8::zz]",
        "sip:user@[::1",
        "sip:user@example.com;;lr",
        "sip:user@example.com;maddr=",
        "sip:user@example.com?Route",
        "sip:us%zzer@example.com",
        "sip:user@example.com;x=%4",
        'sip:"quoted"@example.com',
        "tel:",
        "tel:has space",
    ],
)
def test_malformed_uris_are_rejected(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_uri(text)
