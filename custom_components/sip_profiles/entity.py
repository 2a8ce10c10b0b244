"""The base entity of a SIP profile: one device per profile."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import CONF_AOR, DOMAIN
from .coordinator import SipProfileCoordinator
from .profile import parse_address


class SipProfileEntity(CoordinatorEntity[SipProfileCoordinator]):
    """An entity of a SIP profile's device."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: SipProfileCoordinator, key: str) -> None:
        """Name the entity ``key`` on the profile's device."""
        super().__init__(coordinator)
        entry = coordinator.config_entry
        self._attr_unique_id = f"{entry.entry_id}_{key}"
        aor = parse_address(entry.data[CONF_AOR])
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=entry.title,
            manufacturer="SIP",
            model="SIP account",
            model_id=aor.host,
            configuration_url=None,
        )
