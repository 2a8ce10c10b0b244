"""Notify entities: a text message (SIP MESSAGE, RFC 3428) to each buddy, through its profile.

Desk phones show such a message on their display. The title, when given, is the first line.
"""

from __future__ import annotations

from homeassistant.components.notify import NotifyEntity, NotifyEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .buddies import Buddy
from .coordinator import SipProfileConfigEntry, SipProfileCoordinator
from .entity import SipBuddyEntity

PARALLEL_UPDATES = 0

MESSAGE = NotifyEntityDescription(key="message", translation_key="message")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SipProfileConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a notify entity per buddy, also for buddies added later."""
    coordinator = entry.runtime_data

    def add_buddies(buddies: list[Buddy]) -> None:
        for buddy in buddies:
            async_add_entities(
                [SipBuddyNotify(coordinator, buddy)], config_subentry_id=buddy.subentry_id
            )

    add_buddies(list(coordinator.buddies.values()))
    entry.async_on_unload(coordinator.async_add_buddy_listener(add_buddies))


class SipBuddyNotify(SipBuddyEntity, NotifyEntity):
    """Sends a text message to a buddy."""

    entity_description = MESSAGE

    def __init__(self, coordinator: SipProfileCoordinator, buddy: Buddy) -> None:
        """Create the notify entity of ``buddy``."""
        super().__init__(coordinator, buddy, MESSAGE.key)

    async def async_send_message(self, message: str, title: str | None = None) -> None:
        """Send ``message`` (after ``title``); HomeAssistantError when it is not delivered."""
        text = f"{title}\n{message}" if title else message
        await self.coordinator.line.async_send_message(self._buddy.uri, text)
