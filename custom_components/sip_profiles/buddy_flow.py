"""The subentry flow that adds a buddy to a profile: whom to watch, and what of them.

A buddy is stored as a config subentry of type ``buddy`` with:

- ``uri``: the watched address, normalized to ``sip:user@domain``; the form takes a SIP URI,
  ``user@domain``, or a bare user, which means a user of the profile's own domain;
- ``name``: what the buddy's device is called (the address when left empty);
- ``watch``: ``presence`` (the presence event package) or ``dialog`` (the busy lamp).

The subentry's unique id is ``<watch>|<uri>``, so one address can be watched both ways but not
twice the same way. Adding or removing a buddy does not reload the profile: the coordinator
subscribes and unsubscribes on the entry's update listener.
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigSubentryFlow, SubentryFlowResult
from homeassistant.helpers.selector import (
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)
import probatio as vol

from .const import CONF_AOR, CONF_BUDDY_NAME, CONF_BUDDY_URI, CONF_WATCH, WATCH_PRESENCE, WATCHES
from .profile import InvalidAddressError, parse_address


def buddy_uri(text: str, profile_aor: str) -> str:
    """The buddy's address as stored: ``sip:user@domain``; a bare user is of the profile's domain.

    Raises InvalidAddressError when the text is not an address.
    """
    text = text.strip()
    if not text:
        raise InvalidAddressError("empty address")
    has_scheme = text.lower().startswith(("sip:", "sips:"))
    if not has_scheme and "@" not in text:
        aor = parse_address(profile_aor)
        host = f"[{aor.host}]" if ":" in aor.host else aor.host
        port = f":{aor.port}" if aor.port else ""
        text = f"{aor.scheme}:{text}@{host}{port}"
    uri = parse_address(text)
    return str(uri)


def buddy_unique_id(watch: str, uri: str) -> str:
    """The subentry's unique id: one buddy per address and kind of watching."""
    return f"{watch}|{uri}"


class BuddySubentryFlow(ConfigSubentryFlow):
    """Add a buddy: address, name and what to watch."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Ask for the buddy's address, name and what to watch."""
        entry = self._get_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            watch = user_input[CONF_WATCH]
            try:
                uri = buddy_uri(user_input[CONF_BUDDY_URI], entry.data[CONF_AOR])
            except InvalidAddressError:
                errors[CONF_BUDDY_URI] = "invalid_address"
            else:
                unique_id = buddy_unique_id(watch, uri)
                if any(sub.unique_id == unique_id for sub in entry.subentries.values()):
                    return self.async_abort(reason="already_configured")
                name = str(user_input.get(CONF_BUDDY_NAME) or "").strip() or uri
                return self.async_create_entry(
                    title=name,
                    data={CONF_BUDDY_URI: uri, CONF_BUDDY_NAME: name, CONF_WATCH: watch},
                    unique_id=unique_id,
                )
        schema = vol.Schema(
            {
                vol.Required(CONF_BUDDY_URI): TextSelector(),
                vol.Optional(CONF_BUDDY_NAME): TextSelector(),
                vol.Required(CONF_WATCH, default=WATCH_PRESENCE): SelectSelector(
                    SelectSelectorConfig(
                        options=list(WATCHES),
                        mode=SelectSelectorMode.LIST,
                        translation_key=CONF_WATCH,
                    )
                ),
            }
        )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
            description_placeholders={"profile": entry.title},
        )
