"""Dialog-info: parsing, the lamp rules and the tracker's version rules."""

from __future__ import annotations

import pytest

from custom_components.sip_profiles.sip.documents import (
    ApplyResult,
    Dialog,
    DialogInfo,
    DialogState,
    DialogTracker,
    Direction,
    DocumentError,
    DocumentState,
    Lamp,
    LampState,
    Participant,
    lamp_of,
    parse_dialog_info,
)

# Kamailio (pua_dialoginfo) reports both ends with identities and targets.
KAMAILIO = b"""<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" state="full"
 entity="sip:alice@example.com">
  <dialog id="as7d900as8" call-id="a84b4c76e66710@pc33.example.com" local-tag="1928301774"
   remote-tag="456fa1" direction="initiator">
    <state>confirmed</state>
    <local>
      <identity display="Alice">sip:alice@example.com</identity>
      <target uri="sip:alice@pc33.example.com"/>
    </local>
    <remote>
      <identity display="Bob">sip:bob@example.org</identity>
      <target uri="sip:bob@192.0.2.4"/>
    </remote>
  </dialog>
</dialog-info>"""

# Asterisk names the dialog after the extension, gives no call-id and a direction when ringing.
ASTERISK_RINGING = b"""<?xml version="1.0" encoding="UTF-8"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full"
 entity="sip:201@pbx.example.com">
 <dialog id="201" direction="recipient">
  <remote><identity display="Front Door">sip:300@pbx.example.com</identity>
  <target uri="sip:300@pbx.example.com"/></remote>
  <local><identity>sip:201@pbx.example.com</identity><target uri="sip:201@pbx.example.com"/>
  </local>
  <state>early</state>
 </dialog>
</dialog-info>"""

ASTERISK_IDLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full"
 entity="sip:201@pbx.example.com">
 <dialog id="201"><state>terminated</state></dialog>
</dialog-info>"""

# FreeSWITCH uses its own prefix for the namespace.
FREESWITCH = b"""<?xml version="1.0"?>
<d:dialog-info xmlns:d="urn:ietf:params:xml:ns:dialog-info" version="7" state="partial"
 entity="sip:1001@192.0.2.10">
<d:dialog id="e5e1ba8e-4a76" direction="initiator" call-id="e5e1ba8e-4a76">
<d:state>proceeding</d:state>
</d:dialog>
</d:dialog-info>"""

BOB = Participant("sip:bob@example.org", "Bob", "sip:bob@192.0.2.4")


def test_kamailio_document() -> None:
    info = parse_dialog_info(KAMAILIO)
    assert (info.entity, info.version, info.state) == (
        "sip:alice@example.com",
        3,
        DocumentState.FULL,
    )
    assert info.dialogs == (
        Dialog(
            id="as7d900as8",
            state=DialogState.CONFIRMED,
            call_id="a84b4c76e66710@pc33.example.com",
            local_tag="1928301774",
            remote_tag="456fa1",
            direction=Direction.INITIATOR,
            local=Participant("sip:alice@example.com", "Alice", "sip:alice@pc33.example.com"),
            remote=BOB,
        ),
    )


def test_asterisk_ringing_document() -> None:
    (dialog,) = parse_dialog_info(ASTERISK_RINGING).dialogs
    assert (dialog.id, dialog.state, dialog.direction, dialog.call_id) == (
        "201",
        DialogState.EARLY,
        Direction.RECIPIENT,
        None,
    )
    assert dialog.remote == Participant(
        "sip:300@pbx.example.com", "Front Door", "sip:300@pbx.example.com"
    )
    assert dialog.local == Participant("sip:201@pbx.example.com", None, "sip:201@pbx.example.com")


def test_freeswitch_prefixed_partial_document() -> None:
    info = parse_dialog_info(FREESWITCH)
    assert (info.version, info.state) == (7, DocumentState.PARTIAL)
    assert info.dialogs[0].state is DialogState.PROCEEDING
    assert (info.dialogs[0].local, info.dialogs[0].remote) == (None, None)


def test_document_without_dialogs() -> None:
    info = parse_dialog_info(
        b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full"'
        b' entity="sip:a@b"/>'
    )
    assert info.dialogs == ()


def document(attributes: str, body: str = "") -> bytes:
    return (
        f'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" {attributes}>{body}</dialog-info>'
    ).encode()


GOOD = 'version="1" state="full" entity="sip:a@b"'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'<presence xmlns="urn:ietf:params:xml:ns:pidf"/>', "root element is <presence>"),
        (b'<dialog-info version="1" state="full" entity="x"/>', "not a dialog-info document"),
        (document('state="full" entity="sip:a@b"'), "has no 'version'"),
        (document('version="1" entity="sip:a@b"'), "has no 'state'"),
        (document('version="1" state="full"'), "has no 'entity'"),
        (document('version="-1" state="full" entity="x"'), "version is '-1'"),
        (document('version="one" state="full" entity="x"'), "version is 'one'"),
        (document('version="99999999999" state="full" entity="x"'), "non-negative integer"),
        (document('version="1" state="complete" entity="x"'), "state is 'complete'"),
        (document(GOOD, "<dialog><state>early</state></dialog>"), "a <dialog> has no 'id'"),
        (document(GOOD, '<dialog id="d"/>'), "dialog 'd' has no <state>"),
        (document(GOOD, '<dialog id="d"><state>ringing</state></dialog>'), "'ringing'"),
        (
            document(GOOD, '<dialog id="d" direction="inbound"><state>early</state></dialog>'),
            "direction of dialog 'd' is 'inbound'",
        ),
    ],
)
def test_invalid_documents_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(DocumentError, match=message):
        parse_dialog_info(data)


# --- lamp --------------------------------------------------------------------------------


def dialog(
    dialog_id: str,
    state: DialogState,
    direction: Direction | None = None,
    remote: Participant | None = None,
) -> Dialog:
    return Dialog(id=dialog_id, state=state, direction=direction, remote=remote)


def test_lamp_idle_without_dialogs() -> None:
    assert lamp_of([]) == Lamp(LampState.IDLE)


def test_lamp_idle_when_all_dialogs_are_terminated() -> None:
    assert lamp_of([dialog("a", DialogState.TERMINATED, Direction.INITIATOR, BOB)]) == Lamp(
        LampState.IDLE
    )


@pytest.mark.parametrize("state", [DialogState.TRYING, DialogState.PROCEEDING, DialogState.EARLY])
def test_lamp_rings_for_a_dialog_being_set_up(state: DialogState) -> None:
    assert lamp_of([dialog("a", state, Direction.RECIPIENT, BOB)]) == Lamp(
        LampState.RINGING, Direction.RECIPIENT, BOB
    )


def test_lamp_in_call_for_a_confirmed_dialog() -> None:
    assert lamp_of([dialog("a", DialogState.CONFIRMED, Direction.INITIATOR, BOB)]) == Lamp(
        LampState.IN_CALL, Direction.INITIATOR, BOB
    )


def test_confirmed_beats_early_whatever_the_order() -> None:
    other = Participant("sip:carol@example.org", None, None)
    dialogs = [
        dialog("a", DialogState.EARLY, Direction.RECIPIENT, other),
        dialog("b", DialogState.TERMINATED, Direction.RECIPIENT, other),
        dialog("c", DialogState.CONFIRMED, Direction.INITIATOR, BOB),
    ]
    assert lamp_of(dialogs) == Lamp(LampState.IN_CALL, Direction.INITIATOR, BOB)
    assert lamp_of(reversed(dialogs)) == Lamp(LampState.IN_CALL, Direction.INITIATOR, BOB)


def test_ringing_reports_the_first_live_dialog() -> None:
    carol = Participant("sip:carol@example.org", None, None)
    dialogs = [
        dialog("a", DialogState.TERMINATED, Direction.INITIATOR, BOB),
        dialog("b", DialogState.EARLY, Direction.RECIPIENT, carol),
        dialog("c", DialogState.TRYING, Direction.INITIATOR, BOB),
    ]
    assert lamp_of(dialogs) == Lamp(LampState.RINGING, Direction.RECIPIENT, carol)


def test_asterisk_documents_light_the_lamp_then_put_it_out() -> None:
    tracker = DialogTracker()
    assert tracker.apply(parse_dialog_info(ASTERISK_RINGING)) is ApplyResult.APPLIED
    assert tracker.lamp.state is LampState.RINGING
    assert tracker.lamp.remote is not None
    assert tracker.lamp.remote.display == "Front Door"
    assert tracker.apply(parse_dialog_info(ASTERISK_IDLE)) is ApplyResult.APPLIED
    assert tracker.lamp == Lamp(LampState.IDLE)
    assert tracker.dialogs == ()


# --- tracker -----------------------------------------------------------------------------


def info(version: int, state: DocumentState, *dialogs: Dialog) -> DialogInfo:
    return DialogInfo("sip:a@example.com", version, state, dialogs)


FULL, PARTIAL = DocumentState.FULL, DocumentState.PARTIAL


def ids(tracker: DialogTracker) -> list[tuple[str, DialogState]]:
    return [(d.id, d.state) for d in tracker.dialogs]


def test_new_tracker_is_idle_without_version() -> None:
    tracker = DialogTracker()
    assert (tracker.version, tracker.dialogs, tracker.lamp) == (None, (), Lamp(LampState.IDLE))


def test_full_document_replaces_all_dialogs() -> None:
    tracker = DialogTracker()
    tracker.apply(info(0, FULL, dialog("a", DialogState.EARLY), dialog("b", DialogState.EARLY)))
    assert tracker.apply(info(1, FULL, dialog("c", DialogState.CONFIRMED))) is ApplyResult.APPLIED
    assert ids(tracker) == [("c", DialogState.CONFIRMED)]
    assert tracker.version == 1


def test_full_document_leaves_out_terminated_dialogs() -> None:
    tracker = DialogTracker()
    tracker.apply(
        info(0, FULL, dialog("a", DialogState.TERMINATED), dialog("b", DialogState.EARLY))
    )
    assert ids(tracker) == [("b", DialogState.EARLY)]


def test_partial_document_updates_by_id_and_adds() -> None:
    tracker = DialogTracker()
    tracker.apply(info(4, FULL, dialog("a", DialogState.EARLY), dialog("b", DialogState.EARLY)))
    result = tracker.apply(
        info(5, PARTIAL, dialog("b", DialogState.CONFIRMED), dialog("c", DialogState.TRYING))
    )
    assert result is ApplyResult.APPLIED
    assert ids(tracker) == [
        ("a", DialogState.EARLY),
        ("b", DialogState.CONFIRMED),
        ("c", DialogState.TRYING),
    ]
    assert tracker.version == 5


def test_partial_document_removes_terminated_dialogs() -> None:
    tracker = DialogTracker()
    tracker.apply(info(0, FULL, dialog("a", DialogState.CONFIRMED), dialog("b", DialogState.EARLY)))
    tracker.apply(info(1, PARTIAL, dialog("a", DialogState.TERMINATED)))
    assert ids(tracker) == [("b", DialogState.EARLY)]
    assert tracker.lamp.state is LampState.RINGING


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("state", [FULL, PARTIAL])
def test_older_or_equal_versions_are_ignored(version: int, state: DocumentState) -> None:
    tracker = DialogTracker()
    tracker.apply(info(3, FULL, dialog("a", DialogState.CONFIRMED)))
    assert tracker.apply(info(version, state)) is ApplyResult.STALE
    assert ids(tracker) == [("a", DialogState.CONFIRMED)]
    assert tracker.version == 3


def test_version_gap_on_a_partial_document_asks_for_full_state() -> None:
    tracker = DialogTracker()
    tracker.apply(info(3, FULL, dialog("a", DialogState.CONFIRMED)))
    assert tracker.apply(info(5, PARTIAL, dialog("a", DialogState.TERMINATED))) is (
        ApplyResult.RESYNC_NEEDED
    )
    assert ids(tracker) == [("a", DialogState.CONFIRMED)]
    assert tracker.version == 3
    assert tracker.apply(info(6, FULL)) is ApplyResult.APPLIED
    assert tracker.dialogs == ()


def test_version_gap_on_a_full_document_is_fine() -> None:
    tracker = DialogTracker()
    tracker.apply(info(3, FULL, dialog("a", DialogState.CONFIRMED)))
    assert tracker.apply(info(9, FULL, dialog("b", DialogState.EARLY))) is ApplyResult.APPLIED
    assert ids(tracker) == [("b", DialogState.EARLY)]


def test_partial_document_before_any_full_one_asks_for_full_state() -> None:
    tracker = DialogTracker()
    assert tracker.apply(info(0, PARTIAL, dialog("a", DialogState.EARLY))) is (
        ApplyResult.RESYNC_NEEDED
    )
    assert (tracker.version, tracker.dialogs) == (None, ())


def test_reset_starts_a_new_subscription() -> None:
    tracker = DialogTracker()
    tracker.apply(info(7, FULL, dialog("a", DialogState.CONFIRMED)))
    tracker.reset()
    assert (tracker.version, tracker.dialogs) == (None, ())
    assert tracker.apply(info(0, FULL, dialog("b", DialogState.EARLY))) is ApplyResult.APPLIED
    assert ids(tracker) == [("b", DialogState.EARLY)]
