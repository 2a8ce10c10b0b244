"""SIP Profiles: keep SIP accounts registered and watch them from Home Assistant."""

from __future__ import annotations

import asyncio

from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .buddy_repairs import BuddyRepairs, async_remove_issues
from .const import DOMAIN
from .coordinator import SipProfileConfigEntry, SipProfileCoordinator, settings_changed
from .services import async_setup_services

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
PLATFORMS = (
    Platform.BINARY_SENSOR,
    Platform.EVENT,
    Platform.NOTIFY,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
    Platform.TEXT,
)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's actions, and its stop, once for every profile."""
    async_setup_services(hass)

    async def _async_stop_profiles(_: Event) -> None:
        """Withdraw every profile from its server, all at once.

        Each profile's tasks start in turns of the loop of their own (not inside the stop
        event's dispatch), and each waits at most SHUTDOWN_TIMEOUT for its answers.
        """
        entries: list[SipProfileConfigEntry] = hass.config_entries.async_loaded_entries(DOMAIN)
        await asyncio.gather(*(entry.runtime_data.async_shutdown() for entry in entries))

    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _async_stop_profiles)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: SipProfileConfigEntry) -> bool:
    """Start a profile: open its flow, register, then set up its entities."""
    coordinator = SipProfileCoordinator(hass, entry)
    entry.runtime_data = coordinator  # its dependents look for it while it starts
    await coordinator.async_start()
    entry.async_on_unload(entry.add_update_listener(_async_entry_updated))
    repairs = BuddyRepairs(hass, coordinator)
    repairs.async_sync()
    entry.async_on_unload(repairs.async_stop)

    async def _async_buddies_changed(hass: HomeAssistant, entry: SipProfileConfigEntry) -> None:
        repairs.async_sync()

    entry.async_on_unload(entry.add_update_listener(_async_buddies_changed))
    if not coordinator.publish_presence:
        coordinator.async_remove_presence_entities()
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    # The select and the note have restored the last choice: publish it now.
    coordinator.async_start_presence()
    return True


async def async_unload_entry(hass: HomeAssistant, entry: SipProfileConfigEntry) -> bool:
    """Unregister the profile and remove its entities."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.async_shutdown()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: SipProfileConfigEntry) -> None:
    """The profile is deleted: its buddies' repair issues go with it."""
    async_remove_issues(hass, entry)


async def _async_entry_updated(hass: HomeAssistant, entry: SipProfileConfigEntry) -> None:
    """Reload when settings changed (reauth, reconfigure, options).

    The enabled flag and buddy subentries are applied by the running coordinator itself.
    """
    if settings_changed(entry):
        hass.config_entries.async_schedule_reload(entry.entry_id)
        return
    entry.runtime_data.async_sync_buddies()
