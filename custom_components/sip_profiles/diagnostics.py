"""Diagnostics of a SIP profile: its settings, its registration and its last SIP messages."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_PASSWORD
from homeassistant.core import HomeAssistant

from .const import CONF_AUTH_USER
from .coordinator import SipProfileConfigEntry, SipProfileCoordinator
from .sensor import registration_attributes

TO_REDACT = {CONF_PASSWORD, CONF_AUTH_USER}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: SipProfileConfigEntry
) -> dict[str, Any]:
    """Everything needed to see why a profile does (not) register; no secrets."""
    coordinator = entry.runtime_data
    data = coordinator.data
    status = data.status
    runner = coordinator.runner
    return {
        "entry": {
            "title": entry.title,
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "options": async_redact_data(dict(entry.options), TO_REDACT),
        },
        "state": data.state,
        "registration": {
            **registration_attributes(data),
            "state": status.state.value,
            "bindings": [
                {
                    "contact": binding.contact,
                    "expires": binding.expires,
                    "q": binding.q,
                    "ours": binding.ours,
                }
                for binding in status.bindings
            ],
        },
        "target": str(runner.user_agent.target) if runner else None,
        "local_address": (
            list(address)
            if runner and (address := runner.user_agent.local_address) is not None
            else None
        ),
        "publication": _publication(coordinator),
        "subscriptions": [
            {
                "uri": key.uri,
                "package": key.package,
                "state": watched.status.state.value,
                "reason": watched.status.reason.value if watched.status.reason else None,
                "status_code": watched.status.status_code,
                "expires": watched.status.expires,
                "notifies": watched.notifies,
            }
            for key, watched in coordinator.subscriptions.all_watched.items()
        ],
        "messages": [
            {
                "time": message.time.isoformat(),
                "direction": message.direction,
                "peer": message.peer,
                "text": message.text,
            }
            for message in coordinator.messages
        ],
    }


def _publication(coordinator: SipProfileCoordinator) -> dict[str, Any] | None:
    publication = coordinator.data.publication
    if publication is None:
        return None
    return {
        "state": publication.state.value,
        "presence": publication.presence.value if publication.presence else None,
        "note": publication.note,
        "reason": publication.reason.value if publication.reason else None,
        "status_code": publication.status_code,
        "expires": publication.expires,
    }
