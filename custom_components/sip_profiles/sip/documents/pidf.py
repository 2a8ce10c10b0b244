"""Presence documents: PIDF (RFC 3863) with the data model (RFC 4479) and RPID (RFC 4480).

:func:`parse_pidf` reads what presence servers send; :func:`build_pidf` writes what we PUBLISH.
Elements are recognised by namespace, never by prefix. Persons are read from the data-model
namespace and from the namespaces older RPID drafts used (``<rpid:person>``, and Asterisk's
``<pp:person>`` with ``<ep:activities>`` inside a ``<status>``).

:func:`summarize` reduces a document to one :class:`PresenceState`, by these rules, in order:

1. No document (for example a NOTIFY without a body) -> ``unknown``.
2. A document without tuples -> ``unknown``: RFC 3863 carries presence in tuples, so such a
   document says nothing about reachability, whatever its persons say.
3. No tuple says ``<basic>open</basic>`` or ``closed`` -> ``unknown``.
4. An ``on-the-phone`` activity -> ``on_the_phone``, even when no tuple is open: a phone that is
   in a call is there (Asterisk reports a busy device as closed and on the phone).
5. Do not disturb -> ``do_not_disturb``, even when no tuple is open. There is no RPID activity
   for it; phones and servers write it either as ``<rpid:other>`` whose text is "dnd" or
   "do not disturb" (any case, spaces or hyphens), or as the ``busy`` activity with a note (of
   the document, a person or a tuple) saying the same. A note alone changes nothing.
6. No open tuple -> ``offline``; the remaining activities describe someone who cannot be reached.
7. An open tuple and a busy activity (``busy``, ``performance``, ``presentation``) -> ``busy``.
8. An open tuple and an away activity (``away``, ``appointment``, ``breakfast``, ``dinner``,
   ``holiday``, ``in-transit``, ``looking-for-work``, ``meal``, ``meeting``,
   ``permanent-absence``, ``playing``, ``shopping``, ``sleeping``, ``spectator``, ``steering``,
   ``travel``, ``vacation``, ``worship``) -> ``away``.
9. Otherwise (no activity, ``unknown``, ``working``, ``tv``, other text) -> ``online``.

Activities are those of every person of the document together.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
import re
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape, quoteattr

from ..errors import LocalProtocolError
from ._xml import (
    DEFAULT_MAX_BYTES,
    XML_LANG,
    DocumentError,
    enum_value,
    local_name,
    parse_xml,
    required,
    text_of,
)

PIDF_NAMESPACE = "urn:ietf:params:xml:ns:pidf"
DATA_MODEL_NAMESPACE = "urn:ietf:params:xml:ns:pidf:data-model"
RPID_NAMESPACE = "urn:ietf:params:xml:ns:pidf:rpid"
_LEGACY_PERSON_NAMESPACE = "urn:ietf:params:xml:ns:pidf:person"
_LEGACY_RPID_PERSON_NAMESPACE = "urn:ietf:params:xml:ns:pidf:rpid:rpid-person"

_PERSON_TAGS = frozenset(
    f"{{{namespace}}}person"
    for namespace in (DATA_MODEL_NAMESPACE, RPID_NAMESPACE, _LEGACY_PERSON_NAMESPACE)
)
_ACTIVITIES_TAGS = frozenset(
    f"{{{namespace}}}activities" for namespace in (RPID_NAMESPACE, _LEGACY_RPID_PERSON_NAMESPACE)
)
_TIMESTAMP_TAGS = frozenset(
    f"{{{namespace}}}timestamp" for namespace in (PIDF_NAMESPACE, DATA_MODEL_NAMESPACE)
)

RPID_ACTIVITIES = frozenset(
    (
        "appointment", "away", "breakfast", "busy", "dinner", "holiday", "in-transit",
        "looking-for-work", "meal", "meeting", "on-the-phone", "performance",
        "permanent-absence", "playing", "presentation", "shopping", "sleeping", "spectator",
        "steering", "travel", "tv", "unknown", "vacation", "working", "worship",
    )
)  # fmt: skip
"""The activity names of RFC 4480 §3.2 (``other`` carries free text instead)."""
_BUSY_ACTIVITIES = frozenset(("busy", "performance", "presentation"))
_AWAY_ACTIVITIES = frozenset(
    (
        "away", "appointment", "breakfast", "dinner", "holiday", "in-transit",
        "looking-for-work", "meal", "meeting", "permanent-absence", "playing", "shopping",
        "sleeping", "spectator", "steering", "travel", "vacation", "worship",
    )
)  # fmt: skip
_DO_NOT_DISTURB_PHRASES = frozenset(("dnd", "donotdisturb"))
_DO_NOT_DISTURB_TEXT = "Do Not Disturb"

# RFC 3863 §4.1.5: a priority is a qvalue, 0 to 1 with at most three decimals.
_PRIORITY_RE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")
_XML_ID_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_NOT_XML_CHAR_RE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class BasicStatus(StrEnum):
    """The ``<basic>`` status of a tuple."""

    OPEN = "open"
    CLOSED = "closed"


class PresenceState(StrEnum):
    """The one-word summary of a presence document (rules in the module docstring)."""

    ONLINE = "online"
    OFFLINE = "offline"
    AWAY = "away"
    BUSY = "busy"
    ON_THE_PHONE = "on_the_phone"
    DO_NOT_DISTURB = "do_not_disturb"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Note:
    """A human-readable note and its language (``xml:lang``, inherited from enclosing elements)."""

    text: str
    lang: str | None = None


@dataclass(frozen=True, slots=True)
class PresenceTuple:
    """One ``<tuple>``: a way to reach the presentity and whether it is open."""

    id: str
    basic: BasicStatus | None
    contact: str | None
    priority: float | None
    notes: tuple[Note, ...]
    timestamp: str | None


@dataclass(frozen=True, slots=True)
class Person:
    """One ``<person>`` of the data model with its RPID activities.

    ``activities`` holds activity element names (``away``, ``on-the-phone``, ...);
    ``other_activities`` the free texts of ``<rpid:other>``.
    """

    id: str | None
    activities: tuple[str, ...]
    other_activities: tuple[str, ...]
    notes: tuple[Note, ...]
    timestamp: str | None


@dataclass(frozen=True, slots=True)
class PresenceDocument:
    """A parsed PIDF document."""

    entity: str
    tuples: tuple[PresenceTuple, ...]
    persons: tuple[Person, ...]
    notes: tuple[Note, ...]

    @property
    def activities(self) -> frozenset[str]:
        """The activity names of all persons."""
        return frozenset(name for person in self.persons for name in person.activities)

    @property
    def other_activities(self) -> tuple[str, ...]:
        """The ``<rpid:other>`` texts of all persons."""
        return tuple(text for person in self.persons for text in person.other_activities)

    @property
    def all_notes(self) -> tuple[Note, ...]:
        """The document's notes, then the persons' notes, then the tuples' notes."""
        return (
            self.notes
            + tuple(note for person in self.persons for note in person.notes)
            + tuple(note for presence_tuple in self.tuples for note in presence_tuple.notes)
        )


def parse_pidf(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> PresenceDocument:
    """Parse an ``application/pidf+xml`` body; raises :class:`DocumentError` on bad input."""
    root = parse_xml(data, max_bytes=max_bytes)
    if root.tag != f"{{{PIDF_NAMESPACE}}}presence":
        raise DocumentError(f"not a PIDF document: the root element is <{local_name(root.tag)}>")
    lang = root.get(XML_LANG)
    return PresenceDocument(
        entity=required(root, "entity", "<presence>"),
        tuples=tuple(
            _parse_tuple(element, lang) for element in root.findall(f"{{{PIDF_NAMESPACE}}}tuple")
        ),
        persons=tuple(
            _parse_person(element, lang) for element in root if element.tag in _PERSON_TAGS
        ),
        notes=_notes(root, lang),
    )


def _parse_tuple(element: Element, inherited_lang: str | None) -> PresenceTuple:
    tuple_id = required(element, "id", "a <tuple>")
    lang = element.get(XML_LANG, inherited_lang)
    basic_element = element.find(f"{{{PIDF_NAMESPACE}}}status/{{{PIDF_NAMESPACE}}}basic")
    basic = (
        None
        if basic_element is None
        else enum_value(BasicStatus, text_of(basic_element), f"<basic> of tuple {tuple_id!r}")
    )
    contact_element = element.find(f"{{{PIDF_NAMESPACE}}}contact")
    contact: str | None = None
    priority: float | None = None
    if contact_element is not None:
        contact = text_of(contact_element) or None
        raw_priority = contact_element.get("priority")
        if raw_priority is not None:
            if not _PRIORITY_RE.fullmatch(raw_priority.strip()):
                raise DocumentError(
                    f"contact priority {raw_priority!r} of tuple {tuple_id!r} is not 0 to 1"
                )
            priority = float(raw_priority)
    return PresenceTuple(
        id=tuple_id,
        basic=basic,
        contact=contact,
        priority=priority,
        notes=_notes(element, lang),
        timestamp=_timestamp(element),
    )


def _parse_person(element: Element, inherited_lang: str | None) -> Person:
    activities: list[str] = []
    others: list[str] = []
    for container in element.iter():
        if container.tag not in _ACTIVITIES_TAGS:
            continue
        for activity in container:
            name = local_name(activity.tag)
            if name == "other":
                if text := text_of(activity):
                    others.append(text)
            else:
                activities.append(name)
    return Person(
        id=element.get("id"),
        activities=tuple(activities),
        other_activities=tuple(others),
        notes=_notes(element, element.get(XML_LANG, inherited_lang)),
        timestamp=_timestamp(element),
    )


def _notes(element: Element, lang: str | None) -> tuple[Note, ...]:
    """The non-empty ``<note>`` children (of any namespace: pidf and data model both have one)."""
    return tuple(
        Note(text, child.get(XML_LANG, lang))
        for child in element
        if local_name(child.tag) == "note" and (text := text_of(child))
    )


def _timestamp(element: Element) -> str | None:
    for child in element:
        if child.tag in _TIMESTAMP_TAGS:
            return text_of(child) or None
    return None


def _is_do_not_disturb(text: str) -> bool:
    return "".join(char for char in text.lower() if char.isalnum()) in _DO_NOT_DISTURB_PHRASES


def summarize(doc: PresenceDocument | None) -> PresenceState:
    """Reduce a presence document to one state, following the rules of the module docstring."""
    if doc is None or not doc.tuples:
        return PresenceState.UNKNOWN
    basics = {presence_tuple.basic for presence_tuple in doc.tuples}
    if not basics & {BasicStatus.OPEN, BasicStatus.CLOSED}:
        return PresenceState.UNKNOWN
    activities = doc.activities
    if "on-the-phone" in activities:
        return PresenceState.ON_THE_PHONE
    if any(_is_do_not_disturb(text) for text in doc.other_activities) or (
        "busy" in activities and any(_is_do_not_disturb(note.text) for note in doc.all_notes)
    ):
        return PresenceState.DO_NOT_DISTURB
    if BasicStatus.OPEN not in basics:
        return PresenceState.OFFLINE
    if activities & _BUSY_ACTIVITIES:
        return PresenceState.BUSY
    if activities & _AWAY_ACTIVITIES:
        return PresenceState.AWAY
    return PresenceState.ONLINE


def best_note(doc: PresenceDocument | None, lang: str | None = None) -> str | None:
    """The note to show, or None when the document has no note.

    Preferred: a note in ``lang`` (the exact tag, then the same primary language), then a note
    without a language, then the first note.
    """
    if doc is None or not (notes := doc.all_notes):
        return None
    wanted = lang.lower() if lang else None

    def rank(note: Note) -> int:
        if note.lang is None:
            return 2
        tag = note.lang.lower()
        if wanted is None:
            return 3
        if tag == wanted:
            return 0
        return 1 if tag.partition("-")[0] == wanted.partition("-")[0] else 3

    # min() keeps the first of equally ranked notes, so document order breaks ties.
    return min(notes, key=rank).text


class MyPresence(StrEnum):
    """The presence a user can choose to publish, mapped onto :func:`build_pidf` arguments."""

    AVAILABLE = "available"
    AWAY = "away"
    BUSY = "busy"
    DO_NOT_DISTURB = "do_not_disturb"
    OFFLINE = "offline"

    @property
    def open(self) -> bool:
        """Whether the published tuple is open."""
        return self is not MyPresence.OFFLINE

    @property
    def activity(self) -> str | None:
        """The activity to publish; do not disturb is written as ``<rpid:other>`` text."""
        match self:
            case MyPresence.AWAY:
                return "away"
            case MyPresence.BUSY:
                return "busy"
            case MyPresence.DO_NOT_DISTURB:
                return _DO_NOT_DISTURB_TEXT
            case _:
                return None


def _checked_text(value: str, what: str) -> str:
    if not value.strip():
        raise LocalProtocolError(f"{what} is empty")
    if match := _NOT_XML_CHAR_RE.search(value):
        raise LocalProtocolError(f"{what} holds {match.group()!r}, which XML cannot carry")
    return value


def build_pidf(
    entity: str, *, open: bool, activity: str | None, note: str | None, tuple_id: str
) -> bytes:
    """Write a PIDF document with one tuple and, when ``activity`` is given, an RPID person.

    ``activity`` is an RFC 4480 activity name (written as its element) or any other text
    (written as ``<rpid:other>``); a blank ``note`` is left out. Raises
    :class:`LocalProtocolError` for an empty entity, a ``tuple_id`` that is not an XML ID, or
    text XML cannot carry.
    """
    _checked_text(entity, "the entity")
    if not _XML_ID_RE.fullmatch(tuple_id):
        raise LocalProtocolError(f"tuple id {tuple_id!r} is not an XML ID")
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<presence xmlns="{PIDF_NAMESPACE}" xmlns:dm="{DATA_MODEL_NAMESPACE}"'
        f' xmlns:rpid="{RPID_NAMESPACE}" entity={quoteattr(entity)}>',
        f'<tuple id="{tuple_id}"><status><basic>{"open" if open else "closed"}</basic>'
        "</status></tuple>",
    ]
    if note is not None and note.strip():
        lines.append(f"<note>{escape(_checked_text(note, 'the note'))}</note>")
    if activity is not None:
        if activity in RPID_ACTIVITIES:
            activity_xml = f"<rpid:{activity}/>"
        else:
            activity_xml = (
                f"<rpid:other>{escape(_checked_text(activity, 'the activity'))}</rpid:other>"
            )
        lines.append(
            f'<dm:person id="p-{tuple_id}"><rpid:activities>{activity_xml}</rpid:activities>'
            "</dm:person>"
        )
    lines.append("</presence>")
    return "\n".join(lines).encode("utf-8")
