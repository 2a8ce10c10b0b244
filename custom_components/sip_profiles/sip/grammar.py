"""The lexical grammar of SIP (RFC 3261 §25) in one place.

Every other module reads tokens, quoted strings, parameters and comma-separated lists through
these helpers, so the rules for quoting, escaping and white space live here only.
"""

from __future__ import annotations

import re

from .errors import RemoteProtocolError

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CLASS = r"[A-Za-z0-9\-.!%*_+`'~]"  # noqa: S105 - a character class, not a secret
"""The regular-expression character class of token characters."""
_TOKEN_RE = re.compile(TOKEN_CLASS + "+")
# quoted-string content: any character, a backslash escaping the one after it; written as
# runs of plain characters between escapes, which the engine reads faster than an alternation.
QUOTED_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
"""The pattern of a quoted-string, quotes included (match with DOTALL); see unescape_quoted."""
_QUOTED_RE = re.compile(QUOTED_STRING, re.DOTALL)
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)
# LWS = [*WSP CRLF] 1*WSP ; after unfolding only spaces and tabs remain.
WSP = " \t"

Params = tuple[tuple[str, str | None], ...]
"""Ordered ``;name=value`` parameters; a value of None is a parameter without ``=``."""


def is_token(text: str) -> bool:
    """Whether ``text`` is a non-empty SIP token."""
    # Most tokens (methods, branches, tags) are ASCII letters and digits alone, which two
    # string methods confirm for less than a regular-expression match costs.
    return (text.isascii() and text.isalnum()) or _TOKEN_RE.fullmatch(text) is not None


def quote(value: str) -> str:
    """Return ``value`` as a quoted-string, escaping double quotes and backslashes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read the quoted-string that opens at ``text[start]``.

    Returns the unescaped content and the index just past the closing quote.
    """
    if start >= len(text) or text[start] != '"':
        raise RemoteProtocolError(f"expected a quoted string at {start} in {text!r}")
    match = _QUOTED_RE.match(text, start)
    if match is None:
        raise RemoteProtocolError(f"unterminated quoted string in {text!r}")
    return unescape_quoted(match.group()), match.end()


def unescape_quoted(quoted: str) -> str:
    """The text a quoted-string (a match of QUOTED_STRING) stands for."""
    content = quoted[1:-1]
    if "\\" in content:
        return _QUOTED_PAIR_RE.sub(r"\1", content)
    return content


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
    if '"' not in text and "<" not in text:
        return text.split(separator)
    parts: list[str] = []
    depth = 0
    part_start = 0
    # Jump from one character that matters to the next instead of walking every character.
    special = re.compile('["<>' + re.escape(separator) + "]")
    match = special.search(text)
    while match is not None:
        index = match.start()
        char = text[index]
        if char == '"':
            _, index = read_quoted(text, index)
            match = special.search(text, index)
            continue
        if char == "<":
            depth += 1
        elif char == ">":
            depth = max(depth - 1, 0)
        elif depth == 0:
            parts.append(text[part_start:index])
            part_start = index + 1
        match = special.search(text, index + 1)
    if depth:
        raise RemoteProtocolError(f"unbalanced '<' in {text!r}")
    parts.append(text[part_start:])
    return parts


def split_list(text: str) -> list[str]:
    """Split a comma-separated header value into its stripped, non-empty elements."""
    return [part.strip(WSP) for part in split_outside_quotes(text, ",") if part.strip(WSP)]


def parse_params(text: str, separator: str = ";", *, strict: bool = False) -> Params:
    """Parse ``name[=value]`` pairs separated by ``separator``; quoted values are unquoted.

    Names are lower-cased (parameter names are case-insensitive); values keep their case.
    ``strict`` follows generic-param (RFC 3261 §25.1) to the letter: an empty parameter is an
    error, and a bare value must be a token or a host.
    """
    params: list[tuple[str, str | None]] = []
    if separator == ";" and _PLAIN_PARAMS_RE.fullmatch(text):
        # The usual case: no quotes, no white space; one match checks every name and value.
        for item in text.split(";"):
            name, equals, value = item.partition("=")
            params.append((name.lower(), value if equals else None))
        return tuple(params)
    for raw in split_outside_quotes(text, separator):
        simple = _SIMPLE_PARAM_RE.fullmatch(raw)
        if simple is not None:
            name, value = simple.groups()
            params.append((name.lower(), value))
            continue
        item = raw.strip(WSP)
        if not item:
            if strict:
                raise RemoteProtocolError(f"empty parameter in {text!r}")
            continue
        name, equals, value = item.partition("=")
        name = name.strip(WSP)
        if not is_token(name):
            raise RemoteProtocolError(f"bad parameter name {name!r}")
        if strict and equals:
            value = value.strip(WSP)
            if not value.startswith('"') and not (is_token(value) or _HOSTISH_RE.fullmatch(value)):
                raise RemoteProtocolError(f"bad value of parameter {name!r}")
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
# The usual parameter, ``name`` or ``name=token-or-host``, read in one step.
_SIMPLE_PARAM_RE = re.compile(
    f"[ \t]*({TOKEN_CLASS}+)[ \t]*(?:=[ \t]*({TOKEN_CLASS}+|{_HOSTISH_RE.pattern})[ \t]*)?"
)
_PLAIN_PARAM = f"{TOKEN_CLASS}+(?:=(?:{TOKEN_CLASS}+|{_HOSTISH_RE.pattern}))?"
_PLAIN_PARAMS_RE = re.compile(f"{_PLAIN_PARAM}(?:;{_PLAIN_PARAM})*")
