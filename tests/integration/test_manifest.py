"""The manifest as Home Assistant reads it: the integration's type and whose loggers it names."""

from __future__ import annotations

from homeassistant.components.logger.helpers import get_integration_loggers
from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_integration

from custom_components.sip_profiles.const import DOMAIN, LOGGER


async def test_a_profile_is_a_service(hass: HomeAssistant) -> None:
    """One account per entry: the integration page offers "Add service", not "Add hub"."""
    integration = await async_get_integration(hass, DOMAIN)
    assert integration.integration_type == "service"


async def test_debug_logging_reaches_our_logger_without_naming_it(hass: HomeAssistant) -> None:
    """``loggers`` is for the loggers of requirements; ours is included by its package."""
    integration = await async_get_integration(hass, DOMAIN)
    assert "loggers" not in integration.manifest
    assert LOGGER.name in await get_integration_loggers(hass, DOMAIN)
