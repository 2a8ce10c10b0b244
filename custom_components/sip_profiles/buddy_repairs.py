"""Repair issues for buddies whose server refuses to let the profile watch them.

A refused subscription (489 for an event package the server does not offer for the address,
403, 404) is not retried, and the buddy only shows as unavailable. One issue per buddy says
so; it is cleared when the subscription comes up or the buddy is removed, and the issues of a
profile go with it.
"""

from __future__ import annotations

from functools import partial

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .buddies import UP_STATES, Buddy, buddies_of
from .buddy_flow import refused
from .const import DOMAIN
from .coordinator import SipProfileCoordinator

ISSUE = "buddy_refused"


def issue_id(subentry_id: str) -> str:
    """The repair issue of one buddy (its subentry)."""
    return f"{ISSUE}_{subentry_id}"


class BuddyRepairs:
    """Follows the subscriptions of a profile's buddies and keeps their repair issues."""

    def __init__(self, hass: HomeAssistant, coordinator: SipProfileCoordinator) -> None:
        """Follow nothing yet; ``async_sync`` picks up the buddies."""
        self._hass = hass
        self._coordinator = coordinator
        self._entry = coordinator.config_entry
        self._followed: dict[str, CALLBACK_TYPE] = {}

    @callback
    def async_sync(self) -> None:
        """Follow the buddies the profile has now; drop the issues of removed ones."""
        buddies = buddies_of(self._entry)
        for subentry_id in [sid for sid in self._followed if sid not in buddies]:
            self._followed.pop(subentry_id)()
            ir.async_delete_issue(self._hass, DOMAIN, issue_id(subentry_id))
        for subentry_id, buddy in buddies.items():
            if subentry_id in self._followed:
                continue
            self._followed[subentry_id] = self._coordinator.subscriptions.async_add_listener(
                buddy.key, partial(self._check, buddy)
            )
            self._check(buddy)

    @callback
    def async_stop(self) -> None:
        """Stop following (the profile unloads); the issues stay until the server changes."""
        for remove in self._followed.values():
            remove()
        self._followed.clear()

    def _check(self, buddy: Buddy) -> None:
        status = self._coordinator.subscriptions.watched(buddy.key).status
        if refused(status):
            ir.async_create_issue(
                self._hass,
                DOMAIN,
                issue_id(buddy.subentry_id),
                is_fixable=False,
                severity=ir.IssueSeverity.WARNING,
                translation_key=ISSUE,
                translation_placeholders={
                    "profile": self._entry.title,
                    "buddy": buddy.name,
                    "uri": str(buddy.uri),
                    "status_code": str(status.status_code),
                },
            )
        elif status.state in UP_STATES:
            ir.async_delete_issue(self._hass, DOMAIN, issue_id(buddy.subentry_id))


@callback
def async_remove_issues(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """The profile is deleted: so are its buddies' issues."""
    for subentry_id in entry.subentries:
        ir.async_delete_issue(hass, DOMAIN, issue_id(subentry_id))
