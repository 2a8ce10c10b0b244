"""Publishing our presence through the user agent, with canned answers and driven time."""

from __future__ import annotations

import pytest

from custom_components.sip_profiles.sip.client import FailureReason
from custom_components.sip_profiles.sip.documents import PresenceState, parse_pidf, summarize
from custom_components.sip_profiles.sip.documents.pidf import MyPresence
from custom_components.sip_profiles.sip.errors import LocalProtocolError
from custom_components.sip_profiles.sip.message import Request
from custom_components.sip_profiles.sip.publication import (
    PublicationChanged,
    PublicationState,
)

from .canned import CHALLENGE, Harness, reply


def publishes(harness: Harness) -> list[Request]:
    seen: dict[str, Request] = {}
    for request in harness.requests():
        if request.method == "PUBLISH":
            seen.setdefault(request.top_via.branch or "", request)
    return list(seen.values())


def published(harness: Harness, etag: str = "e1", expires: int = 600) -> Request:
    """PUBLISH available -> 401 -> PUBLISH -> 200 with an entity-tag."""
    harness.user_agent.publish(MyPresence.AVAILABLE, "Here", harness.now)
    harness.drain()
    harness.answer(
        reply(harness.last_request(), 401, "Unauthorized", f"WWW-Authenticate: {CHALLENGE}")
    )
    request = harness.last_request()
    harness.answer(reply(request, 200, "OK", f"SIP-ETag: {etag}", f"Expires: {expires}"))
    return request


def test_publish_sends_the_document_and_keeps_the_entity_tag() -> None:
    harness = Harness.create()
    request = published(harness)
    first = publishes(harness)[0]
    assert str(first.uri) == "sip:alice@sip.test"
    assert first.headers.get("Event") == "presence"
    assert first.headers.get("Content-Type") == "application/pidf+xml"
    assert first.headers.get("SIP-If-Match") is None
    assert first.headers.get("Expires") == "3600"
    assert summarize(parse_pidf(request.body)) is PresenceState.ONLINE
    assert "Authorization" in request.headers
    status = harness.user_agent.publication.status
    assert status.state is PublicationState.PUBLISHED
    assert status.presence is MyPresence.AVAILABLE
    assert status.note == "Here"
    assert status.refresh_at == pytest.approx(harness.now + 540)
    assert harness.user_agent.publication.etag == "e1"
    assert any(isinstance(e, PublicationChanged) for e in harness.events)


def test_refresh_carries_the_entity_tag_and_no_body() -> None:
    harness = Harness.create()
    published(harness)
    harness.advance(539)
    assert len(publishes(harness)) == 2
    harness.advance(1)
    refresh = publishes(harness)[-1]
    assert refresh.headers.get("SIP-If-Match") == "e1"
    assert refresh.body == b""
    assert "Content-Type" not in refresh.headers
    harness.answer(reply(refresh, 200, "OK", "SIP-ETag: e2", "Expires: 600"))
    assert harness.user_agent.publication.etag == "e2"
    harness.advance(540)
    assert publishes(harness)[-1].headers.get("SIP-If-Match") == "e2"


def test_a_new_state_is_published_with_the_entity_tag_and_a_body() -> None:
    harness = Harness.create()
    published(harness)
    harness.user_agent.publish(MyPresence.BUSY, None, harness.now)
    harness.drain()
    assert harness.user_agent.publication.status.refresh_at is None  # until it is accepted
    change = publishes(harness)[-1]
    assert change.headers.get("SIP-If-Match") == "e1"
    assert summarize(parse_pidf(change.body)) is PresenceState.BUSY
    harness.answer(reply(change, 200, "OK", "SIP-ETag: e3", "Expires: 600"))
    assert harness.user_agent.publication.status.presence is MyPresence.BUSY


def test_a_state_chosen_while_a_publish_is_in_flight_follows_its_answer() -> None:
    harness = Harness.create()
    published(harness)
    harness.user_agent.publish(MyPresence.AWAY, None, harness.now)
    harness.user_agent.publish(MyPresence.DO_NOT_DISTURB, None, harness.now)
    harness.drain()
    assert len(publishes(harness)) == 3
    harness.answer(reply(publishes(harness)[-1], 200, "OK", "SIP-ETag: e4"))
    last = publishes(harness)[-1]
    assert len(publishes(harness)) == 4
    assert last.headers.get("SIP-If-Match") == "e4"
    assert summarize(parse_pidf(last.body)) is PresenceState.DO_NOT_DISTURB


def test_412_publishes_the_document_anew_without_the_entity_tag() -> None:
    harness = Harness.create()
    published(harness)
    harness.advance(540)
    harness.answer(reply(publishes(harness)[-1], 412, "Conditional Request Failed"))
    anew = publishes(harness)[-1]
    assert anew.headers.get("SIP-If-Match") is None
    assert summarize(parse_pidf(anew.body)) is PresenceState.ONLINE
    harness.answer(reply(anew, 200, "OK", "SIP-ETag: e9", "Expires: 600"))
    assert harness.user_agent.publication.state is PublicationState.PUBLISHED
    assert harness.user_agent.publication.etag == "e9"


def test_remove_sends_expires_zero_with_the_entity_tag() -> None:
    harness = Harness.create()
    published(harness)
    harness.user_agent.unpublish(harness.now)
    harness.drain()
    remove = publishes(harness)[-1]
    assert remove.headers.get("Expires") == "0"
    assert remove.headers.get("SIP-If-Match") == "e1"
    assert remove.body == b""
    assert harness.user_agent.publication.state is PublicationState.UNPUBLISHING
    harness.answer(reply(remove, 200, "OK", "Expires: 0"))
    assert harness.user_agent.publication.state is PublicationState.UNPUBLISHED
    assert harness.user_agent.publication.etag is None
    harness.advance(7200)
    assert len(publishes(harness)) == 3


def test_489_stops() -> None:
    harness = Harness.create()
    harness.user_agent.publish(MyPresence.AVAILABLE, None, harness.now)
    harness.drain()
    harness.answer(reply(publishes(harness)[-1], 500, "Server Error"))
    harness.advance(30)
    assert len(publishes(harness)) == 2
    harness.answer(reply(publishes(harness)[-1], 489, "Bad Event"))
    status = harness.user_agent.publication.status
    assert status.reason is FailureReason.NOT_OFFERED
    assert status.retry_at is None
    harness.advance(7200)
    assert len(publishes(harness)) == 2


def test_a_note_xml_cannot_carry_is_refused_and_nothing_changes() -> None:
    harness = Harness.create()
    with pytest.raises(LocalProtocolError):
        harness.user_agent.publish(MyPresence.AWAY, "bell \x07", harness.now)
    harness.drain()
    assert publishes(harness) == []
    assert harness.user_agent.publication.state is PublicationState.UNPUBLISHED
