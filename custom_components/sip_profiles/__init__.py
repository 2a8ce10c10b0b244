"""SIP Profiles: keep SIP accounts registered and watch them from Home Assistant."""

from __future__ import annotations

from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .const import DOMAIN
from .coordinator import SipProfileConfigEntry, SipProfileCoordinator
from .services import async_setup_services

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
PLATFORMS = (Platform.BINARY_SENSOR, Platform.EVENT, Platform.SENSOR, Platform.SWITCH)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's actions once, for every profile."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: SipProfileConfigEntry) -> bool:
    """Start a profile: open its flow, register, then set up its entities."""
    coordinator = SipProfileCoordinator(hass, entry)
    await coordinator.async_start()
    entry.runtime_data = coordinator

    async def _async_unregister_on_stop(_: Event) -> None:
        await coordinator.async_shutdown()

    entry.async_on_unload(
        hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _async_unregister_on_stop)
    )
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: SipProfileConfigEntry) -> bool:
    """Unregister the profile and remove its entities."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.async_shutdown()
    return unloaded


async def _async_options_updated(hass: HomeAssistant, entry: SipProfileConfigEntry) -> None:
    """Reload when the options changed; data updates (the enabled flag) need no reload."""
    if dict(entry.options) != entry.runtime_data.options_at_setup:
        await hass.config_entries.async_reload(entry.entry_id)
