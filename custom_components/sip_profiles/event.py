"""Event entity of a SIP profile: registration problems and recoveries."""

from __future__ import annotations

from typing import Any

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import RECOVERED, SipProfileConfigEntry, SipProfileCoordinator
from .entity import SipProfileEntity

PARALLEL_UPDATES = 0

PROBLEM_TYPES = ("auth_failed", "timeout", "server_error", "rejected")
EVENT_TYPES = [*PROBLEM_TYPES, RECOVERED]

REGISTRATION_EVENT = EventEntityDescription(
    key="registration_event",
    translation_key="registration_event",
    event_types=EVENT_TYPES,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SipProfileConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the event entity of a profile."""
    async_add_entities([SipProfileRegistrationEvent(entry.runtime_data)])


class SipProfileRegistrationEvent(SipProfileEntity, EventEntity):
    """Fires when the registration fails and when it recovers."""

    entity_description = REGISTRATION_EVENT

    def __init__(self, coordinator: SipProfileCoordinator) -> None:
        """Create the event entity."""
        super().__init__(coordinator, REGISTRATION_EVENT.key)

    async def async_added_to_hass(self) -> None:
        """Listen to the coordinator's problems and recoveries.

        A problem fired before a reload or restart is the outage still under way: its
        ``recovered`` is owed once the profile registers.
        """
        await super().async_added_to_hass()
        self.async_on_remove(self.coordinator.async_add_problem_listener(self._async_problem))
        last = await self.async_get_last_event_data()
        if last is not None and last.last_event_type in PROBLEM_TYPES:
            self.coordinator.async_continue_outage(last.last_event_type)

    @callback
    def _async_problem(self, event_type: str, attributes: dict[str, Any]) -> None:
        self._trigger_event(event_type, attributes)
        self.async_write_ha_state()
