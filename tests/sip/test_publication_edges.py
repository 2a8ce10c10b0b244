"""Publishing at the edges: refusals, odd answers, no answers, removing at awkward moments.

Canned presence server answers through the user agent, driven time.
"""

from __future__ import annotations

import pytest

from custom_components.sip_profiles.sip.client import FailureReason
from custom_components.sip_profiles.sip.documents import PresenceState, parse_pidf, summarize
from custom_components.sip_profiles.sip.documents.pidf import MyPresence
from custom_components.sip_profiles.sip.publication import (
    PublicationState,
    PublicationStatus,
)

from .canned import Harness, reply
from .test_publication import published, publishes


def status_of(harness: Harness) -> PublicationStatus:
    return harness.user_agent.publication.status


def started(harness: Harness, presence: MyPresence = MyPresence.BUSY) -> None:
    harness.user_agent.publish(presence, None, harness.now)
    harness.drain()


@pytest.mark.parametrize(
    ("status", "reason"),
    [(403, FailureReason.FORBIDDEN), (415, FailureReason.REJECTED)],
)
def test_final_refusals_stop_publishing(status: int, reason: FailureReason) -> None:
    harness = Harness.create()
    started(harness)
    harness.answer(reply(publishes(harness)[-1], status, "No"))
    failed = status_of(harness)
    assert (failed.state, failed.reason, failed.status_code) == (
        PublicationState.FAILED,
        reason,
        status,
    )
    assert failed.retry_at is None
    harness.advance(7200)
    assert len(publishes(harness)) == 1


def test_unpublishing_before_anything_was_published_sends_nothing() -> None:
    harness = Harness.create()
    harness.user_agent.unpublish(harness.now)
    harness.drain()
    assert status_of(harness) == PublicationStatus(PublicationState.UNPUBLISHED)
    assert publishes(harness) == []


def test_unpublishing_while_the_publish_is_accepted_removes_it_with_its_entity_tag() -> None:
    harness = Harness.create()
    started(harness)
    harness.user_agent.unpublish(harness.now)
    harness.drain()
    assert status_of(harness).state is PublicationState.UNPUBLISHING
    assert len(publishes(harness)) == 1

    harness.answer(reply(publishes(harness)[-1], 200, "OK", "SIP-ETag: e7", "Expires: 600"))

    remove = publishes(harness)[-1]
    assert len(publishes(harness)) == 2
    assert remove.headers.get("Expires") == "0"
    assert remove.headers.get("SIP-If-Match") == "e7"
    assert remove.body == b""
    harness.answer(reply(remove, 200, "OK", "SIP-ETag: e7", "Expires: 0"))
    assert status_of(harness) == PublicationStatus(PublicationState.UNPUBLISHED)


@pytest.mark.parametrize("status", [404, 500])
def test_unpublishing_while_the_publish_is_refused_ends_quietly(status: int) -> None:
    harness = Harness.create()
    started(harness)
    harness.user_agent.unpublish(harness.now)
    harness.drain()
    harness.answer(reply(publishes(harness)[-1], status, "No"))
    assert status_of(harness) == PublicationStatus(PublicationState.UNPUBLISHED)
    harness.advance(7200)
    assert len(publishes(harness)) == 1


def test_unpublishing_while_the_publish_gets_no_answer_ends_quietly() -> None:
    harness = Harness.create()
    started(harness)
    harness.user_agent.unpublish(harness.now)
    harness.drain()
    harness.advance(33)
    assert status_of(harness) == PublicationStatus(PublicationState.UNPUBLISHED)
    harness.advance(7200)
    assert len(publishes(harness)) == 1


def test_412_to_the_removal_counts_as_removed() -> None:
    harness = Harness.create()
    published(harness)
    harness.user_agent.unpublish(harness.now)
    harness.drain()
    harness.answer(reply(publishes(harness)[-1], 412, "Conditional Request Failed"))
    assert status_of(harness) == PublicationStatus(PublicationState.UNPUBLISHED)
    assert harness.user_agent.publication.etag is None


def test_publishing_again_while_the_removal_is_in_flight_publishes_anew_after_it() -> None:
    harness = Harness.create()
    published(harness)
    harness.user_agent.unpublish(harness.now)
    harness.drain()
    remove = publishes(harness)[-1]
    harness.user_agent.publish(MyPresence.AWAY, "back soon", harness.now)
    harness.drain()
    assert publishes(harness)[-1].cseq == remove.cseq  # nothing more until the removal's answer

    harness.answer(reply(remove, 200, "OK", "Expires: 0"))

    anew = publishes(harness)[-1]
    assert anew.cseq.number > remove.cseq.number
    assert anew.headers.get("SIP-If-Match") is None
    assert summarize(parse_pidf(anew.body)) is PresenceState.AWAY
    assert b"back soon" in anew.body
    harness.answer(reply(anew, 200, "OK", "SIP-ETag: e9", "Expires: 600"))
    assert status_of(harness).state is PublicationState.PUBLISHED
    assert harness.user_agent.publication.etag == "e9"


def test_the_status_shows_what_was_published_after_a_removal_in_flight() -> None:
    harness = Harness.create()
    published(harness)
    harness.user_agent.unpublish(harness.now)
    harness.drain()
    remove = publishes(harness)[-1]
    harness.user_agent.publish(MyPresence.AWAY, "back soon", harness.now)
    harness.drain()
    harness.answer(reply(remove, 200, "OK", "Expires: 0"))
    harness.answer(reply(publishes(harness)[-1], 200, "OK", "SIP-ETag: e9", "Expires: 600"))
    status = status_of(harness)
    assert (status.state, status.presence, status.note) == (
        PublicationState.PUBLISHED,
        MyPresence.AWAY,
        "back soon",
    )


def test_a_2xx_with_an_unreadable_expires_keeps_the_expiry_asked_for() -> None:
    harness = Harness.create()
    started(harness)
    harness.answer(reply(publishes(harness)[-1], 200, "OK", "SIP-ETag: e1", "Expires: never"))
    status = status_of(harness)
    assert status.state is PublicationState.PUBLISHED
    assert status.expires == 3600
    assert status.refresh_at == pytest.approx(harness.now + 3240)
