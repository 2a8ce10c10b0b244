"""Select of a SIP profile: the presence we publish (only when the profile publishes it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.restore_state import RestoreEntity

from .coordinator import SipProfileConfigEntry, SipProfileCoordinator
from .entity import SipProfileEntity, present
from .sip.documents.pidf import MyPresence

PARALLEL_UPDATES = 0

MY_PRESENCE = SelectEntityDescription(
    key="my_presence",
    translation_key="my_presence",
    options=[presence.value for presence in MyPresence],
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SipProfileConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the presence select of a profile that publishes its presence."""
    coordinator = entry.runtime_data
    if coordinator.publish_presence:
        async_add_entities([SipMyPresenceSelect(coordinator)])


def publication_attributes(coordinator: SipProfileCoordinator) -> dict[str, Any]:
    """How our publication stands; what is not known (a refresh under way) is left out."""
    publication = coordinator.data.publication
    if publication is None:
        return {}
    refresh_at = coordinator.wall_time(publication.refresh_at)
    return present(
        publication_state=publication.state.value,
        publication_reason=publication.reason.value if publication.reason else None,
        status_code=publication.status_code,
        refresh_at=refresh_at.isoformat() if refresh_at else None,
    )


class SipMyPresenceSelect(SipProfileEntity, SelectEntity, RestoreEntity):
    """Available, away, busy, do not disturb or offline: published to our watchers."""

    entity_description = MY_PRESENCE

    def __init__(self, coordinator: SipProfileCoordinator) -> None:
        """Create the select."""
        super().__init__(coordinator, MY_PRESENCE.key)

    async def async_added_to_hass(self) -> None:
        """Take the last choice back; the profile publishes it once its entities are set up."""
        await super().async_added_to_hass()
        last = await self.async_get_last_state()
        if last is not None and last.state in self.options:
            self.coordinator.async_restore_my_presence(presence=MyPresence(last.state))

    @property
    def current_option(self) -> str:
        """The presence we publish."""
        return self.coordinator.my_presence.value

    @property
    def extra_state_attributes(self) -> Mapping[str, Any]:
        """How the publication stands."""
        return publication_attributes(self.coordinator)

    async def async_select_option(self, option: str) -> None:
        """Publish ``option``."""
        self.coordinator.async_set_my_presence(presence=MyPresence(option))
