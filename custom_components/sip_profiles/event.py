"""Event entities of a SIP profile: registration, voicemail and messages; incoming calls."""

from __future__ import annotations

from typing import Any

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import RECOVERED, SipProfileConfigEntry, SipProfileCoordinator
from .entity import SipProfileEntity
from .line import CALL_EVENTS, MESSAGE_RECEIVED, VOICEMAIL

PARALLEL_UPDATES = 0

PROBLEM_TYPES = ("auth_failed", "timeout", "server_error", "rejected")
EVENT_TYPES = [*PROBLEM_TYPES, RECOVERED, VOICEMAIL, MESSAGE_RECEIVED]

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
    async_add_entities(
        [SipProfileRegistrationEvent(entry.runtime_data), SipProfileCallsEvent(entry.runtime_data)]
    )


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
        self.async_on_remove(self.coordinator.line.async_add_profile_listener(self._async_problem))
        last = await self.async_get_last_event_data()
        if last is not None and last.last_event_type in PROBLEM_TYPES:
            self.coordinator.async_continue_outage(last.last_event_type)

    @callback
    def _async_problem(self, event_type: str, attributes: dict[str, Any]) -> None:
        self._trigger_event(event_type, attributes)
        self.async_write_ha_state()


CALLS_EVENT = EventEntityDescription(key="calls", translation_key="calls", event_types=CALL_EVENTS)


class SipProfileCallsEvent(SipProfileEntity, EventEntity):
    """Fires when a call starts ringing and when it stops (answered elsewhere, missed, declined).

    Available while the profile shows incoming calls (an option).
    """

    entity_description = CALLS_EVENT

    def __init__(self, coordinator: SipProfileCoordinator) -> None:
        """Create the calls event entity."""
        super().__init__(coordinator, CALLS_EVENT.key)

    @property
    def available(self) -> bool:
        """Calls are shown only when the option is on."""
        return super().available and self.coordinator.line.show_calls

    async def async_added_to_hass(self) -> None:
        """Listen to the profile's calls."""
        await super().async_added_to_hass()
        self.async_on_remove(self.coordinator.line.async_add_call_listener(self._async_call))

    @callback
    def _async_call(self, event_type: str, attributes: dict[str, Any]) -> None:
        self._trigger_event(event_type, attributes)
        self.async_write_ha_state()
