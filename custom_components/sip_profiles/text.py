"""Text of a SIP profile: the note published with our presence (only when it is published)."""

from __future__ import annotations

from homeassistant.components.text import TextEntity, TextEntityDescription, TextMode
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.restore_state import RestoreEntity

from .coordinator import SipProfileConfigEntry, SipProfileCoordinator
from .entity import SipProfileEntity

PARALLEL_UPDATES = 0

MAX_NOTE_LENGTH = 255

PRESENCE_NOTE = TextEntityDescription(
    key="presence_note",
    translation_key="presence_note",
    native_min=0,
    native_max=MAX_NOTE_LENGTH,
    mode=TextMode.TEXT,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SipProfileConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the presence note of a profile that publishes its presence."""
    coordinator = entry.runtime_data
    if coordinator.publish_presence:
        async_add_entities([SipPresenceNoteText(coordinator)])


class SipPresenceNoteText(SipProfileEntity, TextEntity, RestoreEntity):
    """A free text our watchers see next to our presence; empty publishes none."""

    entity_description = PRESENCE_NOTE

    def __init__(self, coordinator: SipProfileCoordinator) -> None:
        """Create the text."""
        super().__init__(coordinator, PRESENCE_NOTE.key)

    async def async_added_to_hass(self) -> None:
        """Take the last note back; the profile publishes it once its entities are set up."""
        await super().async_added_to_hass()
        last = await self.async_get_last_state()
        if last is not None and last.state not in (STATE_UNKNOWN, STATE_UNAVAILABLE):
            self.coordinator.async_restore_my_presence(note=last.state)

    @property
    def native_value(self) -> str:
        """The note we publish."""
        return self.coordinator.my_note

    async def async_set_value(self, value: str) -> None:
        """Publish ``value`` as our note."""
        self.coordinator.async_set_my_presence(note=value)
