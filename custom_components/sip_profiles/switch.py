"""Switch of a SIP profile: whether it is kept registered."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import SipProfileConfigEntry, SipProfileCoordinator
from .entity import SipProfileEntity

PARALLEL_UPDATES = 0

REGISTRATION_ENABLED = SwitchEntityDescription(
    key="registration_enabled",
    translation_key="registration_enabled",
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SipProfileConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the switch of a profile."""
    async_add_entities([SipProfileEnabledSwitch(entry.runtime_data)])


class SipProfileEnabledSwitch(SipProfileEntity, SwitchEntity):
    """On: the profile registers and stays registered; off: it unregisters."""

    entity_description = REGISTRATION_ENABLED

    def __init__(self, coordinator: SipProfileCoordinator) -> None:
        """Create the switch."""
        super().__init__(coordinator, REGISTRATION_ENABLED.key)

    @property
    def is_on(self) -> bool:
        """Whether the profile is kept registered."""
        return self.coordinator.data.enabled

    async def async_turn_on(self, **kwargs: Any) -> None:  # noqa: ARG002
        """Register and keep the registration up."""
        self.coordinator.async_enable()

    async def async_turn_off(self, **kwargs: Any) -> None:  # noqa: ARG002
        """Unregister."""
        self.coordinator.async_disable()
