"""Stream framing (RFC 3261 §7.5, §18.3): real servers' messages and RFC 4475, split anywhere.

Kamailio writes Content-Length in the middle of the NOTIFYs it sends; Asterisk (PJSIP) pads
its value with spaces; other servers use the compact form, other cases and folded lines. Every
such message must come out of the framer whole, whatever the reads cut it into.
"""

from __future__ import annotations

import csv
import random

import pytest

from custom_components.sip_profiles.sip.errors import RemoteProtocolError
from custom_components.sip_profiles.sip.message import StreamFramer, parse_message
from tests.harness.shared import shared_path

# --- what servers write, captured (Kamailio 5.6) or in their documented shape (Asterisk) ------

_PIDF = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf" '
    b'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
    b'xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:bob@sip.test">\n'
    b'<tuple id="tf705aee2"><status><basic>open</basic></status></tuple>\n'
    b"<note>x</note>\n"
    b'<dm:person id="p-tf705aee2"><rpid:activities><rpid:busy/></rpid:activities></dm:person>\n'
    b"</presence>\n"
)
KAMAILIO_NOTIFY_PIDF = (
    b"NOTIFY sip:alice@127.0.0.1:35363;transport=tcp SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:44934;branch=z9hG4bK7d6b.e80680c3000000000000000000000000.0\r\n"
    b"To: <sip:alice@sip.test>;tag=a66f6128de66956c\r\n"
    b"From: <sip:bob@sip.test>;tag=68983a219f2b4d9749c3e7e4b4a11bcd-eccfdae7\r\n"
    b"CSeq: 3 NOTIFY\r\n"
    b"Call-ID: 04b7091e3bfd73cb6ae6eeb5c22496f0\r\n"
    b"Content-Length: 390\r\n"
    b"User-Agent: kamailio (5.6.3 (x86_64/linux))\r\n"
    b"Max-Forwards: 70\r\n"
    b"Event: presence\r\n"
    b"Contact: <sip:127.0.0.1:44934;transport=tcp>\r\n"
    b"Subscription-State: active;expires=3599\r\n"
    b"Content-Type: application/pidf+xml\r\n"
    b"\r\n" + _PIDF
)
KAMAILIO_NOTIFY_EMPTY = (
    b"NOTIFY sip:alice@127.0.0.1:35363;transport=tcp SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:44934;branch=z9hG4bK93d2.caaf2d27000000000000000000000000.0\r\n"
    b"To: <sip:alice@sip.test>;tag=0caba69a4f270979\r\n"
    b"From: <sip:bob@sip.test>;tag=68983a219f2b4d9749c3e7e4b4a11bcd-16671fed\r\n"
    b"CSeq: 2 NOTIFY\r\n"
    b"Call-ID: 048a746f8ac32acb35b00cba1b601c8e\r\n"
    b"Content-Length: 0\r\n"
    b"User-Agent: kamailio (5.6.3 (x86_64/linux))\r\n"
    b"Max-Forwards: 70\r\n"
    b"Event: dialog\r\n"
    b"Contact: <sip:127.0.0.1:44934;transport=tcp>\r\n"
    b"Subscription-State: active;expires=3600\r\n"
    b"\r\n"
)
KAMAILIO_401 = (
    b"SIP/2.0 401 Unauthorized\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:35363;branch=z9hG4bKdebdba86826312457a6ff34e;rport=35363;"
    b"received=127.0.0.1\r\n"
    b"From: <sip:alice@sip.test>;tag=3c6ba3168ff91c27\r\n"
    b"To: <sip:alice@sip.test>;tag=66b7053539734ec31abfd8f3700b6c2b.6257b251\r\n"
    b"Call-ID: b0e83291980696b4339b8c8949f066cc\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b'WWW-Authenticate: Digest realm="sip.test", nonce="axH1B2sR89sXqZmHLKHeL91fgFP5izZ7", '
    b'qop="auth"\r\n'
    b"Server: kamailio (5.6.3 (x86_64/linux))\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
KAMAILIO_200_SUBSCRIBE = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/TCP 127.0.0.1:35363;branch=z9hG4bK24ca1b2410d22bcb1e2432ce;rport=35363;"
    b"received=127.0.0.1\r\n"
    b"From: <sip:alice@sip.test>;tag=a66f6128de66956c\r\n"
    b"To: <sip:bob@sip.test>;tag=68983a219f2b4d9749c3e7e4b4a11bcd-eccfdae7\r\n"
    b"Call-ID: 04b7091e3bfd73cb6ae6eeb5c22496f0\r\n"
    b"CSeq: 1 SUBSCRIBE\r\n"
    b"Expires: 3600\r\n"
    b"Contact: <sip:127.0.0.1:44934;transport=tcp>\r\n"
    b"Server: kamailio (5.6.3 (x86_64/linux))\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)
# PJSIP leaves five places for the length and right-aligns it: "Content-Length:     0".
ASTERISK_401 = (
    b"SIP/2.0 401 Unauthorized\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.20:5060;rport=41234;received=192.0.2.20;"
    b"branch=z9hG4bKPj0b6e3c5e-8b1c-4a0e-9f39-5a7d1e2c4b6a\r\n"
    b"Call-ID: 8f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b\r\n"
    b"From: <sip:6001@192.0.2.10>;tag=1e9a2c4b-7d3f-4e5a-b6c7-d8e9f0a1b2c3\r\n"
    b"To: <sip:6001@192.0.2.10>;tag=z9hG4bKPj0b6e3c5e-8b1c-4a0e-9f39-5a7d1e2c4b6a\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b'WWW-Authenticate: Digest realm="asterisk",nonce="1701868800/3b8d5f0a9c2e",'
    b'opaque="5b7c1d2e3f4a5b6c",algorithm=MD5,qop="auth"\r\n'
    b"Server: Asterisk PBX 20.5.0\r\n"
    b"Content-Length:     0\r\n"
    b"\r\n"
)
ASTERISK_200_REGISTER = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.20:5060;rport=41234;received=192.0.2.20;"
    b"branch=z9hG4bKPj6d7e8f90-a1b2-4c3d-8e4f-5a6b7c8d9e0f\r\n"
    b"Call-ID: 8f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b\r\n"
    b"From: <sip:6001@192.0.2.10>;tag=1e9a2c4b-7d3f-4e5a-b6c7-d8e9f0a1b2c3\r\n"
    b"To: <sip:6001@192.0.2.10>;tag=z9hG4bKPj6d7e8f90-a1b2-4c3d-8e4f-5a6b7c8d9e0f\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b"Date: Thu, 03 Dec 2026 22:10:04 GMT\r\n"
    b"Contact: <sip:6001@192.0.2.20:5060;transport=TCP>;expires=3599\r\n"
    b"Expires: 3600\r\n"
    b"Server: Asterisk PBX 20.5.0\r\n"
    b"Content-Length:     0\r\n"
    b"\r\n"
)
_DIALOG_INFO = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" state="full" '
    b'entity="sip:6002@192.0.2.10">\n'
    b' <dialog id="6002" direction="recipient">\n'
    b"  <state>confirmed</state>\n"
    b" </dialog>\n"
    b"</dialog-info>\n"
)
ASTERISK_NOTIFY_DIALOG = (
    b"NOTIFY sip:alice@192.0.2.20:41234;transport=TCP SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.10:5060;rport;"
    b"branch=z9hG4bKPj3f4e5d6c-7b8a-4990-a1b2-c3d4e5f6a7b8\r\n"
    b"From: <sip:6002@192.0.2.10>;tag=5d1c2b3a-4f5e-6d7c-8b9a-0f1e2d3c4b5a\r\n"
    b"To: <sip:alice@192.0.2.10>;tag=9a8b7c6d\r\n"
    b"Contact: <sip:192.0.2.10:5060;transport=TCP>\r\n"
    b"Call-ID: 0a1b2c3d4e5f60718293a4b5c6d7e8f9\r\n"
    b"CSeq: 27142 NOTIFY\r\n"
    b"Subscription-State: active;expires=3599\r\n"
    b"Event: dialog\r\n"
    b"Allow-Events: presence, dialog, message-summary, refer\r\n"
    b"Max-Forwards: 70\r\n"
    b"User-Agent: Asterisk PBX 20.5.0\r\n"
    b"Content-Type: application/dialog-info+xml\r\n"
    b"Content-Length: " + f"{len(_DIALOG_INFO):>5}".encode() + b"\r\n"
    b"\r\n" + _DIALOG_INFO
)
_SUMMARY = b"Messages-Waiting: yes\r\nMessage-Account: sip:*97@192.0.2.10\r\nVoice-Message: 2/1\r\n"
# Compact forms, lower and upper case, white space around the colon, a folded value.
COMPACT_NOTIFY = (
    b"NOTIFY sip:alice@192.0.2.20:41234;transport=tcp SIP/2.0\r\n"
    b"v: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKc0mp4ct\r\n"
    b"f :<sip:*97@192.0.2.10>;tag=mw1\r\n"
    b"t:\t<sip:alice@192.0.2.10>;tag=mw2\r\n"
    b"i: mwi-1@192.0.2.10\r\n"
    b"L :\r\n " + str(len(_SUMMARY)).encode() + b" \r\n"
    b"cseq: 4 NOTIFY\r\n"
    b"o: message-summary\r\n"
    b"SUBSCRIPTION-STATE: active;expires=600\r\n"
    b"c: application/simple-message-summary\r\n"
    b"\r\n" + _SUMMARY
)
LOWER_CASE_200 = (
    b"SIP/2.0 200 OK\r\n"
    b"via: SIP/2.0/TCP 192.0.2.20:5060;branch=z9hG4bKl0w3r;received=192.0.2.20\r\n"
    b"content-length:0\r\n"
    b"from: <sip:alice@example.com>;tag=a\r\n"
    b"to: <sip:alice@example.com>;tag=b\r\n"
    b"call-id: lower@192.0.2.20\r\n"
    b"cseq: 9 REGISTER\r\n"
    b"\r\n"
)

SERVER_MESSAGES = {
    "kamailio_notify_pidf": KAMAILIO_NOTIFY_PIDF,
    "kamailio_notify_empty": KAMAILIO_NOTIFY_EMPTY,
    "kamailio_401": KAMAILIO_401,
    "kamailio_200_subscribe": KAMAILIO_200_SUBSCRIBE,
    "asterisk_401": ASTERISK_401,
    "asterisk_200_register": ASTERISK_200_REGISTER,
    "asterisk_notify_dialog": ASTERISK_NOTIFY_DIALOG,
    "compact_notify": COMPACT_NOTIFY,
    "lower_case_200": LOWER_CASE_200,
}
KEEPALIVES = (b"", b"\r\n", b"\r\n\r\n")

CORPUS = shared_path("conformance", "rfc4475")
if (CORPUS / "MANIFEST.tsv").is_file():
    with (CORPUS / "MANIFEST.tsv").open(encoding="utf-8") as _handle:
        MANIFEST = {row["file"]: row["class"] for row in csv.DictReader(_handle, delimiter="\t")}
else:
    MANIFEST = {}
needs_corpus = pytest.mark.skipif(
    not MANIFEST, reason=f"RFC 4475 corpus not found at {CORPUS} (set SIP_PROFILES_SHARED)"
)
# dblreq.dat is one datagram holding a REGISTER and trailing octets; a stream frames the
# REGISTER, then an INVITE that its Content-Length cuts short, then finds no framing.
DATAGRAM_ONLY = "dblreq.dat"


def drain(framer: StreamFramer, data: bytes) -> list[bytes]:
    """Feed ``data`` and take every message it completes."""
    framer.feed(data)
    messages = []
    while (message := framer.next_message()) is not None:
        messages.append(message)
    return messages


def outcome(chunks: list[bytes]) -> tuple[list[bytes], str | None, int]:
    """What one framer makes of a stream read in ``chunks``: messages, error, octets left over."""
    framer = StreamFramer()
    messages: list[bytes] = []
    try:
        for chunk in chunks:
            framer.feed(chunk)
            while (message := framer.next_message()) is not None:
                messages.append(message)
    except RemoteProtocolError as err:
        return messages, str(err), -1
    return messages, None, len(framer._buffer)


def splits(stream: bytes) -> list[list[bytes]]:
    """The stream cut in two at every octet boundary, and read one octet at a time."""
    cuts = [[stream[:index], stream[index:]] for index in range(1, len(stream))]
    return [*cuts, [stream[index : index + 1] for index in range(len(stream))]]


def cut_at_random(stream: bytes, rng: random.Random, most: int) -> tuple[list[bytes], list[int]]:
    """The stream cut at 1 to ``most`` random places; the chunks and where they were cut."""
    cuts = sorted(rng.sample(range(1, len(stream)), min(rng.randint(1, most), len(stream) - 1)))
    ends = [*cuts, len(stream)]
    return [stream[start:end] for start, end in zip([0, *cuts], ends, strict=True)], cuts


def corpus_file(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


# --- server messages ------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVER_MESSAGES)
def test_server_message_is_framed_whole_wherever_the_stream_is_split(name: str) -> None:
    message = SERVER_MESSAGES[name]
    parse_message(message)  # the canned bytes are a valid message
    stream = message + b"\r\n\r\n" + message + b"\r\n"
    for chunks in splits(stream):
        assert outcome(chunks) == ([message, message], None, 0), [len(c) for c in chunks]


def test_kamailio_notify_with_content_length_in_the_middle_is_one_message() -> None:
    framer = StreamFramer()
    assert drain(framer, KAMAILIO_NOTIFY_PIDF + KAMAILIO_NOTIFY_EMPTY) == [
        KAMAILIO_NOTIFY_PIDF,
        KAMAILIO_NOTIFY_EMPTY,
    ]
    assert parse_message(KAMAILIO_NOTIFY_PIDF).body == _PIDF


def test_messages_before_a_broken_one_are_delivered_and_the_break_stays() -> None:
    broken = b"OPTIONS sip:x SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n"
    framer = StreamFramer()
    framer.feed(KAMAILIO_401 + b"\r\n" + broken + KAMAILIO_401)
    assert framer.next_message() == KAMAILIO_401
    for _ in range(2):
        with pytest.raises(RemoteProtocolError, match="no Content-Length"):
            framer.next_message()
    assert framer.keepalives == 1


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (b"Content-Length: x", "bad number"),
        (b"Content-Length: 1\r\nl: 2", "conflicting"),
        (b"Content-Length: 70000", "too large"),
        (b"Content-Length: 5\nX: y", "bad number"),  # a bare LF is no line end
    ],
)
def test_unreadable_content_length_breaks_the_stream(header: bytes, error: str) -> None:
    data = KAMAILIO_401.replace(b"Content-Length: 0", header)
    with pytest.raises(RemoteProtocolError, match=error):
        drain(StreamFramer(), data)


def test_oversize_messages_break_the_stream() -> None:
    framer = StreamFramer(max_message_size=1000)
    with pytest.raises(RemoteProtocolError, match="too large"):
        drain(framer, KAMAILIO_401.replace(b"Content-Length: 0", b"l: 900") + b"x" * 900)
    endless = StreamFramer(max_message_size=1000)
    drain(endless, b"NOTIFY sip:a@b SIP/2.0\r\n")
    with pytest.raises(RemoteProtocolError, match="header fields larger"):
        drain(endless, b"X-Filler: " + b"x" * 1000)


def test_keepalives_between_messages_are_counted() -> None:
    framer = StreamFramer()
    stream = b"\r\n\r\n" + KAMAILIO_401 + b"\r\n" + KAMAILIO_401 + b"\r\n\r\n"
    assert drain(framer, stream) == [KAMAILIO_401, KAMAILIO_401]
    assert framer.keepalives == 3
    assert drain(framer, KAMAILIO_NOTIFY_PIDF[:-5]) == []
    assert drain(framer, KAMAILIO_NOTIFY_PIDF[-5:]) == [KAMAILIO_NOTIFY_PIDF]


# --- RFC 4475 -------------------------------------------------------------------------------


@needs_corpus
@pytest.mark.parametrize("name", list(MANIFEST) or ["absent"])
def test_rfc4475_message_framing_does_not_depend_on_the_split(name: str) -> None:
    data = corpus_file(name)
    whole = outcome([data])
    for chunks in splits(data):
        assert outcome(chunks) == whole, [len(c) for c in chunks]


@needs_corpus
def test_rfc4475_valid_messages_are_framed_whole() -> None:
    valid = [name for name, kind in MANIFEST.items() if kind == "valid"]
    assert len(valid) == 13
    for name in valid:
        data = corpus_file(name)
        messages, error, _ = outcome([data])
        if name == DATAGRAM_ONLY:
            assert messages[0] == data[: data.index(b"\r\n\r\n") + 4]
            assert error == "no Content-Length on a stream"
        else:
            assert (messages, error) == ([data], None), name


# --- fuzz -----------------------------------------------------------------------------------


def _framable_corpus() -> list[bytes]:
    framable = []
    for name, kind in MANIFEST.items():
        if kind == "valid" and name != DATAGRAM_ONLY:
            framable.append(corpus_file(name))
    return framable


def test_valid_messages_cut_and_joined_at_random_come_out_whole() -> None:
    """A bounded, seeded fuzz of the stream path; the seed is printed when it fails."""
    pool = [*SERVER_MESSAGES.values(), *_framable_corpus()]
    rng = random.Random(3261)
    for round_ in range(3000):
        sent = [rng.choice(pool) for _ in range(rng.randint(1, 8))]
        stream = b"".join(rng.choice(KEEPALIVES) + message for message in sent)
        stream += rng.choice(KEEPALIVES)
        chunks, cuts = cut_at_random(stream, rng, 40)
        assert outcome(chunks) == (sent, None, 0), f"round {round_}, cuts {cuts}"


def test_a_broken_message_at_random_ends_the_stream_after_the_ones_before() -> None:
    broken = KAMAILIO_401.replace(b"Content-Length: 0\r\n", b"")
    pool = list(SERVER_MESSAGES.values())
    rng = random.Random(18_3)
    for round_ in range(1000):
        before = [rng.choice(pool) for _ in range(rng.randint(0, 5))]
        after = [rng.choice(pool) for _ in range(rng.randint(0, 3))]
        stream = b"".join([*before, broken, *after])
        chunks, _ = cut_at_random(stream, rng, 20)
        messages, error, _ = outcome(chunks)
        assert (messages, error) == (before, "no Content-Length on a stream"), f"round {round_}"
