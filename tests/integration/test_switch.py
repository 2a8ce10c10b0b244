"""The switch: whether the profile is kept registered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.switch import DOMAIN as SWITCH_DOMAIN
from homeassistant.const import (
    ATTR_ENTITY_ID,
    SERVICE_TURN_OFF,
    SERVICE_TURN_ON,
    STATE_OFF,
    STATE_ON,
    Platform,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.sip_profiles.const import CONF_ENABLED
from custom_components.sip_profiles.sip.registration import RegistrationState
from tests.harness.kamailio import KamailioServer

from .helpers import (  # noqa: F401 - fixtures
    FROZEN_AT,
    fixed_entry,
    no_stale_bindings,
    setup_entry,
    snapshot_entities,
    state_of,
    wait_for,
)

SWITCH = "switch.sip_alice_sip_test_registration_enabled"


@pytest.fixture(autouse=True)
def only_switches() -> Any:
    """Set up the switch platform alone."""
    with patch("custom_components.sip_profiles.PLATFORMS", [Platform.SWITCH]):
        yield


async def test_switch(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    profile_data: Callable[..., dict[str, Any]],
    kamailio_clean: KamailioServer,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(FROZEN_AT)
    entry = fixed_entry(profile_data)
    await setup_entry(hass, entry)
    snapshot_entities(hass, entity_registry, snapshot, entry.entry_id)


async def test_off_unregisters_and_on_registers_again(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    entry = make_entry()
    coordinator = await setup_entry(hass, entry)
    assert hass.states.get(SWITCH).state == STATE_ON
    assert len(kamailio_clean.bindings("alice")) == 1

    await hass.services.async_call(
        SWITCH_DOMAIN, SERVICE_TURN_OFF, {ATTR_ENTITY_ID: SWITCH}, blocking=True
    )
    assert hass.states.get(SWITCH).state == STATE_OFF
    await wait_for(hass, lambda: state_of(coordinator) is RegistrationState.UNREGISTERED)
    assert coordinator.data.state == "disabled"
    assert kamailio_clean.bindings("alice") == []
    assert entry.data[CONF_ENABLED] is False

    await hass.services.async_call(
        SWITCH_DOMAIN, SERVICE_TURN_ON, {ATTR_ENTITY_ID: SWITCH}, blocking=True
    )
    assert hass.states.get(SWITCH).state == STATE_ON
    await wait_for(hass, lambda: state_of(coordinator) is RegistrationState.REGISTERED)
    assert len(kamailio_clean.bindings("alice")) == 1
    assert entry.data[CONF_ENABLED] is True


async def test_switched_off_stays_off_after_reload(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    entry = make_entry()
    await setup_entry(hass, entry)
    await hass.services.async_call(
        SWITCH_DOMAIN, SERVICE_TURN_OFF, {ATTR_ENTITY_ID: SWITCH}, blocking=True
    )
    await wait_for(hass, lambda: kamailio_clean.bindings("alice") == [])
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(SWITCH).state == STATE_OFF
    assert kamailio_clean.bindings("alice") == []
