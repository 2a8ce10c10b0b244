"""Watcherinfo: parsing and keeping the watcher set across full and partial documents."""

from __future__ import annotations

import pytest

from custom_components.sip_profiles.sip.documents import (
    ApplyResult,
    DocumentError,
    DocumentState,
    Watcher,
    WatcherEvent,
    WatcherInfo,
    WatcherList,
    WatcherStatus,
    WatcherTracker,
    parse_watcherinfo,
)

# The shape of RFC 3858 §5, as Kamailio's presence module and OpenSIPS send it.
FULL_DOCUMENT = b"""<?xml version="1.0"?>
<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="0" state="full">
  <watcher-list resource="sip:professor@example.net" package="presence">
    <watcher status="active" id="8ajksjda7s" duration-subscribed="509" event="approved"
     expiration="3600">sip:userA@example.net</watcher>
    <watcher status="pending" id="hh8juja87s997-ass7" display-name="Mr. Subscriber"
     xml:lang="en" event="subscribe">sip:userB@example.org</watcher>
  </watcher-list>
  <watcher-list resource="sip:professor@example.net" package="dialog"/>
</watcherinfo>"""

PREFIXED_PARTIAL = b"""<w:watcherinfo xmlns:w="urn:ietf:params:xml:ns:watcherinfo"
 version="1" state="partial">
  <w:watcher-list resource="sip:professor@example.net" package="presence">
    <w:watcher status="terminated" id="8ajksjda7s" event="timeout">sip:userA@example.net</w:watcher>
    <w:watcher status="waiting" id="q9" event="subscribe">sip:userC@example.com</w:watcher>
  </w:watcher-list>
</w:watcherinfo>"""

USER_A = Watcher(
    id="8ajksjda7s",
    status=WatcherStatus.ACTIVE,
    event=WatcherEvent.APPROVED,
    uri="sip:userA@example.net",
    expiration=3600,
    duration_subscribed=509,
)
USER_B = Watcher(
    id="hh8juja87s997-ass7",
    status=WatcherStatus.PENDING,
    event=WatcherEvent.SUBSCRIBE,
    uri="sip:userB@example.org",
    display_name="Mr. Subscriber",
    display_name_lang="en",
)
RESOURCE = "sip:professor@example.net"


def test_full_document() -> None:
    info = parse_watcherinfo(FULL_DOCUMENT)
    assert info == WatcherInfo(
        version=0,
        state=DocumentState.FULL,
        watcher_lists=(
            WatcherList(RESOURCE, "presence", (USER_A, USER_B)),
            WatcherList(RESOURCE, "dialog", ()),
        ),
    )


def test_prefixed_partial_document() -> None:
    info = parse_watcherinfo(PREFIXED_PARTIAL)
    assert (info.version, info.state) == (1, DocumentState.PARTIAL)
    assert [(w.id, w.status, w.event) for w in info.watcher_lists[0].watchers] == [
        ("8ajksjda7s", WatcherStatus.TERMINATED, WatcherEvent.TIMEOUT),
        ("q9", WatcherStatus.WAITING, WatcherEvent.SUBSCRIBE),
    ]


def document(attributes: str, body: str = "") -> bytes:
    return (
        f'<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" {attributes}>{body}</watcherinfo>'
    ).encode()


def with_watcher(watcher: str) -> bytes:
    return document(
        'version="0" state="full"',
        f'<watcher-list resource="sip:r@x" package="presence">{watcher}</watcher-list>',
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'<watcherinfo version="0" state="full"/>', "not a watcherinfo document"),
        (document('state="full"'), "<watcherinfo> has no 'version'"),
        (document('version="0"'), "<watcherinfo> has no 'state'"),
        (document('version="x" state="full"'), "the version is 'x'"),
        (document('version="0" state="some"'), "the state is 'some'"),
        (
            document('version="0" state="full"', '<watcher-list package="presence"/>'),
            "a <watcher-list> has no 'resource'",
        ),
        (
            document('version="0" state="full"', '<watcher-list resource="sip:r@x"/>'),
            "a <watcher-list> has no 'package'",
        ),
        (with_watcher('<watcher status="active" event="approved">sip:a@x</watcher>'), "no 'id'"),
        (with_watcher('<watcher id="w" event="approved">sip:a@x</watcher>'), "no 'status'"),
        (with_watcher('<watcher id="w" status="active">sip:a@x</watcher>'), "no 'event'"),
        (
            with_watcher('<watcher id="w" status="happy" event="approved">sip:a@x</watcher>'),
            "the status of watcher 'w' is 'happy'",
        ),
        (
            with_watcher('<watcher id="w" status="active" event="poked">sip:a@x</watcher>'),
            "the event of watcher 'w' is 'poked'",
        ),
        (
            with_watcher('<watcher id="w" status="active" event="approved"> </watcher>'),
            "watcher 'w' has no URI",
        ),
        (
            with_watcher(
                '<watcher id="w" status="active" event="approved" expiration="soon">sip:a@x'
                "</watcher>"
            ),
            "the expiration of watcher 'w' is 'soon'",
        ),
    ],
)
def test_invalid_documents_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(DocumentError, match=message):
        parse_watcherinfo(data)


# --- tracker -----------------------------------------------------------------------------


def watcher(watcher_id: str, status: WatcherStatus) -> Watcher:
    return Watcher(watcher_id, status, WatcherEvent.SUBSCRIBE, f"sip:{watcher_id}@example.com")


def info(version: int, state: DocumentState, *lists: WatcherList) -> WatcherInfo:
    return WatcherInfo(version, state, lists)


def presence(*watchers: Watcher) -> WatcherList:
    return WatcherList(RESOURCE, "presence", watchers)


ACTIVE, PENDING = WatcherStatus.ACTIVE, WatcherStatus.PENDING
FULL, PARTIAL = DocumentState.FULL, DocumentState.PARTIAL


def current(tracker: WatcherTracker) -> list[tuple[str, str, str, WatcherStatus]]:
    return [
        (watcher_list.resource, watcher_list.package, w.id, w.status)
        for watcher_list in tracker.watcher_lists
        for w in watcher_list.watchers
    ]


def test_documents_from_the_wire_keep_the_watcher_set() -> None:
    tracker = WatcherTracker()
    assert tracker.apply(parse_watcherinfo(FULL_DOCUMENT)) is ApplyResult.APPLIED
    assert tracker.watcher_lists == (WatcherList(RESOURCE, "presence", (USER_A, USER_B)),)
    assert tracker.pending == (USER_B,)
    assert tracker.apply(parse_watcherinfo(PREFIXED_PARTIAL)) is ApplyResult.APPLIED
    assert current(tracker) == [
        (RESOURCE, "presence", "hh8juja87s997-ass7", PENDING),
        (RESOURCE, "presence", "q9", WatcherStatus.WAITING),
    ]
    assert tracker.pending == (USER_B,)
    assert tracker.version == 1


def test_full_document_replaces_all_watchers() -> None:
    tracker = WatcherTracker()
    tracker.apply(info(0, FULL, presence(watcher("a", ACTIVE), watcher("b", PENDING))))
    tracker.apply(info(1, FULL, presence(watcher("c", ACTIVE))))
    assert current(tracker) == [(RESOURCE, "presence", "c", ACTIVE)]
    assert tracker.pending == ()


def test_partial_document_updates_by_resource_package_and_id() -> None:
    tracker = WatcherTracker()
    tracker.apply(
        info(
            0,
            FULL,
            presence(watcher("a", PENDING)),
            WatcherList(RESOURCE, "dialog", (watcher("a", PENDING),)),
        )
    )
    tracker.apply(info(1, PARTIAL, presence(watcher("a", ACTIVE), watcher("b", PENDING))))
    assert current(tracker) == [
        (RESOURCE, "presence", "a", ACTIVE),
        (RESOURCE, "presence", "b", PENDING),
        (RESOURCE, "dialog", "a", PENDING),
    ]
    assert tracker.pending == (watcher("a", PENDING), watcher("b", PENDING))


def test_partial_document_removes_terminated_watchers() -> None:
    tracker = WatcherTracker()
    tracker.apply(info(0, FULL, presence(watcher("a", ACTIVE), watcher("b", ACTIVE))))
    tracker.apply(info(1, PARTIAL, presence(watcher("a", WatcherStatus.TERMINATED))))
    assert current(tracker) == [(RESOURCE, "presence", "b", ACTIVE)]


@pytest.mark.parametrize("version", [4, 5])
def test_older_or_equal_versions_are_ignored(version: int) -> None:
    tracker = WatcherTracker()
    tracker.apply(info(5, FULL, presence(watcher("a", ACTIVE))))
    assert tracker.apply(info(version, FULL)) is ApplyResult.STALE
    assert current(tracker) == [(RESOURCE, "presence", "a", ACTIVE)]


def test_version_gap_on_a_partial_document_asks_for_full_state() -> None:
    tracker = WatcherTracker()
    tracker.apply(info(5, FULL, presence(watcher("a", ACTIVE))))
    assert tracker.apply(info(7, PARTIAL, presence(watcher("b", PENDING)))) is (
        ApplyResult.RESYNC_NEEDED
    )
    assert current(tracker) == [(RESOURCE, "presence", "a", ACTIVE)]
    assert tracker.version == 5


def test_reset_starts_a_new_subscription() -> None:
    tracker = WatcherTracker()
    tracker.apply(info(5, FULL, presence(watcher("a", ACTIVE))))
    tracker.reset()
    assert (tracker.version, tracker.watcher_lists) == (None, ())
    assert tracker.apply(info(0, FULL, presence(watcher("b", PENDING)))) is ApplyResult.APPLIED
    assert current(tracker) == [(RESOURCE, "presence", "b", PENDING)]
