"""SIP and other URIs (RFC 3261 §19.1, §25.1).

``sip:`` and ``sips:`` URIs are taken apart into user, password, host, port, parameters and
headers, with %-escapes decoded; any other scheme is kept as an opaque :class:`AbsoluteUri`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv6Address
import re
from typing import cast
from urllib.parse import quote

from .errors import RemoteProtocolError
from .grammar import Params, param

# The characters each part of a SIP URI may hold unescaped (RFC 3261 §25.1).
_UNRESERVED = "A-Za-z0-9\\-_.!~*'()"
_USER_CHARS = _UNRESERVED + "&=+$,;?/%"
_PASSWORD_CHARS = _UNRESERVED + "&=+$,%"
_PARAM_CHARS = _UNRESERVED + "\\[\\]/:&+$%"
_HEADER_CHARS = _UNRESERVED + "\\[\\]/?:+$%"
# Letters and digits, hyphens only inside; written so that matching never backtracks.
_LABEL = "[A-Za-z0-9]+(?:-+[A-Za-z0-9]+)*"

_HOST_PART = (
    f"(?:(?P<host>{_LABEL}(?:\\.{_LABEL})*\\.?)|\\[(?P<ipv6>[0-9A-Fa-f:.]+)\\])"
    "(?::(?P<port>[0-9]{1,5}))?"
    f"(?P<params>(?:;[{_PARAM_CHARS}=]*)*)"
    f"(?:\\?(?P<headers>[{_HEADER_CHARS}=&]*))?"
)
# No part but userinfo may hold "@", so its presence tells which of the two applies; an
# optional userinfo group would make the engine try, and undo, a user part in every host.
_SIP_URI_RE = re.compile(
    f"(?P<user>[{_USER_CHARS}]+)(?::(?P<password>[{_PASSWORD_CHARS}]*))?@{_HOST_PART}"
)
_SIP_HOST_URI_RE = re.compile(_HOST_PART)
_SIP_SCHEMES = frozenset(("sip", "sips"))
_SCHEME_RE = re.compile("[A-Za-z][A-Za-z0-9+\\-.]*")
# Whatever follows the scheme of a URI we do not interpret: visible characters, no brackets.
_OPAQUE_RE = re.compile('[^\\x00-\\x20\\x7f<>"]+')
_BAD_ESCAPE_RE = re.compile("%(?![0-9A-Fa-f]{2})")
# The octet of every two hex digits that may follow "%", each digit in either case.
_OCTETS = {
    (high + low).encode(): bytes((int(high + low, 16),))
    for high in "0123456789abcdefABCDEF"
    for low in "0123456789abcdefABCDEF"
}

# What quote() may leave bare in each part, beyond letters, digits and "_.-~".
_USER_SAFE = "!*'()&=+$,;?/"
_PASSWORD_SAFE = "!*'()&=+$,"  # noqa: S105 - characters, not a secret
_PARAM_SAFE = "!*'()[]/:&+$"
_HEADER_SAFE = "!*'()[]/?:+$"
# Letters, digits and marks need no escape in any part: most text is written as it is.
_PLAIN_RE = re.compile(f"[{_UNRESERVED}]*")


@dataclass(frozen=True, slots=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI; user, password and parameters hold decoded text."""

    scheme: str
    host: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        """The value of URI parameter ``name`` ("" when it has none), or None when absent."""
        return param(self.params, name.lower())

    @property
    def host_port(self) -> str:
        """``host[:port]``, an IPv6 host in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(_escape(self.user, _USER_SAFE))
            if self.password is not None:
                parts += [":", _escape(self.password, _PASSWORD_SAFE)]
            parts.append("@")
        parts.append(self.host_port)
        for name, value in self.params:
            parts += [";", _escape(name, _PARAM_SAFE)]
            if value is not None:
                parts += ["=", _escape(value, _PARAM_SAFE)]
        for index, (name, value) in enumerate(self.headers):
            parts += ["&" if index else "?", _escape(name, _HEADER_SAFE), "="]
            parts.append(_escape(value, _HEADER_SAFE))
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """A URI of any scheme but sip/sips (tel:, http:, unknown ones), kept as text."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    """Parse a URI; raises RemoteProtocolError when it is not one."""
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if scheme in _SIP_SCHEMES and colon:
        return _parse_sip(scheme, rest, text)
    if not colon or not _SCHEME_RE.fullmatch(scheme):
        raise RemoteProtocolError(f"not a URI: {text!r}")
    if not _OPAQUE_RE.fullmatch(rest):
        raise RemoteProtocolError(f"bad {scheme} URI: {text!r}")
    return AbsoluteUri(scheme, rest)


def parse_sip_uri(text: str) -> SipUri:
    """Parse a ``sip:`` or ``sips:`` URI; any other scheme is a RemoteProtocolError."""
    uri = parse_uri(text)
    if not isinstance(uri, SipUri):
        raise RemoteProtocolError(f"not a SIP URI: {text!r}")
    return uri


class _SipUriDraft:
    # The frozen constructor of SipUri sets each field through object.__setattr__, which costs
    # three times as much as plain slot stores; the parser fills this twin of the same slots
    # and then makes it a SipUri, equal in every way to one built by the constructor.
    __slots__ = SipUri.__slots__
    scheme: str
    host: str
    user: str | None
    password: str | None
    port: int | None
    params: Params
    headers: tuple[tuple[str, str], ...]


def _parse_sip(scheme: str, rest: str, text: str) -> SipUri:
    userinfo = "@" in rest
    match = (_SIP_URI_RE if userinfo else _SIP_HOST_URI_RE).fullmatch(rest)
    if match is None:
        raise RemoteProtocolError(f"bad SIP URI: {text!r}")
    if userinfo:
        user, password, host, ipv6, port_text, params_text, headers_text = match.groups()
    else:
        user = password = None
        host, ipv6, port_text, params_text, headers_text = match.groups()
    escaped = "%" in rest
    if escaped and _BAD_ESCAPE_RE.search(rest):
        raise RemoteProtocolError(f"bad %-escape in {text!r}")
    if ipv6 is not None:
        try:
            IPv6Address(ipv6)
        except ValueError:
            raise RemoteProtocolError(f"bad IPv6 reference in {text!r}") from None
        host = ipv6.lower()
    else:
        host = host.lower()
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise RemoteProtocolError(f"port out of range in {text!r}")
    if escaped:
        user = None if user is None else _unescape(user)
        password = None if password is None else _unescape(password)
    uri = _SipUriDraft()
    uri.scheme = scheme
    uri.host = host
    uri.user = user
    uri.password = password
    uri.port = port
    uri.params = _parse_uri_params(params_text, escaped) if params_text else ()
    uri.headers = _parse_uri_headers(headers_text) if headers_text is not None else ()
    uri.__class__ = SipUri  # type: ignore[assignment]
    return cast(SipUri, uri)


def _parse_uri_params(text: str, escaped: bool) -> Params:
    params: list[tuple[str, str | None]] = []
    for item in text[1:].split(";"):
        name, equals, value = item.partition("=")
        if not name or (equals and not value):
            raise RemoteProtocolError(f"bad URI parameter {item!r}")
        if escaped:
            name = _unescape(name)
            value = _unescape(value)
        params.append((name.lower(), value if equals else None))
    return tuple(params)


def _parse_uri_headers(text: str) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    for item in text.split("&"):
        name, equals, value = item.partition("=")
        if not name or not equals:
            raise RemoteProtocolError(f"bad URI header {item!r}")
        headers.append((_unescape(name), _unescape(value)))
    return tuple(headers)


def _unescape(text: str) -> str:
    # Escaped octets that are not UTF-8 survive as surrogates, so printing restores them.
    if "%" not in text:
        return text
    first, *escaped = text.encode("utf-8", "surrogateescape").split(b"%")
    octets = [first]
    for chunk in escaped:
        octet = _OCTETS.get(chunk[:2])
        if octet is None:
            raise RemoteProtocolError(f"bad %-escape in {text!r}")
        octets += (octet, chunk[2:])
    return b"".join(octets).decode("utf-8", "surrogateescape")


def _escape(text: str, safe: str) -> str:
    if _PLAIN_RE.fullmatch(text):
        return text
    return quote(text, safe=safe, errors="surrogateescape")
