"""Parsing untrusted XML with the standard library's expat, refusing what could hurt.

Presence servers, PBXs and users hand us XML we cannot trust. Every document of this package is
read through :func:`parse_xml`, which

- refuses a document larger than ``max_bytes`` before expat sees a byte;
- refuses any DOCTYPE, so no entity can be declared: no entity expansion ("billion laughs"),
  no external entity (XXE), no DTD fetched from anywhere;
- refuses elements nested deeper than ``max_depth``;
- turns every other fault (malformed or truncated XML, invalid UTF-8, an unbound prefix) into
  :class:`DocumentError`.

Element and attribute names come back in Clark notation (``{namespace}local``), so the prefix a
sender picked never matters. Each call builds its own parser: the functions are thread-safe.
"""

from __future__ import annotations

from enum import Enum
import xml.etree.ElementTree as ET
from xml.parsers import expat

from ..errors import RemoteProtocolError

DEFAULT_MAX_BYTES = 64 * 1024
"""The largest document accepted unless a caller asks otherwise."""
DEFAULT_MAX_DEPTH = 32
"""The deepest element nesting accepted unless a caller asks otherwise."""
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
"""The ``xml:lang`` attribute in Clark notation."""


class DocumentError(RemoteProtocolError):
    """An XML document is malformed, hostile, too large or does not say what its format requires.

    The message names what is wrong; it never quotes a password.
    """


class _TreeReader:
    """Feeds expat's callbacks into an ElementTree builder while counting the depth."""

    __slots__ = ("_builder", "_depth", "_max_depth")

    def __init__(self, max_depth: int) -> None:
        self._builder = ET.TreeBuilder()
        self._depth = 0
        self._max_depth = max_depth

    def start(self, name: str, attributes: dict[str, str]) -> None:
        self._depth += 1
        if self._depth > self._max_depth:
            raise DocumentError(f"elements are nested deeper than {self._max_depth} levels")
        self._builder.start(_clark(name), {_clark(key): value for key, value in attributes.items()})

    def end(self, name: str) -> None:
        self._depth -= 1
        self._builder.end(_clark(name))

    def data(self, text: str) -> None:
        self._builder.data(text)

    def close(self) -> ET.Element:
        return self._builder.close()


def _refuse_doctype(name: str, *_: object) -> None:
    raise DocumentError(f"DOCTYPE declarations are refused (found <!DOCTYPE {name}>)")


def _clark(name: str) -> str:
    """``namespace}local`` as expat reports it -> ``{namespace}local``; a bare name stays."""
    return "{" + name if "}" in name else name


def parse_xml(
    data: bytes | str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> ET.Element:
    """Parse one XML document and return its root element.

    Bytes are decoded as the document declares (UTF-8 by default); a ``str`` is taken as it is
    and any encoding declaration in it is ignored. Raises :class:`DocumentError` for anything
    but a well-formed document within the limits.
    """
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as err:
            raise DocumentError(f"the text is not valid Unicode: {err.reason}") from err
        encoding: str | None = "utf-8"
    else:
        raw, encoding = data, None
    if len(raw) > max_bytes:
        raise DocumentError(f"the document has {len(raw)} bytes, more than the {max_bytes} allowed")
    if not raw.strip():
        raise DocumentError("the document is empty")
    reader = _TreeReader(max_depth)
    parser = expat.ParserCreate(encoding, namespace_separator="}")
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.data
    try:
        parser.Parse(raw, True)
    except expat.ExpatError as err:
        raise DocumentError(
            f"malformed XML: {expat.ErrorString(err.code)} at line {err.lineno}, "
            f"column {err.offset}"
        ) from err
    except (LookupError, ValueError) as err:
        # An unknown or multi-byte declared encoding fails in Python's codec lookup, not in expat.
        raise DocumentError(f"the document cannot be decoded: {err}") from err
    return reader.close()


def local_name(tag: str) -> str:
    """The name of an element or attribute without its namespace."""
    return tag.rpartition("}")[2]


def text_of(element: ET.Element) -> str:
    """The element's own text with surrounding white space removed."""
    return (element.text or "").strip()


def required(element: ET.Element, attribute: str, what: str) -> str:
    """The value of a required attribute; its absence is a :class:`DocumentError` naming it."""
    value = element.get(attribute)
    if value is None:
        raise DocumentError(f"{what} has no {attribute!r} attribute")
    return value


def enum_value[E: Enum](kind: type[E], raw: str, what: str) -> E:
    """The member of ``kind`` whose value is ``raw`` (compared in lower case), else an error."""
    try:
        return kind(raw.strip().lower())
    except ValueError:
        allowed = ", ".join(str(member.value) for member in kind)
        raise DocumentError(f"{what} is {raw!r}; expected one of {allowed}") from None


def non_negative_int(raw: str, what: str) -> int:
    """A decimal integer of at most 10 digits that is 0 or more, else a :class:`DocumentError`."""
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise DocumentError(f"{what} is {raw!r}; expected a non-negative integer")
    return int(text)
