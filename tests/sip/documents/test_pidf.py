"""PIDF + RPID: parsing, the summary rules one by one, the best note and building."""

from __future__ import annotations

import pytest

from custom_components.sip_profiles.sip.documents import (
    BasicStatus,
    DocumentError,
    MyPresence,
    Note,
    PresenceDocument,
    PresenceState,
    best_note,
    build_pidf,
    parse_pidf,
    summarize,
)
from custom_components.sip_profiles.sip.errors import LocalProtocolError

# FreeSWITCH (mod_sofia) writes Latin-1, single quotes, and a data-model person with RPID.
FREESWITCH = """<?xml version="1.0" encoding="ISO-8859-1"?>
<presence xmlns='urn:ietf:params:xml:ns:pidf'
 xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model'
 xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid'
 xmlns:c='urn:ietf:params:xml:ns:pidf:cipid' entity='sip:1000@192.0.2.10'>
<tuple id='t6a5ed77e'>
<status>
<basic>open</basic>
</status>
</tuple>
<dm:person id='p06360c4a'>
<rpid:activities>
<rpid:on-the-phone/>
</rpid:activities>
<dm:note>Téléphone</dm:note>
</dm:person>
</presence>""".encode("latin-1")

# Asterisk writes the draft namespaces: pp:person, a pidf <status> and ep:activities inside it.
ASTERISK_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<presence entity="sip:201@pbx.example.com" xmlns="urn:ietf:params:xml:ns:pidf"
 xmlns:pp="urn:ietf:params:xml:ns:pidf:person"
 xmlns:es="urn:ietf:params:xml:ns:pidf:rpid:status:rpid-status"
 xmlns:ep="urn:ietf:params:xml:ns:pidf:rpid:rpid-person">
 <note>{note}</note>
 <tuple id="201">
  <status><basic>{basic}</basic></status>
  <contact priority="1">sip:201@pbx.example.com</contact>
 </tuple>
 <pp:person>
  <status><ep:activities><ep:{activity}/></ep:activities></status>
 </pp:person>
</presence>"""


def asterisk(basic: str, activity: str, note: str) -> bytes:
    return ASTERISK_TEMPLATE.format(basic=basic, activity=activity, note=note).encode()


# Kamailio (presence_xml) aggregates the publications of several devices into one document.
KAMAILIO = b"""<?xml version="1.0"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.com"
 xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid">
  <tuple id="desk">
    <status><basic>closed</basic></status>
    <contact priority="0.8">sip:alice@192.0.2.20:5060</contact>
    <timestamp>2026-01-05T10:11:12Z</timestamp>
  </tuple>
  <tuple id="mobile">
    <status><basic>open</basic></status>
    <contact priority="0.5">sip:alice@198.51.100.7:42124;transport=tcp</contact>
    <note xml:lang="en">Mobile</note>
  </tuple>
  <dm:person id="alice">
    <rpid:activities><rpid:meeting/></rpid:activities>
    <dm:note xml:lang="en">In a meeting</dm:note>
    <dm:note xml:lang="de">In einer Besprechung</dm:note>
    <dm:timestamp>2026-01-05T10:00:00Z</dm:timestamp>
  </dm:person>
</presence>"""

# Any prefix, including none for the data model and a prefixed PIDF root.
ODD_PREFIXES = b"""<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf"
 xmlns="urn:ietf:params:xml:ns:pidf:data-model" xmlns:r="urn:ietf:params:xml:ns:pidf:rpid"
 entity="pres:bob@example.org">
  <p:tuple id="a1"><p:status><p:basic>open</p:basic></p:status></p:tuple>
  <person id="b"><r:activities><r:away/><r:other>gone fishing</r:other></r:activities></person>
</p:presence>"""

# Older RPID drafts put the person in the RPID namespace.
RPID_PERSON = b"""<presence xmlns="urn:ietf:params:xml:ns:pidf"
 xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:carol@example.net">
  <tuple id="c"><status><basic>open</basic></status></tuple>
  <rpid:person id="c"><rpid:activities><rpid:vacation/></rpid:activities></rpid:person>
</presence>"""


def pidf(body: str, *, lang: str | None = None) -> bytes:
    lang_attribute = f' xml:lang="{lang}"' if lang else ""
    return (
        '<presence xmlns="urn:ietf:params:xml:ns:pidf"'
        ' xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"'
        ' xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"'
        f' entity="sip:x@example.com"{lang_attribute}>{body}</presence>'
    ).encode()


def tuple_xml(basic: str | None, tuple_id: str = "t", note: str = "") -> str:
    status = f"<status><basic>{basic}</basic></status>" if basic else "<status/>"
    return f'<tuple id="{tuple_id}">{status}{note}</tuple>'


def person_xml(*activities: str, other: str | None = None, note: str = "") -> str:
    inner = "".join(f"<rpid:{name}/>" for name in activities)
    if other is not None:
        inner += f"<rpid:other>{other}</rpid:other>"
    return f'<dm:person id="p"><rpid:activities>{inner}</rpid:activities>{note}</dm:person>'


def state_of(body: str) -> PresenceState:
    return summarize(parse_pidf(pidf(body)))


# --- parsing -----------------------------------------------------------------------------


def test_freeswitch_document() -> None:
    doc = parse_pidf(FREESWITCH)
    assert doc.entity == "sip:1000@192.0.2.10"
    assert [(t.id, t.basic) for t in doc.tuples] == [("t6a5ed77e", BasicStatus.OPEN)]
    assert doc.persons[0].id == "p06360c4a"
    assert doc.persons[0].activities == ("on-the-phone",)
    assert doc.persons[0].notes == (Note("Téléphone"),)
    assert summarize(doc) is PresenceState.ON_THE_PHONE


def test_asterisk_document_with_draft_namespaces() -> None:
    doc = parse_pidf(asterisk("open", "away", "Away"))
    assert doc.notes == (Note("Away"),)
    assert doc.tuples[0].contact == "sip:201@pbx.example.com"
    assert doc.tuples[0].priority == 1.0
    assert doc.activities == {"away"}
    assert summarize(doc) is PresenceState.AWAY


@pytest.mark.parametrize(
    ("basic", "activity", "note", "expected"),
    [
        ("open", "busy", "Ringing", PresenceState.BUSY),
        ("open", "on-the-phone", "On the phone", PresenceState.ON_THE_PHONE),
        ("closed", "on-the-phone", "On the phone", PresenceState.ON_THE_PHONE),
        ("closed", "away", "Unavailable", PresenceState.OFFLINE),
    ],
    ids=["ringing", "in use", "busy device", "unavailable"],
)
def test_asterisk_device_states(
    basic: str, activity: str, note: str, expected: PresenceState
) -> None:
    assert summarize(parse_pidf(asterisk(basic, activity, note))) is expected


def test_kamailio_aggregated_document() -> None:
    doc = parse_pidf(KAMAILIO)
    desk, mobile = doc.tuples
    assert (desk.id, desk.basic, desk.priority) == ("desk", BasicStatus.CLOSED, 0.8)
    assert desk.contact == "sip:alice@192.0.2.20:5060"
    assert desk.timestamp == "2026-01-05T10:11:12Z"
    assert (mobile.id, mobile.basic, mobile.priority) == ("mobile", BasicStatus.OPEN, 0.5)
    assert mobile.notes == (Note("Mobile", "en"),)
    (person,) = doc.persons
    assert person.activities == ("meeting",)
    assert person.timestamp == "2026-01-05T10:00:00Z"
    assert person.notes == (Note("In a meeting", "en"), Note("In einer Besprechung", "de"))
    assert summarize(doc) is PresenceState.AWAY


def test_any_prefix_is_understood() -> None:
    doc = parse_pidf(ODD_PREFIXES)
    assert doc.entity == "pres:bob@example.org"
    assert doc.tuples[0].basic is BasicStatus.OPEN
    assert doc.persons[0].activities == ("away",)
    assert doc.persons[0].other_activities == ("gone fishing",)
    assert summarize(doc) is PresenceState.AWAY


def test_rpid_person_of_older_drafts() -> None:
    doc = parse_pidf(RPID_PERSON)
    assert doc.activities == {"vacation"}
    assert summarize(doc) is PresenceState.AWAY


def test_person_in_a_foreign_namespace_is_not_read() -> None:
    doc = parse_pidf(
        pidf(
            tuple_xml("open")
            + '<x:person xmlns:x="urn:example:other"><rpid:activities><rpid:busy/>'
            "</rpid:activities></x:person>"
        )
    )
    assert doc.persons == ()


def test_notes_inherit_xml_lang_and_keep_their_own() -> None:
    doc = parse_pidf(
        pidf(
            '<tuple id="t" xml:lang="fr"><status><basic>open</basic></status>'
            "<note>Disponible</note></tuple>"
            '<note>Available</note><note xml:lang="de">Verfügbar</note>',
            lang="en",
        )
    )
    assert doc.notes == (Note("Available", "en"), Note("Verfügbar", "de"))
    assert doc.tuples[0].notes == (Note("Disponible", "fr"),)


def test_empty_notes_are_skipped() -> None:
    doc = parse_pidf(pidf(tuple_xml("open") + "<note>  </note>"))
    assert doc.notes == ()


def test_document_without_contact() -> None:
    presence_tuple = parse_pidf(pidf(tuple_xml("open"))).tuples[0]
    assert (presence_tuple.contact, presence_tuple.priority) == (None, None)


def test_contact_without_priority() -> None:
    doc = parse_pidf(pidf('<tuple id="t"><status/><contact>sip:a@example.com</contact></tuple>'))
    assert (doc.tuples[0].contact, doc.tuples[0].priority) == ("sip:a@example.com", None)


def test_empty_other_activity_is_skipped() -> None:
    doc = parse_pidf(pidf(tuple_xml("open") + person_xml("away", other=" ")))
    assert (doc.persons[0].activities, doc.persons[0].other_activities) == (("away",), ())


def test_basic_is_read_case_insensitively() -> None:
    assert parse_pidf(pidf(tuple_xml(" OPEN "))).tuples[0].basic is BasicStatus.OPEN


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'<presence entity="sip:a@b"/>', "not a PIDF document: the root element is <presence>"),
        (
            b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info"/>',
            "root element is <dialog-info>",
        ),
        (b'<presence xmlns="urn:ietf:params:xml:ns:pidf"/>', "<presence> has no 'entity'"),
        (pidf("<tuple><status><basic>open</basic></status></tuple>"), "a <tuple> has no 'id'"),
        (pidf(tuple_xml("half-open")), "<basic> of tuple 't' is 'half-open'; expected one of"),
        (
            pidf('<tuple id="t"><status/><contact priority="2">sip:a@b</contact></tuple>'),
            "priority '2' of tuple 't' is not 0 to 1",
        ),
        (
            pidf('<tuple id="t"><status/><contact priority="nan">sip:a@b</contact></tuple>'),
            "priority 'nan'",
        ),
        (pidf(tuple_xml("open") + "<rpid:activities><x:away/></rpid:activities>"), "unbound"),
    ],
)
def test_invalid_documents_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(DocumentError, match=message):
        parse_pidf(data)


# --- summary, rule by rule ---------------------------------------------------------------


def test_rule_1_no_document_is_unknown() -> None:
    assert summarize(None) is PresenceState.UNKNOWN


def test_rule_2_no_tuples_is_unknown_whatever_the_persons_say() -> None:
    assert state_of("") is PresenceState.UNKNOWN
    assert state_of(person_xml("on-the-phone")) is PresenceState.UNKNOWN


def test_rule_3_tuples_without_basic_are_unknown() -> None:
    assert state_of(tuple_xml(None) + person_xml("busy")) is PresenceState.UNKNOWN


def test_rule_3_a_tuple_without_basic_next_to_an_open_one_counts_for_nothing() -> None:
    assert state_of(tuple_xml(None, "a") + tuple_xml("open", "b")) is PresenceState.ONLINE


@pytest.mark.parametrize("basic", ["open", "closed"])
def test_rule_4_on_the_phone_whether_open_or_closed(basic: str) -> None:
    assert state_of(tuple_xml(basic) + person_xml("on-the-phone")) is PresenceState.ON_THE_PHONE


def test_rule_4_on_the_phone_beats_do_not_disturb_busy_and_away() -> None:
    body = tuple_xml("open") + person_xml("busy", "away", "on-the-phone", other="dnd")
    assert state_of(body) is PresenceState.ON_THE_PHONE


@pytest.mark.parametrize("text", ["dnd", "DND", "Do Not Disturb", "do-not-disturb", "DoNotDisturb"])
@pytest.mark.parametrize("basic", ["open", "closed"])
def test_rule_5_do_not_disturb_as_rpid_other(basic: str, text: str) -> None:
    assert state_of(tuple_xml(basic) + person_xml(other=text)) is PresenceState.DO_NOT_DISTURB


@pytest.mark.parametrize(
    "body",
    [
        tuple_xml("open") + "<note>Do not disturb</note>" + person_xml("busy"),
        tuple_xml("open") + person_xml("busy", note="<dm:note>DND</dm:note>"),
        tuple_xml("open", note="<note>do-not-disturb</note>") + person_xml("busy"),
        tuple_xml("closed") + "<note>Do Not Disturb</note>" + person_xml("busy"),
    ],
    ids=["document note", "person note", "tuple note", "closed"],
)
def test_rule_5_do_not_disturb_as_busy_with_a_note(body: str) -> None:
    assert state_of(body) is PresenceState.DO_NOT_DISTURB


def test_rule_5_a_do_not_disturb_note_alone_changes_nothing() -> None:
    assert state_of(tuple_xml("open") + "<note>Do not disturb</note>") is PresenceState.ONLINE
    body = tuple_xml("open") + "<note>Do not disturb</note>" + person_xml("away")
    assert state_of(body) is PresenceState.AWAY


def test_rule_5_other_text_that_merely_contains_dnd_is_not_do_not_disturb() -> None:
    assert state_of(tuple_xml("open") + person_xml(other="dnd later")) is PresenceState.ONLINE


def test_rule_6_all_tuples_closed_is_offline() -> None:
    assert state_of(tuple_xml("closed", "a") + tuple_xml("closed", "b")) is PresenceState.OFFLINE


@pytest.mark.parametrize("activity", ["away", "busy", "vacation", "unknown"])
def test_rule_6_activities_other_than_a_call_do_not_revive_a_closed_document(activity: str) -> None:
    assert state_of(tuple_xml("closed") + person_xml(activity)) is PresenceState.OFFLINE


def test_rule_6_one_open_tuple_among_closed_ones_is_reachable() -> None:
    assert state_of(tuple_xml("closed", "a") + tuple_xml("open", "b")) is PresenceState.ONLINE


@pytest.mark.parametrize("activity", ["busy", "performance", "presentation"])
def test_rule_7_busy_activities(activity: str) -> None:
    assert state_of(tuple_xml("open") + person_xml(activity)) is PresenceState.BUSY


def test_rule_7_busy_beats_away() -> None:
    assert state_of(tuple_xml("open") + person_xml("away", "busy")) is PresenceState.BUSY


@pytest.mark.parametrize(
    "activity",
    [
        "away", "appointment", "breakfast", "dinner", "holiday", "in-transit",
        "looking-for-work", "meal", "meeting", "permanent-absence", "playing", "shopping",
        "sleeping", "spectator", "steering", "travel", "vacation", "worship",
    ],
)  # fmt: skip
def test_rule_8_away_activities(activity: str) -> None:
    assert state_of(tuple_xml("open") + person_xml(activity)) is PresenceState.AWAY


@pytest.mark.parametrize(
    "person",
    [
        "",
        person_xml(),
        person_xml("unknown"),
        person_xml("working"),
        person_xml("tv"),
        person_xml(other="at my desk"),
    ],
    ids=["no person", "no activity", "unknown", "working", "tv", "other text"],
)
def test_rule_9_otherwise_online(person: str) -> None:
    assert state_of(tuple_xml("open") + person) is PresenceState.ONLINE


def test_activities_of_all_persons_count() -> None:
    body = tuple_xml("open") + person_xml("working") + person_xml("on-the-phone")
    assert state_of(body) is PresenceState.ON_THE_PHONE


# --- best note ---------------------------------------------------------------------------

NOTES = PresenceDocument(
    entity="sip:x@example.com",
    tuples=(),
    persons=(),
    notes=(Note("Bonjour", "fr"), Note("Hello"), Note("Servus", "de-AT"), Note("Hallo", "de")),
)


def test_best_note_prefers_the_exact_language() -> None:
    assert best_note(NOTES, "de") == "Hallo"
    assert best_note(NOTES, "DE-at") == "Servus"


def test_best_note_then_the_same_primary_language() -> None:
    assert best_note(NOTES, "fr-CA") == "Bonjour"


def test_best_note_then_a_note_without_language() -> None:
    assert best_note(NOTES, "ja") == "Hello"
    assert best_note(NOTES) == "Hello"


def test_best_note_then_the_first() -> None:
    doc = PresenceDocument("sip:x@example.com", (), (), (Note("Un", "fr"), Note("Eins", "de")))
    assert best_note(doc, "ja") == "Un"


def test_best_note_looks_at_persons_and_tuples_too() -> None:
    assert best_note(parse_pidf(KAMAILIO), "de") == "In einer Besprechung"
    assert best_note(parse_pidf(KAMAILIO)) == "In a meeting"


def test_best_note_without_notes_is_none() -> None:
    assert best_note(None) is None
    assert best_note(parse_pidf(pidf(tuple_xml("open")))) is None


# --- building ----------------------------------------------------------------------------

ROUND_TRIPS = {
    MyPresence.AVAILABLE: PresenceState.ONLINE,
    MyPresence.AWAY: PresenceState.AWAY,
    MyPresence.BUSY: PresenceState.BUSY,
    MyPresence.DO_NOT_DISTURB: PresenceState.DO_NOT_DISTURB,
    MyPresence.OFFLINE: PresenceState.OFFLINE,
}


@pytest.mark.parametrize(("choice", "expected"), ROUND_TRIPS.items())
@pytest.mark.parametrize("note", [None, 'Back at 3 <pm> & "later"'])
def test_my_presence_round_trips(
    choice: MyPresence, expected: PresenceState, note: str | None
) -> None:
    data = build_pidf(
        "sip:me@example.com",
        open=choice.open,
        activity=choice.activity,
        note=note,
        tuple_id="ha-1",
    )
    doc = parse_pidf(data)
    assert doc.entity == "sip:me@example.com"
    assert [(t.id, t.basic) for t in doc.tuples] == [
        ("ha-1", BasicStatus.OPEN if choice.open else BasicStatus.CLOSED)
    ]
    assert best_note(doc) == note
    assert summarize(doc) is expected


def test_build_writes_rpid_names_as_elements_and_other_text_as_other() -> None:
    data = build_pidf("sip:me@example.com", open=True, activity="meal", note=None, tuple_id="t")
    assert b"<rpid:meal/>" in data
    assert parse_pidf(data).persons[0].activities == ("meal",)
    data = build_pidf(
        "sip:me@example.com", open=True, activity="Gardening", note=None, tuple_id="t"
    )
    assert b"<rpid:other>Gardening</rpid:other>" in data
    assert parse_pidf(data).persons[0].other_activities == ("Gardening",)


def test_build_without_activity_has_no_person() -> None:
    data = build_pidf("sip:me@example.com", open=True, activity=None, note=None, tuple_id="t")
    assert b"person" not in data
    assert parse_pidf(data).persons == ()


@pytest.mark.parametrize("note", ["", "  \n"])
def test_build_leaves_out_a_blank_note(note: str) -> None:
    data = build_pidf("sip:me@example.com", open=True, activity=None, note=note, tuple_id="t")
    assert b"note" not in data
    assert parse_pidf(data).notes == ()


def test_build_escapes_the_entity_and_the_note() -> None:
    entity = 'sip:o"brien&co<x>@example.com'
    note = "<b>&amp;</b> ]]>"
    data = build_pidf(entity, open=True, activity="<away/>", note=note, tuple_id="t")
    doc = parse_pidf(data)
    assert doc.entity == entity
    assert doc.notes == (Note(note),)
    assert doc.persons[0].other_activities == ("<away/>",)


def test_build_writes_utf8_with_a_declaration() -> None:
    data = build_pidf("sip:me@example.com", open=True, activity=None, note="Grüße", tuple_id="t")
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert "Grüße".encode() in data


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"entity": "  "}, "the entity is empty"),
        ({"tuple_id": "1abc"}, "tuple id '1abc' is not an XML ID"),
        ({"tuple_id": 'a"b'}, "is not an XML ID"),
        ({"note": "bell\x07"}, "the note holds '\\\\x07'"),
        ({"activity": ""}, "the activity is empty"),
        ({"activity": "x\x00"}, "the activity holds"),
        ({"entity": "sip:\ufffe@example.com"}, "the entity holds"),
    ],
)
def test_build_refuses_what_xml_cannot_carry(arguments: dict[str, str], message: str) -> None:
    values: dict[str, str | None] = {
        "entity": "sip:me@example.com",
        "activity": None,
        "note": None,
        "tuple_id": "t",
    }
    values.update(arguments)
    with pytest.raises(LocalProtocolError, match=message):
        build_pidf(
            values["entity"] or "",
            open=True,
            activity=values["activity"],
            note=values["note"],
            tuple_id=values["tuple_id"] or "",
        )
