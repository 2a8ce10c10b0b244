"""SIP header fields: the ordered multimap of a message and the typed values of its fields.

Header values are kept as text; the ``parse_*`` functions turn one value into a frozen typed
value and raise RemoteProtocolError when it is malformed (RFC 3261 §20, §25).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
import re
from typing import Final, Literal, cast

from .errors import LocalProtocolError, RemoteProtocolError
from .grammar import (
    TOKEN_CLASS,
    WSP,
    Params,
    format_params,
    is_token,
    param,
    parse_params,
    quote,
    read_quoted,
    split_list,
)
from .uri import Uri, parse_uri

STAR: Final = "*"
"""The value of ``Contact: *`` (remove every binding)."""

_COMPACT_FORMS: Final = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}
_CANONICAL_NAMES: Final = {
    name.lower(): name
    for name in (
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Authentication-Info",
        "Authorization",
        "Call-ID",
        "Call-Info",
        "Contact",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Date",
        "Error-Info",
        "Event",
        "Expires",
        "From",
        "Identity",
        "In-Reply-To",
        "Max-Forwards",
        "MIME-Version",
        "Min-Expires",
        "Min-SE",
        "Organization",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Path",
        "Priority",
        "Privacy",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "RAck",
        "Reason",
        "Record-Route",
        "Refer-To",
        "Referred-By",
        "Reject-Contact",
        "Reply-To",
        "Request-Disposition",
        "Require",
        "Retry-After",
        "Route",
        "RSeq",
        "Server",
        "Service-Route",
        "Session-Expires",
        "SIP-ETag",
        "SIP-If-Match",
        "Subject",
        "Subscription-State",
        "Supported",
        "Timestamp",
        "To",
        "Unsupported",
        "User-Agent",
        "Via",
        "Warning",
        "WWW-Authenticate",
    )
}
_CANONICAL_NAMES.update({short: _CANONICAL_NAMES[full] for short, full in _COMPACT_FORMS.items()})

# The lookup key of every known name, compact forms included ("v" and "via" -> "via").
_KNOWN_KEYS: Final = {name: _COMPACT_FORMS.get(name, name) for name in _CANONICAL_NAMES}
# The same keys under the spellings seen on the wire, so most names need no lower-casing.
_KEYS_BY_SPELLING: Final = {
    spelling: key
    for name, key in _KNOWN_KEYS.items()
    for spelling in (name, name.upper(), name.title(), _CANONICAL_NAMES[name])
}
_UINT_MAX: Final = 2**32 - 1
_CSEQ_MAX: Final = 2**31 - 1
_CSEQ_RE = re.compile(f"[ \t]*([0-9]{{1,10}})[ \t]+({TOKEN_CLASS}+)[ \t]*")
# Labels of letters and digits, hyphens only inside; written so that matching never backtracks.
_LABEL = "[A-Za-z0-9]+(?:-+[A-Za-z0-9]+)*"
# Spelled-out letter cases instead of IGNORECASE, which slows every character class down.
_VIA_RE = re.compile(
    f"[ \t]*[Ss][Ii][Pp][ \t]*/[ \t]*2\\.0[ \t]*/[ \t]*({TOKEN_CLASS}+)[ \t]+"
    f"(\\[[0-9A-Fa-f:.]+\\]|{_LABEL}(?:\\.{_LABEL})*\\.?)"
    "(?:[ \t]*:[ \t]*([0-9]{1,5}))?[ \t]*(?:;(.*))?",
    re.DOTALL,
)
# Tokens and the white space between them: the token class with space and tab added.
_DISPLAY_TOKENS_RE = re.compile(f"{TOKEN_CLASS[:-1]} \t]*")
_MEDIA_RE = re.compile("[ \t]*([^ \t/;]+)[ \t]*/[ \t]*([^ \t;]+)[ \t]*(?:;(.*))?", re.DOTALL)
_RETRY_AFTER_RE = re.compile("[ \t]*([0-9]{1,10})[ \t]*(\\(.*\\))?[ \t]*(?:;(.*))?", re.DOTALL)


def canonical_name(name: str) -> str:
    """The usual spelling of a header name: compact forms expanded; unknown names as given."""
    return _CANONICAL_NAMES.get(name.lower(), name)


def header_key(name: str) -> str:
    """The lookup key of a header name: lower-cased, compact forms expanded."""
    key = _KEYS_BY_SPELLING.get(name)
    if key is None:
        key = name.lower()
        key = _COMPACT_FORMS.get(key, key)
    return key


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A name-addr or addr-spec with header parameters (From, To, Contact, Route...)."""

    uri: Uri
    display_name: str | None = None
    params: Params = ()

    def param(self, name: str) -> str | None:
        """The value of header parameter ``name`` ("" when it has none), or None when absent."""
        return param(self.params, name.lower())

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (From and To)."""
        return param(self.params, "tag")

    def __str__(self) -> str:
        uri = f"<{self.uri}>{format_params(self.params)}"
        if self.display_name is None:
            return uri
        words = self.display_name.split(" ")
        if all(is_token(word) for word in words):
            return f"{self.display_name} {uri}"
        return f"{quote(self.display_name)} {uri}"


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: the transport and address a response goes back to."""

    transport: str
    host: str
    port: int | None
    params: Params = ()

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter: the transaction identifier."""
        return param(self.params, "branch")

    @property
    def received(self) -> str | None:
        """The ``received`` parameter: the source address the next hop saw."""
        return param(self.params, "received")

    @property
    def rport(self) -> int | None:
        """The ``rport`` port number (RFC 3581); None when absent or empty."""
        value = param(self.params, "rport")
        if not value:
            return None
        if not _is_uint_text(value) or int(value) > 65535:
            raise RemoteProtocolError(f"bad rport {value!r}")
        return int(value)

    @property
    def host_port(self) -> str:
        """``host[:port]``, an IPv6 host in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {self.host_port}{format_params(self.params)}"


# The frozen constructors set each field through object.__setattr__, which costs several
# times as much as plain slot stores; the parsers fill these twins of the same slots and then
# make them NameAddr and Via values, equal in every way to those the constructors build.
class _NameAddrDraft:
    __slots__ = NameAddr.__slots__
    uri: Uri
    display_name: str | None
    params: Params


class _ViaDraft:
    __slots__ = Via.__slots__
    transport: str
    host: str
    port: int | None
    params: Params


def _name_addr(uri: Uri, display_name: str | None, params: Params) -> NameAddr:
    value = _NameAddrDraft()
    value.uri = uri
    value.display_name = display_name
    value.params = params
    value.__class__ = NameAddr  # type: ignore[assignment]
    return cast(NameAddr, value)


def _via(transport: str, host: str, port: int | None, params: Params) -> Via:
    value = _ViaDraft()
    value.transport = transport
    value.host = host
    value.port = port
    value.params = params
    value.__class__ = Via  # type: ignore[assignment]
    return cast(Via, value)


@dataclass(frozen=True, slots=True)
class CSeq:
    """The CSeq value: sequence number and method of a request."""

    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    """A Subscription-State value (RFC 6665 §8.2.3); the state is lower-case."""

    state: str
    expires: int | None
    reason: str | None
    retry_after: int | None
    params: Params


@dataclass(frozen=True, slots=True)
class EventHeader:
    """An Event value (RFC 6665 §8.2.1): event package and optional ``id``."""

    package: str
    id: str | None
    params: Params


@dataclass(frozen=True, slots=True)
class ContentType:
    """A Content-Type value; type and subtype are lower-case."""

    type: str
    subtype: str
    params: Params

    @property
    def mime(self) -> str:
        """``type/subtype``, e.g. ``application/pidf+xml``."""
        return f"{self.type}/{self.subtype}"


def elements_of(value: str) -> list[str]:
    """The comma-separated elements of one field value (see grammar.split_list)."""
    if "," not in value:
        # Nothing to split: quotes and brackets are checked by whoever parses the element.
        value = value.strip(WSP)
        return [value] if value else []
    return split_list(value)


def parse_name_addr(text: str) -> NameAddr:
    """Parse a name-addr (``"Name" <uri>;params``) or addr-spec (``uri;params``)."""
    text = text.strip(WSP)
    display: str | None
    if text.startswith('"'):
        display, end = read_quoted(text, 0)
        lt = len(text) - len(text[end:].lstrip(WSP))
        if not text.startswith("<", lt):
            raise RemoteProtocolError(f"expected '<' after display name in {text!r}")
    else:
        lt = _DISPLAY_TOKENS_RE.match(text).end()  # type: ignore[union-attr]  # matches ""
        if not text.startswith("<", lt):
            return _parse_addr_spec(text)
        display = " ".join(text[:lt].split())
    gt = text.find(">", lt)
    if gt < 0:
        raise RemoteProtocolError(f"unterminated '<' in {text!r}")
    uri = parse_uri(text[lt + 1 : gt])
    return _name_addr(uri, display or None, _header_params(text[gt + 1 :], text))


def _parse_addr_spec(text: str) -> NameAddr:
    # Without <>, the URI ends at the first ';' or white space and cannot carry ?headers
    # (RFC 3261 §20.10): what follows are header parameters.
    end = len(text)
    for separator in "; \t":
        found = text.find(separator)
        if 0 <= found < end:
            end = found
    uri_text = text[:end]
    if "?" in uri_text:
        raise RemoteProtocolError(f"URI with '?' must be enclosed in <>: {text!r}")
    return _name_addr(parse_uri(uri_text), None, _header_params(text[end:], text))


def _header_params(rest: str, text: str) -> Params:
    rest = rest.lstrip(WSP)
    if not rest:
        return ()
    if not rest.startswith(";"):
        raise RemoteProtocolError(f"unexpected text after address in {text!r}")
    return parse_params(rest[1:], strict=True)


def parse_contacts(values: list[str]) -> list[NameAddr] | Literal["*"]:
    """Parse the Contact field values: a list of addresses, or ``*`` alone."""
    elements = [element for value in values for element in elements_of(value)]
    if STAR in elements:
        if len(elements) != 1:
            raise RemoteProtocolError("Contact '*' mixed with other contacts")
        return STAR
    return [parse_name_addr(element) for element in elements]


def parse_via(text: str) -> Via:
    """Parse one Via value (``SIP/2.0/UDP host:port;params``)."""
    match = _VIA_RE.fullmatch(text)
    if match is None:
        raise RemoteProtocolError(f"bad Via {text!r}")
    transport, host, port_text, params_text = match.groups()
    if host.startswith("["):
        host = host[1:-1]
        if ":" not in host:
            raise RemoteProtocolError(f"bad Via host {text!r}")
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise RemoteProtocolError(f"Via port out of range in {text!r}")
    params = () if params_text is None else parse_params(params_text, strict=True)
    return _via(transport.upper(), host.lower(), port, params)


def parse_cseq(text: str) -> CSeq:
    """Parse a CSeq value (``number METHOD``, the number below 2**31)."""
    match = _CSEQ_RE.fullmatch(text)
    if match is None:
        raise RemoteProtocolError(f"bad CSeq {text!r}")
    number = int(match.group(1))
    if number > _CSEQ_MAX:
        raise RemoteProtocolError(f"CSeq number too large in {text!r}")
    return CSeq(number, match.group(2))


def parse_uint(text: str) -> int:
    """Parse a decimal 0..2**32-1 (Expires, Min-Expires, Content-Length, Max-Forwards)."""
    digits = text.strip(WSP)
    if not _is_uint_text(digits):
        raise RemoteProtocolError(f"bad number {text!r}")
    number = int(digits)
    if number > _UINT_MAX:
        raise RemoteProtocolError(f"number too large: {text!r}")
    return number


def _is_uint_text(text: str) -> bool:
    """Whether ``text`` is 1 to 10 ASCII digits (str.isdigit alone takes other scripts' too)."""
    return text.isascii() and text.isdigit() and len(text) <= 10


def parse_retry_after(text: str) -> int:
    """Parse a Retry-After value into seconds; a comment and parameters may follow."""
    match = _RETRY_AFTER_RE.fullmatch(text)
    if match is None:
        raise RemoteProtocolError(f"bad Retry-After {text!r}")
    if match.group(3) is not None:
        parse_params(match.group(3), strict=True)
    return parse_uint(match.group(1))


def parse_subscription_state(text: str) -> SubscriptionState:
    """Parse a Subscription-State value (``active;expires=600``)."""
    state, params = _token_and_params(text)
    expires = param(params, "expires")
    retry_after = param(params, "retry-after")
    return SubscriptionState(
        state.lower(),
        None if expires is None else parse_uint(expires),
        param(params, "reason"),
        None if retry_after is None else parse_uint(retry_after),
        params,
    )


def parse_event(text: str) -> EventHeader:
    """Parse an Event value (``presence;id=7``)."""
    package, params = _token_and_params(text)
    return EventHeader(package, param(params, "id"), params)


def parse_content_type(text: str) -> ContentType:
    """Parse a Content-Type value (``application/pidf+xml;charset=utf-8``)."""
    match = _MEDIA_RE.fullmatch(text)
    if match is None or not is_token(match.group(1)) or not is_token(match.group(2)):
        raise RemoteProtocolError(f"bad Content-Type {text!r}")
    params_text = match.group(3)
    params = () if params_text is None else parse_params(params_text, strict=True)
    return ContentType(match.group(1).lower(), match.group(2).lower(), params)


def _token_and_params(text: str) -> tuple[str, Params]:
    value, semicolon, params_text = text.partition(";")
    value = value.strip(WSP)
    if not is_token(value):
        raise RemoteProtocolError(f"expected a token in {text!r}")
    return value, parse_params(params_text, strict=True) if semicolon else ()


class Headers:
    """The header fields of a message: ordered, names case-insensitive, compact forms expanded.

    Names are compared case-insensitively and read back in their canonical spelling; values are
    text without surrounding white space. Typed values parsed from the fields are cached until
    the fields change.
    """

    __slots__ = ("_fields", "_index", "_typed")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        """Hold the ``(name, value)`` fields in order."""
        self._fields = [_checked_field(name, value) for name, value in items]
        self._index: dict[str, list[str]] | None = None
        self._typed: dict[str, object] = {}

    def get(self, name: str) -> str | None:
        """The value of the first field called ``name``, or None."""
        values = self._lookup().get(header_key(name))
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """The value of every field called ``name``, in order (not split at commas)."""
        return list(self._lookup().get(header_key(name), ()))

    def get_list(self, name: str) -> list[str]:
        """Every element of the fields called ``name``, split at commas outside quotes and <>."""
        return [
            element
            for value in self._lookup().get(header_key(name), ())
            for element in elements_of(value)
        ]

    def add(self, name: str, value: str) -> None:
        """Append a field."""
        self._fields.append(_checked_field(name, value))
        self._changed()

    def set(self, name: str, value: str) -> None:
        """Replace every field called ``name`` by one, where the first of them was (else last)."""
        field = _checked_field(name, value)
        keys = [key for key, _, _ in self._fields]
        at = keys.index(field[0]) if field[0] in keys else len(keys)
        self._fields = [existing for existing in self._fields if existing[0] != field[0]]
        self._fields.insert(at, field)
        self._changed()

    def remove(self, name: str) -> None:
        """Remove every field called ``name`` (nothing happens when there is none)."""
        key = header_key(name)
        self._fields = [field for field in self._fields if field[0] != key]
        self._changed()

    def _framed(
        self, before: Iterable[tuple[str, str]], after: Iterable[tuple[str, str]]
    ) -> Headers:
        """A copy with the ``before`` fields put first and the ``after`` fields last.

        Only the new fields are checked: those already held passed the check on the way in.
        """
        framed = Headers()
        framed._fields = [
            *(_checked_field(name, value) for name, value in before),
            *self._fields,
            *(_checked_field(name, value) for name, value in after),
        ]
        return framed

    def typed[T](self, name: str, parse: Callable[[Headers], T]) -> T:
        """``parse(self)``, remembered under ``name`` until a field changes."""
        if name in self._typed:
            return cast(T, self._typed[name])
        value = parse(self)
        self._typed[name] = value
        return value

    def __contains__(self, name: object) -> bool:
        """Whether a field called ``name`` is present."""
        return isinstance(name, str) and header_key(name) in self._lookup()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """The ``(name, value)`` fields in order, names in their usual spelling."""
        # The lookup key names the same header as the spelling, without lower-casing it again.
        names = _CANONICAL_NAMES
        return ((names.get(key, name), value) for key, name, value in self._fields)

    def lines(self, without: str) -> list[str]:
        """Each field as a ``Name: value`` line, in order, except those called ``without``."""
        omitted = header_key(without)
        names = _CANONICAL_NAMES
        return [
            f"{names.get(key, name)}: {value}"
            for key, name, value in self._fields
            if key != omitted
        ]

    def __len__(self) -> int:
        """The number of fields."""
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        """Equal when the same fields appear in the same order (names compared by key)."""
        if not isinstance(other, Headers):
            return NotImplemented
        return [(key, value) for key, _, value in self._fields] == [
            (key, value) for key, _, value in other._fields
        ]

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        """The field names only: values may hold credentials."""
        return f"Headers({[canonical_name(name) for _, name, _ in self._fields]!r})"

    def _lookup(self) -> dict[str, list[str]]:
        if self._index is None:
            index: dict[str, list[str]] = {}
            for key, _, value in self._fields:
                # [value], not setdefault(key, []).append(value): a list grown from empty keeps
                # room for four, and the index of every message a transaction holds adds up.
                values = index.get(key)
                if values is None:
                    index[key] = [value]
                else:
                    values.append(value)
            self._index = index
        return self._index

    def _changed(self) -> None:
        self._index = None
        self._typed.clear()

    @classmethod
    def parse_block(cls, block: str) -> Headers:
        """Headers from the unfolded header lines of a received message (CRLF between lines).

        Raises RemoteProtocolError when a line is not ``token [WSP] ":" value``.
        """
        headers = cls()
        if not block:
            headers._index = {}
            return headers
        lines = block.split("\r\n")
        if block.count("\r") != len(lines) - 1 or block.count("\n") != len(lines) - 1:
            raise RemoteProtocolError("bare CR or LF in the header fields")
        fields = headers._fields
        index: dict[str, list[str]] = {}
        known_keys = _KEYS_BY_SPELLING
        for line in lines:
            name, colon, value = line.partition(":")
            key = known_keys.get(name)
            if key is None:
                name = name.rstrip(WSP)
                if not is_token(name):
                    raise RemoteProtocolError(f"bad header line {line!r}")
                key = header_key(name)
            if not colon:
                raise RemoteProtocolError(f"bad header line {line!r}")
            value = value.strip(WSP)
            fields.append((key, name, value))
            values = index.get(key)
            if values is None:
                index[key] = [value]
            else:
                values.append(value)
        headers._index = index
        return headers


def _checked_field(name: str, value: str) -> tuple[str, str, str]:
    # Every value is checked for line breaks, whoever built it, so that no caller's text can
    # inject a header; only a name spelled as a known header skips the token match.
    key = _KEYS_BY_SPELLING.get(name)
    if key is None:
        if not is_token(name):
            raise LocalProtocolError(f"bad header name {name!r}")
        key = header_key(name)
    if "\r" in value or "\n" in value:
        raise LocalProtocolError(f"line break in the value of header {name!r}")
    return key, name, value.strip(WSP)
