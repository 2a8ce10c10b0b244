"""What the line tells in Home Assistant: calls, voicemail waiting, messages (real Kamailio)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
import logging
from typing import Any

from homeassistant.const import (
    ATTR_CONFIG_ENTRY_ID,
    EVENT_STATE_REPORTED,
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
)
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sip_profiles.const import (
    CONF_AOR,
    CONF_EXPIRES,
    CONF_KEEPALIVE,
    CONF_REGISTRAR,
    CONF_SHOW_CALLS,
    CONF_VOICEMAIL_URI,
    DOMAIN,
)
from custom_components.sip_profiles.sip.documents.message_summary import (
    MESSAGE_SUMMARY,
    MessageCounts,
    MessageSummary,
    build_message_summary,
)
from tests.harness.caller import Call, open_peer, unsolicited_notify
from tests.harness.kamailio import KamailioServer
from tests.harness.publisher import raw_publish

from .helpers import no_stale_bindings, setup_entry, wait_for  # noqa: F401 - fixtures
from .presence import add_buddy

CALLS = "event.sip_alice_sip_test_calls"
RINGING = "binary_sensor.sip_alice_sip_test_ringing"
VOICEMAIL = "sensor.sip_alice_sip_test_voicemail"
VOICEMAIL_SUBSCRIPTION = "sensor.sip_alice_sip_test_voicemail_subscription"
BOB_EVENT = "event.sip_bob_sip_test_registration_event"
DAVE_VOICEMAIL = "sensor.sip_dave_sip_test_voicemail"
DAVE_EVENT = "event.sip_dave_sip_test_registration_event"


def line_entry(
    profile_data: Callable[..., dict[str, Any]], user: str = "alice", **options: Any
) -> MockConfigEntry:
    data = profile_data(user)
    return MockConfigEntry(
        domain=DOMAIN,
        title=data[CONF_AOR],
        unique_id=f"{data[CONF_AOR]}|{data[CONF_REGISTRAR]}",
        data=data,
        options=options,
    )


def state(hass: HomeAssistant, entity_id: str) -> str | None:
    current = hass.states.get(entity_id)
    return current.state if current is not None else None


def attributes(hass: HomeAssistant, entity_id: str) -> dict[str, Any]:
    current = hass.states.get(entity_id)
    assert current is not None
    return dict(current.attributes)


async def test_ringing_call_is_shown_and_declined_with_603(
    hass: HomeAssistant,
    profile_data: Callable[..., dict[str, Any]],
    kamailio_clean: KamailioServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    entry = line_entry(profile_data, **{CONF_SHOW_CALLS: True})
    await setup_entry(hass, entry)
    assert state(hass, RINGING) == STATE_OFF
    rewritten: list[str] = []

    @callback
    def of_voicemail(event_data: Mapping[str, Any]) -> bool:
        return event_data["entity_id"] in (VOICEMAIL, VOICEMAIL_SUBSCRIPTION)

    @callback
    def record_unchanged_write(event: Event[Any]) -> None:
        rewritten.append(event.data["entity_id"])

    hass.bus.async_listen(EVENT_STATE_REPORTED, record_unchanged_write, event_filter=of_voicemail)
    async with open_peer() as peer:
        call = Call(peer, kamailio_clean, "alice")
        call.invite()
        await peer.response("INVITE", 180)
        await wait_for(hass, lambda: state(hass, RINGING) == STATE_ON)
        assert attributes(hass, RINGING) | {"friendly_name": None} == {
            "friendly_name": None,
            "calls": 1,
            "call_id": call.call_id,
            "caller_number": "door",
            "caller_name": "Front Door",
            "called": "sip:alice@sip.test",
        }
        incoming = attributes(hass, CALLS)
        assert (incoming["event_type"], incoming["caller_number"]) == ("incoming_call", "door")

        await hass.services.async_call(
            DOMAIN, "decline_call", {ATTR_CONFIG_ENTRY_ID: entry.entry_id}, blocking=True
        )
        call.ack(await peer.response("INVITE", 603))
    await wait_for(hass, lambda: state(hass, RINGING) == STATE_OFF)
    declined = attributes(hass, CALLS)
    assert (declined["event_type"], declined["call_id"]) == ("declined", call.call_id)
    # The call changed what the ringing sensor shows, and nothing the voicemail sensors show.
    assert rewritten == []
    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call(
            DOMAIN, "decline_call", {ATTR_CONFIG_ENTRY_ID: entry.entry_id}, blocking=True
        )
    assert raised.value.translation_key == "no_ringing_call"
    # Nothing about the call above debug.
    assert not [
        record
        for record in caplog.records
        if record.levelno > logging.DEBUG and call.call_id in record.getMessage()
    ]
    assert not [r for r in caplog.records if r.levelno > logging.DEBUG and "door" in r.getMessage()]


@pytest.mark.parametrize(
    ("reason", "event_type"),
    [('SIP;cause=200;text="Call completed elsewhere"', "answered_elsewhere"), (None, "missed")],
)
async def test_cancelled_call(
    hass: HomeAssistant,
    profile_data: Callable[..., dict[str, Any]],
    kamailio_clean: KamailioServer,
    reason: str | None,
    event_type: str,
) -> None:
    await setup_entry(hass, line_entry(profile_data, **{CONF_SHOW_CALLS: True}))
    async with open_peer() as peer:
        call = Call(peer, kamailio_clean, "alice")
        call.invite()
        await wait_for(hass, lambda: state(hass, RINGING) == STATE_ON)
        call.cancel(reason)
        call.ack(await peer.response("INVITE", 487))
    await wait_for(hass, lambda: state(hass, RINGING) == STATE_OFF)
    assert attributes(hass, CALLS)["event_type"] == event_type


async def test_calls_not_shown_are_refused_with_480(
    hass: HomeAssistant,
    profile_data: Callable[..., dict[str, Any]],
    kamailio_clean: KamailioServer,
) -> None:
    await setup_entry(hass, line_entry(profile_data))
    assert state(hass, RINGING) == STATE_UNAVAILABLE
    assert state(hass, CALLS) == STATE_UNAVAILABLE
    async with open_peer() as peer:
        call = Call(peer, kamailio_clean, "alice")
        call.invite()
        call.ack(await peer.response("INVITE", 480))


def publish_summary(server: KamailioServer, user: str, summary: MessageSummary) -> None:
    """PUBLISH a message summary for ``user``, as a voicemail server does (blocking)."""
    raw_publish(
        server,
        user,
        build_message_summary(summary).decode(),
        event="message-summary",
        content_type=MESSAGE_SUMMARY,
    )


async def test_voicemail_counts_and_the_voicemail_event(
    hass: HomeAssistant,
    profile_data: Callable[..., dict[str, Any]],
    kamailio_clean: KamailioServer,
) -> None:
    # Dave's mailbox: published summaries outlive the test at the server, and other tests
    # snapshot Alice's voicemail sensor.
    await setup_entry(hass, line_entry(profile_data, "dave"))
    # Nothing published yet: the server's NOTIFY has an empty body, an empty mailbox.
    await wait_for(hass, lambda: state(hass, DAVE_VOICEMAIL) == "0")
    assert state(hass, DAVE_EVENT) == "unknown"
    account = kamailio_clean.aor("dave")
    first = MessageSummary(True, account, MessageCounts(1, 4))
    await hass.async_add_executor_job(publish_summary, kamailio_clean, "dave", first)
    await wait_for(hass, lambda: state(hass, DAVE_VOICEMAIL) == "1")
    event = attributes(hass, DAVE_EVENT)
    assert (event["event_type"], event["new_messages"]) == ("voicemail", 1)

    more = MessageSummary(True, account, MessageCounts(3, 4, 1, 0))
    await hass.async_add_executor_job(publish_summary, kamailio_clean, "dave", more)
    await wait_for(hass, lambda: state(hass, DAVE_VOICEMAIL) == "3")
    assert attributes(hass, DAVE_VOICEMAIL) | {
        "friendly_name": None,
        "unit_of_measurement": None,
    } == {
        "friendly_name": None,
        "unit_of_measurement": None,
        "new_messages": 3,
        "old_messages": 4,
        "new_urgent_messages": 1,
        "old_urgent_messages": 0,
        "message_account": account,
    }
    event = attributes(hass, DAVE_EVENT)
    assert (event["event_type"], event["new_messages"]) == ("voicemail", 3)

    # After a reload the first summary is what was already waiting: not news.
    fired_at = state(hass, DAVE_EVENT)
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(hass, lambda: state(hass, DAVE_VOICEMAIL) == "3")
    assert state(hass, DAVE_EVENT) == fired_at


async def test_voicemail_from_a_notify_without_subscription(
    hass: HomeAssistant,
    profile_data: Callable[..., dict[str, Any]],
    kamailio_clean: KamailioServer,
) -> None:
    await setup_entry(hass, line_entry(profile_data))
    body = build_message_summary(MessageSummary(True, None, MessageCounts(2, 0)))
    async with open_peer() as peer:
        peer.send(
            unsolicited_notify(peer, kamailio_clean.aor("alice"), body),
            kamailio_clean.address("udp"),
        )
        await peer.response("NOTIFY", 200)
    await wait_for(hass, lambda: state(hass, VOICEMAIL) == "2")


async def test_voicemail_not_offered_is_shown_not_warned(
    hass: HomeAssistant,
    profile_data: Callable[..., dict[str, Any]],
    kamailio_clean: KamailioServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kamailio_clean.set_no_mwi(True)
    await setup_entry(hass, line_entry(profile_data))
    await wait_for(hass, lambda: state(hass, VOICEMAIL_SUBSCRIPTION) == "not_offered")
    assert attributes(hass, VOICEMAIL_SUBSCRIPTION)["status_code"] == 489
    assert state(hass, VOICEMAIL) == "unknown"
    assert not [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("custom_components.sip_profiles")
    ]


async def test_voicemail_address_from_the_options(
    hass: HomeAssistant,
    profile_data: Callable[..., dict[str, Any]],
    kamailio_clean: KamailioServer,
) -> None:
    mailbox = kamailio_clean.aor("carol")
    await setup_entry(hass, line_entry(profile_data, **{CONF_VOICEMAIL_URI: mailbox}))
    await wait_for(hass, lambda: state(hass, VOICEMAIL_SUBSCRIPTION) == "active")
    assert attributes(hass, VOICEMAIL_SUBSCRIPTION)["uri"] == mailbox
    summary = MessageSummary(True, mailbox, MessageCounts(5, 0))
    await hass.async_add_executor_job(publish_summary, kamailio_clean, "carol", summary)
    await wait_for(hass, lambda: state(hass, VOICEMAIL) == "5")


async def test_messages_between_two_profiles_and_a_failed_one(
    hass: HomeAssistant,
    profile_data: Callable[..., dict[str, Any]],
    kamailio_clean: KamailioServer,
) -> None:
    alice = line_entry(profile_data)
    await setup_entry(hass, alice)
    await setup_entry(hass, line_entry(profile_data, "bob"))
    await add_buddy(hass, alice, kamailio_clean.aor("bob"), "Bob")
    await add_buddy(hass, alice, "nobody@sip.test", "Nobody")
    await hass.async_block_till_done()

    await hass.services.async_call(
        "notify",
        "send_message",
        {"entity_id": "notify.bob_message", "title": "Door", "message": "The door is open"},
        blocking=True,
    )
    await wait_for(hass, lambda: state(hass, BOB_EVENT) not in (None, "unknown"))
    received = attributes(hass, BOB_EVENT)
    assert received["event_type"] == "message_received"
    assert (received["sender"], received["text"]) == (
        kamailio_clean.aor("alice"),
        "Door\nThe door is open",
    )
    assert received["truncated"] is False

    with pytest.raises(HomeAssistantError) as raised:
        await hass.services.async_call(
            "notify",
            "send_message",
            {"entity_id": "notify.nobody_message", "message": "hello?"},
            blocking=True,
        )
    assert raised.value.translation_key == "message_failed"
    assert raised.value.translation_placeholders == {
        "uri": "sip:nobody@sip.test",
        "reason": "404 Not Found",
    }


async def test_options_show_calls_and_voicemail_address(
    hass: HomeAssistant,
    profile_data: Callable[..., dict[str, Any]],
    kamailio_clean: KamailioServer,
) -> None:
    entry = line_entry(profile_data)
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    base = {CONF_EXPIRES: 3600, CONF_KEEPALIVE: 30}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**base, CONF_SHOW_CALLS: True, CONF_VOICEMAIL_URI: "not a uri@"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_VOICEMAIL_URI: "invalid_voicemail_uri"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**base, CONF_SHOW_CALLS: True, CONF_VOICEMAIL_URI: "vm@sip.test"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        **base,
        CONF_SHOW_CALLS: True,
        CONF_VOICEMAIL_URI: "sip:vm@sip.test",
    }
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(result["flow_id"], base)
    assert entry.options == base  # calls off and the account's own mailbox: nothing stored
