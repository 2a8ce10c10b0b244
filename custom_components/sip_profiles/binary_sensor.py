"""Binary sensors of a SIP profile: whether the registrar holds its binding, whether a call rings.

The registration sensor tells how the registration is doing in words; this one is the yes/no
for automations and connectivity cards, and sits with the diagnostic entities so that the
device page does not show the same fact twice side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import SipProfileConfigEntry, SipProfileCoordinator
from .entity import SipLineEntity, SipProfileEntity
from .line import call_attributes
from .sip.registration import RegistrationState

PARALLEL_UPDATES = 0

REGISTERED = BinarySensorEntityDescription(
    key="registered",
    translation_key="registered",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SipProfileConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the binary sensor of a profile."""
    async_add_entities(
        [
            SipProfileRegisteredSensor(entry.runtime_data),
            SipProfileRingingSensor(entry.runtime_data),
        ]
    )


class SipProfileRegisteredSensor(SipProfileEntity, BinarySensorEntity):
    """On while the registrar holds the profile's binding."""

    entity_description = REGISTERED

    def __init__(self, coordinator: SipProfileCoordinator) -> None:
        """Create the binary sensor."""
        super().__init__(coordinator, REGISTERED.key)

    @property
    def is_on(self) -> bool:
        """Whether the profile is registered."""
        return self.coordinator.data.status.state is RegistrationState.REGISTERED


RINGING = BinarySensorEntityDescription(key="ringing", translation_key="ringing")


class SipProfileRingingSensor(SipLineEntity, BinarySensorEntity):
    """On while a call to the profile rings (available while calls are shown)."""

    entity_description = RINGING

    @property
    def available(self) -> bool:
        """Calls are shown only when the option is on."""
        return super().available and self.coordinator.line.show_calls

    @property
    def is_on(self) -> bool:
        """Whether a call rings."""
        return bool(self.coordinator.line.ringing)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any]:
        """Who calls (the newest ringing call), and how many ring."""
        ringing = self.coordinator.line.ringing
        newest = call_attributes(ringing[-1]) if ringing else {}
        return {"calls": len(ringing), **newest}
