"""The lexical grammar of SIP (RFC 3261 §25) in one place.

Every other module reads tokens, quoted strings, parameters and comma-separated lists through
these helpers, so the rules for quoting, escaping and white space live here only.
"""

from __future__ import annotations

import re

from .errors import RemoteProtocolError

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# LWS = [*WSP CRLF] 1*WSP ; after unfolding only spaces and tabs remain.
WSP = " \t"

Params = tuple[tuple[str, str | None], ...]
"""Ordered ``;name=value`` parameters; a value of None is a parameter without ``=``."""


def is_token(text: str) -> bool:
    """Whether ``text`` is a non-empty SIP token."""
    return _TOKEN_RE.fullmatch(text) is not None


def quote(value: str) -> str:
    """Return ``value`` as a quoted-string, escaping double quotes and backslashes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def token_or_quoted(value: str) -> str:
    """Return ``value`` bare when it is a token, else as a quoted-string."""
    return value if is_token(value) else quote(value)


def read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read the quoted-string that opens at ``text[start]``.

    Returns the unescaped content and the index just past the closing quote.
    """
    if start >= len(text) or text[start] != '"':
        raise RemoteProtocolError(f"expected a quoted string at {start} in {text!r}")
    chars: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == "\\":
            if index + 1 >= len(text):
                break
            chars.append(text[index + 1])
            index += 2
            continue
        if char == '"':
            return "".join(chars), index + 1
        chars.append(char)
        index += 1
    raise RemoteProtocolError(f"unterminated quoted string in {text!r}")


def unquote(value: str) -> str:
    """Strip the quotes and escapes of a quoted-string; a bare token is returned as it is."""
    value = value.strip(WSP)
    if value.startswith('"'):
        content, end = read_quoted(value, 0)
        if value[end:].strip(WSP):
            raise RemoteProtocolError(f"text after quoted string in {value!r}")
        return content
    return value


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split on ``separator`` where it is not inside a quoted string or ``<...>``.

    The parts keep their surrounding white space; an unterminated quote or bracket is an error.
    """
    parts: list[str] = []
    depth = 0
    index = 0
    part_start = 0
    while index < len(text):
        char = text[index]
        if char == '"':
            _, index = read_quoted(text, index)
            continue
        if char == "<":
            depth += 1
        elif char == ">":
            depth = max(depth - 1, 0)
        elif char == separator and depth == 0:
            parts.append(text[part_start:index])
            part_start = index + 1
        index += 1
    if depth:
        raise RemoteProtocolError(f"unbalanced '<' in {text!r}")
    parts.append(text[part_start:])
    return parts


def split_list(text: str) -> list[str]:
    """Split a comma-separated header value into its stripped, non-empty elements."""
    return [part.strip(WSP) for part in split_outside_quotes(text, ",") if part.strip(WSP)]


def parse_params(text: str, separator: str = ";") -> Params:
    """Parse ``name[=value]`` pairs separated by ``separator``; quoted values are unquoted.

    Names are lower-cased (parameter names are case-insensitive); values keep their case.
    """
    params: list[tuple[str, str | None]] = []
    for raw in split_outside_quotes(text, separator):
        item = raw.strip(WSP)
        if not item:
            continue
        name, equals, value = item.partition("=")
        name = name.strip(WSP)
        if not is_token(name):
            raise RemoteProtocolError(f"bad parameter name {name!r}")
        params.append((name.lower(), unquote(value) if equals else None))
    return tuple(params)


def param(params: Params, name: str) -> str | None:
    """The value of the first parameter called ``name`` (already lower-case), else None.

    A parameter present without a value reads as the empty string.
    """
    for key, value in params:
        if key == name:
            return "" if value is None else value
    return None


def format_params(params: Params, separator: str = ";") -> str:
    """Serialize parameters, each preceded by ``separator``; values that are not tokens are quoted.

    Values that are hosts (IPv6 references with ``[...]``, ``:``) are written bare as well.
    """
    out: list[str] = []
    for name, value in params:
        if value is None:
            out.append(f"{separator}{name}")
        elif is_token(value) or _HOSTISH_RE.fullmatch(value):
            out.append(f"{separator}{name}={value}")
        else:
            out.append(f"{separator}{name}={quote(value)}")
    return "".join(out)


_HOSTISH_RE = re.compile(r"\[?[0-9A-Fa-f:.]+\]?")
