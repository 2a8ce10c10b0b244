"""The base entities of a SIP profile: one device per profile, one state write per change."""

from __future__ import annotations

from typing import Any

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .buddies import Buddy
from .const import CONF_AOR, DOMAIN, WATCH_DIALOG
from .coordinator import SipProfileCoordinator
from .profile import parse_address


class SipProfileEntity(CoordinatorEntity[SipProfileCoordinator]):
    """An entity of a SIP profile's device."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: SipProfileCoordinator, key: str) -> None:
        """Name the entity ``key`` on the profile's device."""
        super().__init__(coordinator)
        self._attr_unique_id = f"{coordinator.config_entry.entry_id}_{key}"

    @property
    def device_info(self) -> DeviceInfo:
        """The profile's device (made when asked: Home Assistant reads it once, when adding)."""
        entry = self.coordinator.config_entry
        return DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=entry.title,
            # The service that hosts the account: what a user recognises it by.
            manufacturer=parse_address(entry.data[CONF_AOR]).host,
            model="SIP account",
            configuration_url=None,
        )


class SipBuddyEntity(Entity):
    """An entity of a buddy's device, which is reached through the profile's device."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, coordinator: SipProfileCoordinator, buddy: Buddy, key: str) -> None:
        """Name the entity ``key`` on ``buddy``'s device."""
        self.coordinator = coordinator
        self._buddy = buddy
        self._attr_unique_id = f"{buddy.subentry_id}_{key}"

    @property
    def device_info(self) -> DeviceInfo:
        """The buddy's device (made when asked: Home Assistant reads it once, when adding)."""
        buddy = self._buddy
        info = DeviceInfo(
            identifiers={(DOMAIN, buddy.subentry_id)},
            name=buddy.name,
            manufacturer=buddy.uri.host,
            model="Busy lamp" if buddy.watch == WATCH_DIALOG else "Presence",
            model_id=str(buddy.uri),
        )
        if self.coordinator.device_id is not None:
            info["via_device_id"] = self.coordinator.device_id
        return info


class ChangedStateEntity(Entity):
    """An entity pushed by a subscription that writes its state only when it shows a change.

    Several entities follow one subscription (a buddy's presence and the subscription itself):
    each NOTIFY then writes the one whose state or attributes it changed, and no other.
    """

    _shown: tuple[bool, Any, Any] | None = None
    """What the last state written showed: availability, state and attributes."""

    def _what_is_shown(self) -> tuple[bool, Any, Any]:
        return (self.available, self.state, self.extra_state_attributes)

    async def async_added_to_hass(self) -> None:
        """Remember what the first state shows (it is written once this returns)."""
        await super().async_added_to_hass()
        self._shown = self._what_is_shown()

    @callback
    def async_write_state_if_changed(self) -> None:
        """Write the state if availability, state or attributes differ from the last written."""
        shown = self._what_is_shown()
        if shown != self._shown:
            self._shown = shown
            self.async_write_ha_state()


class SipLineEntity(SipProfileEntity, ChangedStateEntity):
    """An entity of the profile's line (ringing calls, voicemail), named by its description."""

    def __init__(self, coordinator: SipProfileCoordinator) -> None:
        """Create the entity that ``entity_description`` describes."""
        super().__init__(coordinator, self.entity_description.key)

    async def async_added_to_hass(self) -> None:
        """Follow the line: each change is written where it changes what the entity shows."""
        await super().async_added_to_hass()
        self.async_on_remove(
            self.coordinator.line.async_add_state_listener(self.async_write_state_if_changed)
        )


def present(**attributes: Any) -> dict[str, Any]:
    """The attributes that have a value: one that is not known is left out, not shown empty."""
    return {name: value for name, value in attributes.items() if value is not None}
