"""A buddy's sensors are set up through their base classes like every other entity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest.mock import patch

from homeassistant.components.sensor import SensorEntity
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sip_profiles.const import CONF_AOR, DOMAIN
from tests.harness.kamailio import KamailioServer

from .helpers import no_stale_bindings, setup_entry  # noqa: F401 - fixture


async def test_buddy_sensors_run_their_base_class_set_up(
    hass: HomeAssistant,
    profile_data: Callable[..., dict[str, Any]],
    kamailio_clean: KamailioServer,
) -> None:
    data = profile_data()
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=data[CONF_AOR],
        data=data,
        subentries_data=[
            ConfigSubentryData(
                data={"uri": "sip:bob@sip.test", "name": "Bob", "watch": "presence"},
                subentry_type="buddy",
                title="Bob",
                unique_id="presence|sip:bob@sip.test",
            )
        ],
    )
    added: list[str] = []
    base = SensorEntity.async_added_to_hass

    async def spy(self: SensorEntity) -> None:
        added.append(self.entity_id)
        await base(self)

    with patch.object(SensorEntity, "async_added_to_hass", spy):
        await setup_entry(hass, entry)
    assert "sensor.bob_presence" in added
