"""Hostile and malformed XML: every parser refuses it with DocumentError."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from custom_components.sip_profiles.sip.documents import (
    DocumentError,
    parse_dialog_info,
    parse_pidf,
    parse_provisioning,
    parse_watcherinfo,
)
from custom_components.sip_profiles.sip.documents._xml import parse_xml
from custom_components.sip_profiles.sip.errors import RemoteProtocolError

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@example.com">
<note>&lol9;</note></presence>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE presence [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@example.com">
<note>&xxe;</note></presence>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE presence SYSTEM "http://203.0.113.1/evil.dtd">
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@example.com"/>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE presence [<!ENTITY % remote SYSTEM "file:///etc/passwd"> %remote;]>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@example.com"/>"""

TEN_MEGABYTES = (
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@example.com"><note>'
    + b"x" * (10 * 1024 * 1024)
    + b"</note></presence>"
)

# Within the size limit, so that the depth limit is what refuses it.
DEEP_NESTING = b"<a>" * 5_000 + b"</a>" * 5_000

INVALID_UTF8 = (
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@example.com">'
    b"<note>\xff\xfe\xc3</note></presence>"
)

TRUNCATED = b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@example.com"><tuple id="t'

HOSTILE = {
    "billion laughs": BILLION_LAUGHS,
    "external entity": EXTERNAL_ENTITY,
    "external DTD": EXTERNAL_DTD,
    "parameter entity": PARAMETER_ENTITY,
    "10 MB body": TEN_MEGABYTES,
    "deep nesting": DEEP_NESTING,
    "invalid UTF-8": INVALID_UTF8,
    "truncated": TRUNCATED,
    "empty": b"",
    "white space only": b" \r\n ",
    "not XML": b"SIP/2.0 200 OK\r\n\r\n",
    "undefined entity": b"<a>&nbsp;</a>",
    "unbound prefix": b"<x:presence/>",
    "two roots": b"<a/><b/>",
    "NUL character": b"<a>\x00</a>",
    "unknown encoding": b'<?xml version="1.0" encoding="x-unheard-of"?><a/>',
    "multi-byte encoding": b'<?xml version="1.0" encoding="Shift_JIS"?><a>\x82\xa0</a>',
}

PARSERS: dict[str, Callable[[bytes], object]] = {
    "pidf": parse_pidf,
    "dialog-info": parse_dialog_info,
    "watcherinfo": parse_watcherinfo,
    "provisioning": lambda data: parse_provisioning(data.decode("utf-8", "surrogateescape")),
}


@pytest.mark.parametrize("parser", PARSERS.values(), ids=PARSERS.keys())
@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_every_parser_refuses_hostile_input(parser: Callable[[bytes], object], data: bytes) -> None:
    with pytest.raises(DocumentError):
        parser(data)


def test_document_error_is_the_peers_fault() -> None:
    assert issubclass(DocumentError, RemoteProtocolError)


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, PARAMETER_ENTITY])
def test_doctype_is_refused_by_name(data: bytes) -> None:
    with pytest.raises(DocumentError, match="DOCTYPE"):
        parse_xml(data)


def test_an_internal_doctype_without_entities_is_refused_too() -> None:
    with pytest.raises(DocumentError, match="DOCTYPE"):
        parse_xml(b"<!DOCTYPE a><a/>")


def test_size_limit_is_checked_before_parsing_and_names_the_sizes() -> None:
    with pytest.raises(DocumentError, match=r"10485\d+ bytes, more than the 65536 allowed"):
        parse_xml(TEN_MEGABYTES)


def test_size_limit_is_a_parameter() -> None:
    document = b"<a>" + b"x" * 100 + b"</a>"
    assert parse_xml(document, max_bytes=len(document)).text == "x" * 100
    with pytest.raises(DocumentError, match="108 bytes, more than the 107 allowed"):
        parse_xml(document + b" ", max_bytes=len(document))


def test_depth_limit_is_a_parameter() -> None:
    assert parse_xml(b"<a><b><c/></b></a>", max_depth=3).tag == "a"
    with pytest.raises(DocumentError, match="deeper than 2 levels"):
        parse_xml(b"<a><b><c/></b></a>", max_depth=2)


def test_deep_nesting_is_refused_by_the_default_depth() -> None:
    with pytest.raises(DocumentError, match="deeper than 32 levels"):
        parse_xml(DEEP_NESTING)
    assert parse_xml(b"<a>" * 32 + b"</a>" * 32).tag == "a"
    with pytest.raises(DocumentError, match="deeper than 32 levels"):
        parse_xml(b"<a>" * 33 + b"</a>" * 33)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (TRUNCATED, "malformed XML: unclosed token"),
        (b"<a><b></a>", "malformed XML: mismatched tag at line 1"),
        (INVALID_UTF8, "malformed XML: not well-formed"),
    ],
)
def test_malformed_xml_says_what_and_where(data: bytes, message: str) -> None:
    with pytest.raises(DocumentError, match=message):
        parse_xml(data)


def test_names_are_in_clark_notation_whatever_the_prefix() -> None:
    root = parse_xml(
        b'<x:a xmlns:x="urn:example:one" xmlns:y="urn:example:two" y:attr="1" plain="2"'
        b' xml:lang="de"><y:b/><c/></x:a>'
    )
    assert root.tag == "{urn:example:one}a"
    assert root.attrib == {
        "{urn:example:two}attr": "1",
        "plain": "2",
        "{http://www.w3.org/XML/1998/namespace}lang": "de",
    }
    assert [child.tag for child in root] == ["{urn:example:two}b", "c"]


def test_declared_encoding_of_bytes_is_honoured() -> None:
    latin1 = '<?xml version="1.0" encoding="ISO-8859-1"?><a>Müller</a>'.encode("latin-1")
    assert parse_xml(latin1).text == "Müller"
    utf16 = '<?xml version="1.0" encoding="UTF-16"?><a>Müller</a>'.encode("utf-16")
    assert parse_xml(utf16).text == "Müller"


def test_text_is_taken_as_it_is_whatever_it_declares() -> None:
    assert parse_xml('<?xml version="1.0" encoding="ISO-8859-1"?><a>Müller</a>').text == "Müller"


def test_text_with_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(DocumentError, match="not valid Unicode"):
        parse_xml("<a>\ud800</a>")


def test_comments_and_processing_instructions_do_not_split_text() -> None:
    assert parse_xml(b"<a>one<!-- c --><?pi x?>two</a>").text == "onetwo"
