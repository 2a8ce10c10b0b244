"""Our own presence: the select and the note publish it, watchers see it and are listed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.select import ATTR_OPTION, SERVICE_SELECT_OPTION
from homeassistant.components.text import ATTR_VALUE, SERVICE_SET_VALUE
from homeassistant.const import ATTR_ENTITY_ID, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant, State
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, mock_restore_cache
from syrupy.assertion import SnapshotAssertion

from custom_components.sip_profiles.const import (
    CONF_EXPIRES,
    CONF_KEEPALIVE,
    CONF_PUBLISH_PRESENCE,
    DOMAIN,
)
from custom_components.sip_profiles.sip.documents import PresenceState
from custom_components.sip_profiles.sip.publication import PublicationState
from tests.harness.kamailio import KamailioServer

from .helpers import (  # noqa: F401 - fixtures
    FIXED_ENTRY_ID,
    FROZEN_AT,
    no_stale_bindings,
    setup_entry,
    wait_for,
)
from .presence import watching

SELECT = "select.sip_alice_sip_test_my_presence"
NOTE = "text.sip_alice_sip_test_presence_note"
WATCHERS = "sensor.sip_alice_sip_test_watchers"
PUBLISHING = {CONF_EXPIRES: 3600, CONF_KEEPALIVE: 30, CONF_PUBLISH_PRESENCE: True}


def publishing_entry(make_entry: Callable[..., MockConfigEntry], **kwargs: Any) -> MockConfigEntry:
    """A profile that publishes its presence."""
    entry = make_entry()
    return MockConfigEntry(
        domain=DOMAIN,
        title=entry.title,
        unique_id=entry.unique_id,
        data=dict(entry.data),
        options=PUBLISHING,
        **kwargs,
    )


def published(entry: MockConfigEntry) -> bool:
    """Whether the profile's presence is published."""
    publication = entry.runtime_data.data.publication
    return publication is not None and publication.state is PublicationState.PUBLISHED


async def test_select_and_note_reach_a_watcher_and_unload_unpublishes(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    entry = publishing_entry(make_entry)
    await setup_entry(hass, entry)
    await wait_for(hass, lambda: published(entry))
    assert hass.states.get(SELECT).state == "available"
    assert hass.states.get(SELECT).attributes["publication_state"] == "published"
    assert hass.states.get(NOTE).state == ""

    async with watching(hass, kamailio_clean, "bob", "alice") as (bob, key):
        await wait_for(hass, lambda: bob.presence(key) == (PresenceState.ONLINE, None))
        # Bob shows up among our watchers.
        await wait_for(hass, lambda: hass.states.get(WATCHERS).state == "1")
        assert hass.states.get(WATCHERS).attributes["watchers"] == [
            {"uri": "sip:bob@sip.test", "status": "active", "display_name": None}
        ]

        await hass.services.async_call(
            "select", SERVICE_SELECT_OPTION, {ATTR_ENTITY_ID: SELECT, ATTR_OPTION: "busy"}, True
        )
        await wait_for(hass, lambda: bob.presence(key) == (PresenceState.BUSY, None))
        await hass.services.async_call(
            "text", SERVICE_SET_VALUE, {ATTR_ENTITY_ID: NOTE, ATTR_VALUE: "In a meeting"}, True
        )
        await wait_for(hass, lambda: bob.presence(key) == (PresenceState.BUSY, "In a meeting"))
        await hass.services.async_call(
            "select",
            SERVICE_SELECT_OPTION,
            {ATTR_ENTITY_ID: SELECT, ATTR_OPTION: "do_not_disturb"},
            True,
        )
        await wait_for(
            hass, lambda: bob.presence(key) == (PresenceState.DO_NOT_DISTURB, "In a meeting")
        )
        assert hass.states.get(SELECT).state == "do_not_disturb"
        assert hass.states.get(NOTE).state == "In a meeting"

        with pytest.raises(ServiceValidationError):
            await hass.services.async_call(
                "text", SERVICE_SET_VALUE, {ATTR_ENTITY_ID: NOTE, ATTR_VALUE: "bell \x07"}, True
            )
        assert hass.states.get(NOTE).state == "In a meeting"

        count = len(bob.notifies(key))
        assert await hass.config_entries.async_unload(entry.entry_id)
        # The publication was removed: the watcher's next NOTIFY no longer shows it.
        await wait_for(hass, lambda: len(bob.notifies(key)) > count)
        assert bob.presence(key)[0] is not PresenceState.DO_NOT_DISTURB
    assert hass.states.get(SELECT).state == STATE_UNAVAILABLE


async def test_last_choice_is_restored_and_published(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    mock_restore_cache(hass, [State(SELECT, "away"), State(NOTE, "Back at three")])
    entry = publishing_entry(make_entry)
    await setup_entry(hass, entry)
    assert hass.states.get(SELECT).state == "away"
    assert hass.states.get(NOTE).state == "Back at three"
    await wait_for(hass, lambda: published(entry))
    async with watching(hass, kamailio_clean, "bob", "alice") as (bob, key):
        await wait_for(hass, lambda: bob.presence(key) == (PresenceState.AWAY, "Back at three"))
    messages = entry.runtime_data.messages
    publishes = [m for m in messages if m.direction == "out" and m.text.startswith("PUBLISH ")]
    assert "<rpid:away/>" in publishes[0].text  # the first PUBLISH already carried the choice


async def test_disabling_the_profile_unpublishes(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    entry = publishing_entry(make_entry)
    coordinator = await setup_entry(hass, entry)
    await wait_for(hass, lambda: published(entry))
    coordinator.async_disable()
    await wait_for(
        hass,
        lambda: entry.runtime_data.data.publication.state is PublicationState.UNPUBLISHED,
    )
    assert hass.states.get(WATCHERS).state == STATE_UNAVAILABLE
    coordinator.async_enable()
    await wait_for(hass, lambda: published(entry))
    await wait_for(hass, lambda: hass.states.get(WATCHERS).state not in (STATE_UNAVAILABLE,))


async def test_without_publishing_there_are_no_presence_entities(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    entry = publishing_entry(make_entry)
    await setup_entry(hass, entry)
    assert entity_registry.async_get(SELECT) is not None
    # Publishing switched off in the options: the entities go, nothing is published.
    hass.config_entries.async_update_entry(entry, options={CONF_EXPIRES: 3600, CONF_KEEPALIVE: 30})
    await hass.async_block_till_done()
    await wait_for(hass, lambda: hass.states.get(SELECT) is None)
    for entity_id in (SELECT, NOTE, WATCHERS):
        assert entity_registry.async_get(entity_id) is None
    assert entry.runtime_data.data.publication is None
    assert not any(m.text.startswith("PUBLISH ") for m in entry.runtime_data.messages)


async def test_presence_entities(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(FROZEN_AT)
    entry = publishing_entry(make_entry, entry_id=FIXED_ENTRY_ID)
    await setup_entry(hass, entry)
    await wait_for(hass, lambda: published(entry))
    await wait_for(hass, lambda: hass.states.get(WATCHERS).state == "0")
    for entity_id in (SELECT, NOTE, WATCHERS):
        entity_entry = entity_registry.async_get(entity_id)
        assert entity_entry is not None
        assert entity_entry == snapshot(name=f"{entity_id}-entry")
        current = hass.states.get(entity_id)
        assert current is not None
        assert {"state": current.state, "attributes": dict(current.attributes)} == snapshot(
            name=f"{entity_id}-state"
        )
