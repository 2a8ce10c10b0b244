"""SIP requests and responses: parsing, serialization and stream framing (RFC 3261 §7).

Parsing is split in two: :func:`parse_message` checks the start line, splits the header fields
and bounds the body; the typed values of the fields (Via, From, CSeq...) are parsed when first
read and raise RemoteProtocolError then if they are malformed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import re
from typing import Final, Literal

from .errors import LocalProtocolError, RemoteProtocolError
from .grammar import WSP, is_token
from .headers import (
    Headers,
    NameAddr,
    Via,
    canonical_name,
    elements_of,
    header_key,
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
from .uri import SipUri, Uri, parse_uri

MAX_MESSAGE_SIZE: Final = 65536
"""The largest message accepted, start line to end of body, in octets."""
MAX_HEADERS: Final = 256
"""The most header fields (lines, after unfolding) a message may have."""

_VERSION: Final = "SIP/2.0"
_CONTINUATION_RE = re.compile("\r\n[ \t]+")
_REASON_CHARS = "[^\x00-\x08\x0a-\x1f\x7f]*"
_REASON_RE = re.compile(_REASON_CHARS)
_STATUS_LINE_RE = re.compile(f"[Ss][Ii][Pp]/2\\.0 ([1-6][0-9][0-9]) ({_REASON_CHARS})")
_CALL_ID_RE = re.compile("[^\x00-\x20\x7f]+")


# The readers look fields up by their lower-case key, as Headers stores them.


def _value(headers: Headers, key: str) -> str | None:
    values = headers._lookup().get(key)
    if not values:
        return None
    if len(values) > 1:
        raise RemoteProtocolError(f"more than one {canonical_name(key)} header")
    return values[0]


def _optional[T](key: str, parse: Callable[[str], T]) -> Callable[[Headers], T | None]:
    def read(headers: Headers) -> T | None:
        value = _value(headers, key)
        return None if value is None else parse(value)

    return read


def _required[T](key: str, parse: Callable[[str], T]) -> Callable[[Headers], T]:
    def read(headers: Headers) -> T:
        value = _value(headers, key)
        if value is None:
            raise RemoteProtocolError(f"no {canonical_name(key)} header")
        return parse(value)

    return read


def _read_vias(headers: Headers) -> list[Via]:
    vias = [parse_via(value) for value in headers.get_list("Via")]
    if not vias:
        raise RemoteProtocolError("no Via header")
    return vias


def _read_top_via(headers: Headers) -> Via:
    values = headers._lookup().get("via")
    if not values:
        raise RemoteProtocolError("no Via header")
    elements = elements_of(values[0])
    if not elements:
        raise RemoteProtocolError("empty Via header")
    return parse_via(elements[0])


def _call_id(text: str) -> str:
    if not _CALL_ID_RE.fullmatch(text):
        raise RemoteProtocolError(f"bad Call-ID {text!r}")
    return text


def _read_contacts(headers: Headers) -> list[NameAddr] | Literal["*"]:
    return parse_contacts(headers._lookup().get("contact", []))


class _Typed[T]:
    """A typed field value: read when first asked for, kept by the Headers until they change."""

    __slots__ = ("_name", "_read")

    def __init__(self, read: Callable[[Headers], T]) -> None:
        self._name = ""
        self._read = read

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, message: _Fields, owner: type | None = None) -> T:
        return message.headers.typed(self._name, self._read)


class _Fields:
    """Typed readers of the header fields, shared by requests and responses.

    ``vias`` lists every Via value, topmost first; ``contacts`` is every Contact value, ``*``, or
    an empty list when there is none; the optional fields read None when absent.
    """

    __slots__ = ()
    headers: Headers

    vias = _Typed(_read_vias)
    top_via = _Typed(_read_top_via)
    cseq = _Typed(_required("cseq", parse_cseq))
    call_id = _Typed(_required("call-id", _call_id))
    from_ = _Typed(_required("from", parse_name_addr))
    to = _Typed(_required("to", parse_name_addr))
    contacts = _Typed(_read_contacts)
    expires = _Typed(_optional("expires", parse_uint))
    min_expires = _Typed(_optional("min-expires", parse_uint))
    retry_after = _Typed(_optional("retry-after", parse_retry_after))
    content_type = _Typed(_optional("content-type", parse_content_type))
    event = _Typed(_optional("event", parse_event))
    subscription_state = _Typed(_optional("subscription-state", parse_subscription_state))


@dataclass(slots=True, eq=False)
class Request(_Fields):
    """A SIP request."""

    method: str
    uri: Uri
    headers: Headers
    body: bytes = b""

    def remember_top_via(self, via: Via) -> None:
        """Take ``via``, built by the caller as the topmost Via field, as that field's value.

        Reading :attr:`top_via` back then costs no parse.
        """
        self.headers.typed("top_via", lambda _: via)

    def to_bytes(self) -> bytes:
        """The request on the wire; Content-Length is written from the body."""
        if not is_token(self.method):
            raise LocalProtocolError(f"bad method {self.method!r}")
        return _serialize(f"{self.method} {self.uri} {_VERSION}", self.headers, self.body)


@dataclass(slots=True, eq=False)
class Response(_Fields):
    """A SIP response."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""

    def to_bytes(self) -> bytes:
        """The response on the wire; Content-Length is written from the body."""
        if not 100 <= self.status <= 699:
            raise LocalProtocolError(f"bad status code {self.status}")
        if not _REASON_RE.fullmatch(self.reason):
            raise LocalProtocolError(f"bad reason phrase {self.reason!r}")
        return _serialize(f"{_VERSION} {self.status} {self.reason}", self.headers, self.body)


Message = Request | Response


def parse_message(data: bytes) -> Message:
    """Parse one datagram's message; octets after the body that Content-Length bounds are ignored.

    Without Content-Length the rest of the datagram is the body.
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise RemoteProtocolError(f"message of {len(data)} octets is too large")
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        raise RemoteProtocolError("no empty line after the header fields")
    try:
        head = data[start:end].decode()
    except UnicodeDecodeError as err:
        raise RemoteProtocolError("header fields are not UTF-8") from err
    if "\r\n " in head or "\r\n\t" in head:
        head = _unfold(head)
    start_line, _, block = head.partition("\r\n")
    if block.count("\r\n") >= MAX_HEADERS:
        raise RemoteProtocolError(f"more than {MAX_HEADERS} header fields")
    headers = Headers.parse_block(block)
    body_start = end + 4
    content_length = _content_length(headers._lookup().get("content-length", []))
    if content_length is None:
        body = data[body_start:]
    else:
        body = data[body_start : body_start + content_length]
        if len(body) < content_length:
            raise RemoteProtocolError("body shorter than Content-Length")
    if start_line[:4].upper() == "SIP/":
        return _response(start_line, headers, body)
    return _request(start_line, headers, body)


class StreamFramer:
    """Cuts a TCP or TLS byte stream into whole messages (RFC 3261 §18.3).

    ``feed`` the octets as they arrive, split anywhere, then take the messages they complete
    with ``next_message`` until it returns None. A message ends Content-Length octets after
    the empty line that closes its header fields; Content-Length is read as
    :func:`parse_message` reads header fields: in any position, in any case, as ``l``, folded,
    with white space around the colon and the value. CRLFs before a start line are keep-alive
    pings (CRLF CRLF) and pongs (CRLF) of RFC 5626 §3.5.1, skipped and counted in
    :attr:`keepalives`.
    """

    __slots__ = ("_broken", "_buffer", "_max_message_size", "_scanned", "keepalives")

    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE) -> None:
        """Frame messages of up to ``max_message_size`` octets."""
        self._max_message_size = max_message_size
        self._buffer = bytearray()
        self._scanned = 0
        self._broken: RemoteProtocolError | None = None
        self.keepalives = 0

    def feed(self, data: bytes) -> None:
        """Take more of the stream."""
        self._buffer += data

    def next_message(self) -> bytes | None:
        """The next whole message, or None until more of the stream is fed.

        Raises RemoteProtocolError when the stream cannot be framed (no Content-Length, an
        unreadable or conflicting one, a message over the size limit), and again on every
        later call: where the next message would start is unknown from then on.
        """
        if self._broken is not None:
            raise self._broken
        buffer = self._buffer
        while buffer.startswith(b"\r\n"):
            del buffer[: 4 if buffer.startswith(b"\r\n\r\n") else 2]
            self.keepalives += 1
        if not buffer or buffer == b"\r":
            return None
        try:
            size = self._next_size()
        except RemoteProtocolError as err:
            self._broken = err
            raise
        if size is None or len(buffer) < size:
            return None
        message = bytes(buffer[:size])
        del buffer[:size]
        self._scanned = 0
        return message

    def _next_size(self) -> int | None:
        """The size of the message the buffer starts with, or None while its head is partial."""
        buffer = self._buffer
        # A new search starts 3 octets back: the end of the last chunk may begin CRLFCRLF.
        end = buffer.find(b"\r\n\r\n", max(self._scanned - 3, 0))
        if end < 0:
            if len(buffer) > self._max_message_size:
                raise RemoteProtocolError("header fields larger than the message limit")
            self._scanned = len(buffer)
            return None
        self._scanned = end
        content_length = _framing_length(bytes(buffer[:end]).decode("latin-1"))
        if content_length is None:
            raise RemoteProtocolError("no Content-Length on a stream")
        size = end + 4 + content_length
        if size > self._max_message_size:
            raise RemoteProtocolError(f"message of {size} octets is too large")
        return size


def _framing_length(head: str) -> int | None:
    """The Content-Length of a message head (start line and header lines), or None."""
    if "\r\n " in head or "\r\n\t" in head:
        head = _unfold(head)
    values = []
    for line in head.split("\r\n")[1:]:
        name, colon, value = line.partition(":")
        if colon and header_key(name.rstrip(WSP)) == "content-length":
            values.append(value.strip(WSP))
    return _content_length(values)


def _unfold(head: str) -> str:
    # A line starting with white space continues the one before (RFC 3261 §7.3.1); the fold
    # and the white space on both sides of it become one space. Splitting at the folds only
    # is several times cheaper than a substitution that tries every position.
    parts = _CONTINUATION_RE.split(head)
    return " ".join([part.rstrip(WSP) for part in parts[:-1]] + parts[-1:])


def _content_length(values: list[str]) -> int | None:
    if not values:
        return None
    if values.count(values[0]) != len(values):
        # RFC 4475 §3.3.9: conflicting values leave the framing unknown.
        raise RemoteProtocolError("conflicting Content-Length values")
    length = parse_uint(values[0])
    if length > MAX_MESSAGE_SIZE:
        raise RemoteProtocolError(f"Content-Length {length} is too large")
    return length


def _request(line: str, headers: Headers, body: bytes) -> Request:
    parts = line.split(" ")
    if len(parts) != 3 or parts[2].upper() != _VERSION:
        raise RemoteProtocolError(f"bad request line {line!r}")
    method, uri_text, _ = parts
    if not is_token(method):
        raise RemoteProtocolError(f"bad method {method!r}")
    uri = parse_uri(uri_text)
    if isinstance(uri, SipUri) and uri.headers:
        # RFC 3261 §19.1.1: headers are not allowed in a Request-URI.
        raise RemoteProtocolError(f"Request-URI with headers: {uri_text!r}")
    values = headers._lookup().get("cseq", [])
    if not values:
        raise RemoteProtocolError("request without CSeq")
    for value in values:
        cseq = parse_cseq(value)
        if cseq.method != method:
            raise RemoteProtocolError(f"CSeq method differs from request method {method!r}")
    if len(values) == 1:
        headers._typed["cseq"] = cseq  # already parsed: the cseq property need not do it again
    return Request(method, uri, headers, body)


def _response(line: str, headers: Headers, body: bytes) -> Response:
    match = _STATUS_LINE_RE.fullmatch(line)
    if match is None:
        raise RemoteProtocolError(f"bad status line {line!r}")
    return Response(int(match.group(1)), match.group(2), headers, body)


def _serialize(start_line: str, headers: Headers, body: bytes) -> bytes:
    lines = [start_line]
    lines += headers.lines(without="Content-Length")
    lines.append(f"Content-Length: {len(body)}\r\n\r\n")
    return "\r\n".join(lines).encode() + body
