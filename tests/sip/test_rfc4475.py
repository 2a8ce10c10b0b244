"""The SIP torture test messages of RFC 4475, read from the shared conformance corpus.

``valid`` messages parse and their tricky fields read right; ``invalid`` ones raise
RemoteProtocolError, either from :func:`parse_message` (start line, framing, CSeq) or from the
typed field that holds the fault, since header values are parsed when first read; ``semantic``
ones parse, and what is wrong with them shows where a higher layer looks.
"""

from __future__ import annotations

from collections.abc import Callable
import csv
import random

import pytest

from custom_components.sip_profiles.sip.errors import RemoteProtocolError
from custom_components.sip_profiles.sip.headers import STAR, CSeq
from custom_components.sip_profiles.sip.message import Message, Request, Response, parse_message
from custom_components.sip_profiles.sip.uri import AbsoluteUri, SipUri
from tests.harness.shared import shared_path

CORPUS = shared_path("conformance", "rfc4475")
if not (CORPUS / "MANIFEST.tsv").is_file():
    pytest.skip(
        f"RFC 4475 corpus not found at {CORPUS} (set SIP_PROFILES_SHARED)",
        allow_module_level=True,
    )

with (CORPUS / "MANIFEST.tsv").open(encoding="utf-8") as _handle:
    MANIFEST = {row["file"]: row for row in csv.DictReader(_handle, delimiter="\t")}

FIELDS = (
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
)


def load(name: str) -> bytes:
    """The raw octets of one corpus file."""
    return (CORPUS / name).read_bytes()


def files_of(kind: str) -> list[str]:
    """The corpus files of one class, in manifest order."""
    return [name for name, row in MANIFEST.items() if row["class"] == kind]


def request(name: str) -> Request:
    """Parse a corpus file that holds a request."""
    message = parse_message(load(name))
    assert isinstance(message, Request)
    return message


def response(name: str) -> Response:
    """Parse a corpus file that holds a response."""
    message = parse_message(load(name))
    assert isinstance(message, Response)
    return message


def read_all(message: Message) -> None:
    """Read every typed field; a valid message has no malformed one."""
    for name in FIELDS:
        getattr(message, name)


def test_manifest_lists_the_49_messages() -> None:
    kinds = [row["class"] for row in MANIFEST.values()]
    assert (kinds.count("valid"), kinds.count("invalid"), kinds.count("semantic")) == (13, 19, 17)


# --- 3.1.1 valid messages --------------------------------------------------------------------


def check_wsinv() -> None:
    message = request("wsinv.dat")
    assert message.method == "INVITE"
    assert message.uri == SipUri(
        "sip", "chair-dnrc.example.com", "vivekg", params=(("unknownparam", None),)
    )
    assert message.to.uri == SipUri("sip", "chair-dnrc.example.com", "vivekg")
    assert message.to.tag == "1918181833n"
    assert message.from_.display_name == 'J Rosenberg \\"'
    assert message.from_.tag == "98asjd8"
    assert message.headers.get("Max-Forwards") == "0068"
    assert message.cseq == CSeq(9, "INVITE")
    assert [(via.transport, via.host, via.branch) for via in message.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert message.headers.get("Subject") == ""
    assert message.headers.get("NewFangledHeader") == (
        "newfangled value continued newfangled value"
    )
    assert message.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    contacts = message.contacts
    assert contacts != STAR
    assert len(contacts) == 1
    assert contacts[0].display_name == 'Quoted string ""'
    assert contacts[0].params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert len(message.body) == 150


def check_intmeth() -> None:
    message = request("intmeth.dat")
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert message.method == method
    assert message.cseq == CSeq(139122385, method)
    assert isinstance(message.uri, SipUri)
    assert message.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert message.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert message.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert message.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert message.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert message.from_.param("fromParam''~+*_!.-%") == (
        "\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439"
    )
    assert message.from_.tag == "_token~1'+`*%!-."
    assert message.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert message.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff\u5927\u505c\u96fb"


def check_esc01() -> None:
    message = request("esc01.dat")
    assert message.uri == SipUri("sip", "example.net", "sips:user@example.com")
    assert isinstance(message.to.uri, SipUri)
    assert message.to.uri.user == "user"
    assert isinstance(message.from_.uri, SipUri)
    assert message.from_.uri.user == "I have spaces"
    contacts = message.contacts
    assert contacts != STAR
    assert contacts[0].uri == SipUri(
        "sip", "host5.example.net", "caller", params=(("lr", None), ("name", "value%41"))
    )
    content_type = message.content_type
    assert content_type is not None
    assert content_type.mime == "application/sdp"
    assert message.call_id == "esc01.239409asdfakjkn23onasd0-3234"


def check_escnull() -> None:
    message = request("escnull.dat")
    assert isinstance(message.to.uri, SipUri)
    assert message.to.uri.user == "null-\x00-null"
    contacts = message.contacts
    assert contacts != STAR
    assert [contact.uri for contact in contacts] == [
        SipUri("sip", "host5.example.com", "\x00"),
        SipUri("sip", "host5.example.com", "\x00\x00"),
    ]
    assert message.body == b""


def check_esc02() -> None:
    message = request("esc02.dat")
    assert message.method == "RE%47IST%45R"
    assert message.cseq.method == "RE%47IST%45R"
    assert message.to.display_name == "%Z%45"
    assert message.top_via.branch == "z9hG4bK209%fzsnel234"
    contacts = message.contacts
    assert contacts != STAR
    # "C%6Fntact" is an unknown header name, not an escaped Contact.
    assert [str(contact.uri) for contact in contacts] == [
        "sip:alias1@host1.example.com",
        "sip:alias3@host3.example.com",
    ]
    assert message.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def check_lwsdisp() -> None:
    message = request("lwsdisp.dat")
    assert message.from_.display_name == "caller"
    assert message.from_.tag == "323"


def check_longreq() -> None:
    message = request("longreq.dat")
    assert message.to.display_name == ("I have a user name of " + "extreme" * 10 + " proportion")
    assert isinstance(message.to.uri, SipUri)
    assert message.to.uri.port == 6000
    assert message.to.uri.param("unknownparam1") == "very" + "long" * 20 + "value"
    assert message.to.uri.param("longparam" + "name" * 25) == "shortvalue"
    assert message.to.uri.param("very" + "long" * 25 + "parameternamewithnovalue") == ""
    assert isinstance(message.from_.uri, SipUri)
    assert message.from_.uri.user == "amazinglylongcallername" * 5
    assert message.from_.tag == "12" + "982" * 50 + "424"
    assert message.call_id == "longreq.one" + "really" * 20 + "longcallid"
    # The corpus file holds 34 Via values under every spelling of the name (v, V, ViA, via ...).
    vias = message.vias
    assert len(vias) == 34
    assert [via.host for via in vias[:33]] == [f"sip{n}.example.com" for n in range(33, 0, -1)]
    assert vias[-1].received == "192.0.2.5"
    assert vias[-1].branch == "very" + "long" * 50 + "branchvalue"
    unknown = message.headers.get("Unknown-" + "Long" * 20 + "-Name")
    assert unknown is not None
    assert unknown.startswith("unknown-" + "long" * 20 + "-value; unknown-")
    assert len(message.body) == 150


def check_dblreq() -> None:
    message = request("dblreq.dat")
    assert message.method == "REGISTER"
    assert message.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    assert message.body == b""


def check_semiuri() -> None:
    message = request("semiuri.dat")
    assert message.uri == SipUri("sip", "example.com", "user;par=u@example.net")
    assert message.headers.get_list("Accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def check_transports() -> None:
    message = request("transports.dat")
    assert [(via.transport, via.host) for via in message.vias] == [
        ("UDP", "t1.example.com"),
        ("SCTP", "t2.example.com"),
        ("TLS", "t3.example.com"),
        ("UNKNOWN", "t4.example.com"),
        ("TCP", "t5.example.com"),
    ]
    assert message.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def check_mpart01() -> None:
    message = request("mpart01.dat")
    assert len(message.body) == 553
    assert message.body.startswith(b"--7a9cbec02ceef655\r\n")
    assert message.body.endswith(b"--7a9cbec02ceef655--\r\n")
    content_type = message.content_type
    assert content_type is not None
    assert content_type.mime == "multipart/mixed"
    assert content_type.params == (("boundary", "7a9cbec02ceef655"),)
    assert message.top_via.rport is None


def check_unreason() -> None:
    message = response("unreason.dat")
    assert message.status == 200
    assert message.reason == (
        "= 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f\u043d\u043e"
        "\u0441\u0442\u043e \u0434\u0435\u0432\u044f\u0442\u044c - \u043f\u0440\u043e\u0441"
        "\u0442\u043e\u0435"
    )


def check_noreason() -> None:
    message = response("noreason.dat")
    assert (message.status, message.reason) == (100, "")
    assert message.to.tag == "902jndnke3"


VALID_CHECKS: dict[str, Callable[[], None]] = {
    "wsinv.dat": check_wsinv,
    "intmeth.dat": check_intmeth,
    "esc01.dat": check_esc01,
    "escnull.dat": check_escnull,
    "esc02.dat": check_esc02,
    "lwsdisp.dat": check_lwsdisp,
    "longreq.dat": check_longreq,
    "dblreq.dat": check_dblreq,
    "semiuri.dat": check_semiuri,
    "transports.dat": check_transports,
    "mpart01.dat": check_mpart01,
    "unreason.dat": check_unreason,
    "noreason.dat": check_noreason,
}


def test_every_valid_message_has_its_checks() -> None:
    assert set(VALID_CHECKS) == set(files_of("valid"))


@pytest.mark.parametrize("name", files_of("valid"))
def test_valid_message(name: str) -> None:
    read_all(parse_message(load(name)))
    VALID_CHECKS[name]()


@pytest.mark.parametrize("name", files_of("valid"))
def test_valid_message_round_trips(name: str) -> None:
    message = parse_message(load(name))
    again = parse_message(message.to_bytes())
    assert type(again) is type(message)
    assert again.to_bytes() == message.to_bytes()
    assert again.body == message.body
    assert again.top_via == message.top_via
    assert again.from_ == message.from_
    assert again.to == message.to
    assert again.contacts == message.contacts


# --- 3.1.2 invalid messages ------------------------------------------------------------------

# Where each fault is found: by parse_message itself, or by the typed field that holds it.
INVALID_WHERE: dict[str, str] = {
    "badinv01.dat": "vias",  # Via "192.0.2.15;;,;,,": empty parameters and elements
    "clerr.dat": "parse",  # Content-Length 9999 beyond the datagram
    "ncl.dat": "parse",  # Content-Length -999
    "scalar02.dat": "parse",  # CSeq 36893488147419103232 (checked against the method)
    "scalarlg.dat": "cseq",  # CSeq 9292394834772304023312 in a response
    "quotbal.dat": "to",  # unterminated quoted display name
    "ltgtruri.dat": "parse",  # Request-URI in <>
    "lwsruri.dat": "parse",  # white space inside the Request-URI
    "lwsstart.dat": "parse",  # two SP between request line elements
    "trws.dat": "parse",  # SP after SIP/2.0
    "escruri.dat": "parse",  # headers in a Request-URI (RFC 3261 §19.1.1)
    "regbadct.dat": "contacts",  # addr-spec with '?' outside <>
    "badaspec.dat": "to",  # "< sip:t.watson@example.org >"
    "baddn.dat": "parse",  # the file has no empty line after the header fields
    "badvers.dat": "parse",  # SIP/7.0
    "mismatch01.dat": "parse",  # OPTIONS with CSeq INVITE
    "mismatch02.dat": "parse",  # NEWMETHOD with CSeq INVITE
    "bigcode.dat": "parse",  # status 4294967301
}
# RFC 4475 §3.1.2.12 (baddate.dat): "It is acceptable to reject this request as malformed
# (though an element shouldn't do that unless the contents of the Date header field were
# actually important to its processing). An element wishing to process this message could
# ignore the Date header field altogether." We do not interpret Date, so it parses.
LENIENT = {"baddate.dat"}


def test_every_invalid_message_is_accounted_for() -> None:
    assert set(INVALID_WHERE) | LENIENT == set(files_of("invalid"))


@pytest.mark.parametrize("name", sorted(INVALID_WHERE))
def test_invalid_message_is_rejected(name: str) -> None:
    where = INVALID_WHERE[name]
    if where == "parse":
        with pytest.raises(RemoteProtocolError):
            parse_message(load(name))
        return
    message = parse_message(load(name))
    with pytest.raises(RemoteProtocolError):
        getattr(message, where)


def test_baddn_display_name_is_rejected_even_with_its_empty_line() -> None:
    message = parse_message(load("baddn.dat") + b"\r\n")
    with pytest.raises(RemoteProtocolError):
        _ = message.from_
    with pytest.raises(RemoteProtocolError):
        _ = message.to


def test_scalar02_expires_and_contact_expires_are_overlarge() -> None:
    data = load("scalar02.dat").replace(b"36893488147419103232", b"36")
    message = parse_message(data)
    with pytest.raises(RemoteProtocolError):
        _ = message.expires


def test_scalarlg_retry_after_is_overlarge() -> None:
    message = parse_message(load("scalarlg.dat"))
    with pytest.raises(RemoteProtocolError):
        _ = message.retry_after


def test_badinv01_contact_params_are_rejected_too() -> None:
    message = parse_message(load("badinv01.dat"))
    with pytest.raises(RemoteProtocolError):
        _ = message.contacts


@pytest.mark.parametrize("name", sorted(LENIENT))
def test_lenient_reading_of_invalid_message(name: str) -> None:
    message = parse_message(load(name))
    read_all(message)
    assert message.headers.get("Date") == "Fri, 01 Jan 2010 16:00:00 EST"


# --- 3.2-3.4 semantic messages ---------------------------------------------------------------


def check_badbranch(message: Message) -> None:
    assert message.top_via.branch == "z9hG4bK"


def check_insuf(message: Message) -> None:
    for field in ("call_id", "from_", "to"):
        with pytest.raises(RemoteProtocolError):
            getattr(message, field)
    assert "Max-Forwards" not in message.headers
    assert message.cseq == CSeq(193942, "INVITE")


def check_unkscm(message: Message) -> None:
    assert isinstance(message, Request)
    assert message.uri == AbsoluteUri("nobodyknowsthisscheme", "totallyopaquecontent")


def check_novelsc(message: Message) -> None:
    assert isinstance(message, Request)
    assert message.uri == AbsoluteUri("soap.beep", "//192.0.2.103:3002")


def check_unksm2(message: Message) -> None:
    assert message.to.uri == AbsoluteUri("isbn", "2983792873")
    assert message.from_.uri == AbsoluteUri("http", "//www.example.com")
    assert message.from_.tag == "3234233"
    contacts = message.contacts
    assert contacts != STAR
    assert contacts[0].uri == AbsoluteUri("name", "John_Smith")


def check_bext01(message: Message) -> None:
    assert message.headers.get_list("Require") == [
        "nothingSupportsThis",
        "nothingSupportsThisEither",
    ]
    assert message.headers.get_list("Proxy-Require") == [
        "noProxiesSupportThis",
        "norDoAnyProxiesSupportThis",
    ]


def check_invut(message: Message) -> None:
    assert message.content_type is not None
    assert message.content_type.mime == "application/unknownformat"
    assert len(message.body) == 40


def check_regaut01(message: Message) -> None:
    assert message.headers.get("Authorization") == "NoOneKnowsThisScheme opaque-data=here"


def check_multi01(message: Message) -> None:
    for field in ("cseq", "call_id", "from_", "to"):
        with pytest.raises(RemoteProtocolError):
            getattr(message, field)


def check_bcast(message: Message) -> None:
    assert [via.host for via in message.vias] == ["192.0.2.198", "255.255.255.255"]


def check_zeromf(message: Message) -> None:
    assert message.headers.get("Max-Forwards") == "0"


def check_cparam01(message: Message) -> None:
    contacts = message.contacts
    assert contacts != STAR
    assert contacts[0].uri == SipUri("sip", "gw1.example.net", "+19725552222")
    assert contacts[0].params == (("unknownparam", None),)


def check_cparam02(message: Message) -> None:
    contacts = message.contacts
    assert contacts != STAR
    assert contacts[0].uri == SipUri(
        "sip", "gw1.example.net", "+19725552222", params=(("unknownparam", None),)
    )
    assert contacts[0].params == ()


def check_regescrt(message: Message) -> None:
    contacts = message.contacts
    assert contacts != STAR
    assert isinstance(contacts[0].uri, SipUri)
    assert contacts[0].uri.headers == (("Route", "<sip:sip.example.com>"),)


def check_sdp01(message: Message) -> None:
    assert message.headers.get("Accept") == "text/nobodyKnowsThis"


def check_inv2543(message: Message) -> None:
    assert message.top_via.branch is None
    assert message.to.param("user") == "phone"
    assert "Content-Length" not in message.headers
    assert message.body.startswith(b"v=0")


SEMANTIC_CHECKS: dict[str, Callable[[Message], None]] = {
    "badbranch.dat": check_badbranch,
    "insuf.dat": check_insuf,
    "unkscm.dat": check_unkscm,
    "novelsc.dat": check_novelsc,
    "unksm2.dat": check_unksm2,
    "bext01.dat": check_bext01,
    "invut.dat": check_invut,
    "regaut01.dat": check_regaut01,
    "multi01.dat": check_multi01,
    "bcast.dat": check_bcast,
    "zeromf.dat": check_zeromf,
    "cparam01.dat": check_cparam01,
    "cparam02.dat": check_cparam02,
    "regescrt.dat": check_regescrt,
    "sdp01.dat": check_sdp01,
    "inv2543.dat": check_inv2543,
}
# Also invalid under our grammar: RFC 4475 §3.3.9 says of mcl01.dat "From a framing
# perspective, this situation is equivalent to an invalid Content-Length value (or no value
# at all)", and a message whose framing is unknown cannot be parsed.
SEMANTIC_BUT_UNPARSABLE = {"mcl01.dat"}


def test_every_semantic_message_is_accounted_for() -> None:
    assert set(SEMANTIC_CHECKS) | SEMANTIC_BUT_UNPARSABLE == set(files_of("semantic"))


@pytest.mark.parametrize("name", sorted(SEMANTIC_CHECKS))
def test_semantic_message_parses(name: str) -> None:
    SEMANTIC_CHECKS[name](parse_message(load(name)))


@pytest.mark.parametrize("name", sorted(SEMANTIC_BUT_UNPARSABLE))
def test_semantic_message_that_cannot_be_framed(name: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_message(load(name))


# --- robustness ------------------------------------------------------------------------------


def test_mutated_corpus_messages_parse_or_raise_remote_protocol_error() -> None:
    rng = random.Random(3261)
    corpus = [load(name) for name in MANIFEST]
    for _ in range(1500):
        data = bytearray(rng.choice(corpus))
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[position] = rng.choice(b' \t\r\n;,:<>"%\\\x00\xff0')
            else:
                del data[position : position + rng.randint(1, 6)]
        try:
            message = parse_message(bytes(data))
        except RemoteProtocolError:
            continue
        for field in FIELDS:
            try:
                getattr(message, field)
            except RemoteProtocolError:
                continue
