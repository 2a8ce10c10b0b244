"""The binary sensor: on while the profile is registered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_OFF, STATE_ON, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from tests.harness.kamailio import KamailioServer

from .helpers import (  # noqa: F401 - fixtures
    FROZEN_AT,
    fixed_entry,
    no_stale_bindings,
    setup_entry,
    snapshot_entities,
    wait_for,
)

REGISTERED = "binary_sensor.sip_alice_sip_test_registrar_connection"


@pytest.fixture(autouse=True)
def only_binary_sensors() -> Any:
    """Set up the binary sensor platform alone."""
    with patch("custom_components.sip_profiles.PLATFORMS", [Platform.BINARY_SENSOR]):
        yield


async def test_binary_sensor(
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


async def test_off_while_unregistered(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    coordinator = await setup_entry(hass, make_entry())
    assert hass.states.get(REGISTERED).state == STATE_ON
    coordinator.async_disable()
    await wait_for(hass, lambda: hass.states.get(REGISTERED).state == STATE_OFF)
    coordinator.async_enable()
    await wait_for(hass, lambda: hass.states.get(REGISTERED).state == STATE_ON)


async def test_existing_installs_keep_their_entity_id(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    """The entity was once named "Registered": its registered entity id stays for automations."""
    entry = make_entry()
    entry.add_to_hass(hass)
    entity_registry.async_get_or_create(
        "binary_sensor",
        "sip_profiles",
        f"{entry.entry_id}_registered",
        config_entry=entry,
        suggested_object_id="sip_alice_sip_test_registered",
    )
    await setup_entry(hass, entry)
    state = hass.states.get("binary_sensor.sip_alice_sip_test_registered")
    assert state is not None
    assert state.state == STATE_ON
    assert state.attributes["friendly_name"] == "sip:alice@sip.test Registrar connection"
    assert hass.states.get(REGISTERED) is None
