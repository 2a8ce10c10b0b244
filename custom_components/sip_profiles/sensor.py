"""Sensors of a SIP profile: the registration state and the other devices' bindings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import ProfileData, SipProfileConfigEntry, SipProfileCoordinator
from .entity import SipProfileEntity

PARALLEL_UPDATES = 0

REGISTRATION_STATES = [
    "unregistered",
    "registering",
    "registered",
    "unregistering",
    "failed",
    "disabled",
]


def registration_attributes(data: ProfileData) -> dict[str, Any]:
    """Everything about the registration besides its state."""
    status = data.status
    target = data.target
    public = status.public_address
    return {
        "registrar": str(target) if target else None,
        "transport": target.transport.value if target else None,
        "contact": status.contact,
        "public_address": f"{public[0]}:{public[1]}" if public else None,
        "expires": status.expires,
        "refresh_at": data.refresh_at.isoformat() if data.refresh_at else None,
        "retry_at": data.retry_at.isoformat() if data.retry_at else None,
        "status_code": status.status_code,
        "reason_phrase": status.reason_phrase,
        "failure_reason": status.reason.value if status.reason else None,
        "waiting_for_master": data.waiting_for_master,
    }


@dataclass(frozen=True, kw_only=True)
class SipProfileSensorEntityDescription(SensorEntityDescription):
    """How a sensor reads the profile's data."""

    value_fn: Callable[[ProfileData], str | int | None]
    attributes_fn: Callable[[ProfileData], Mapping[str, Any] | None] = lambda _: None


SENSORS: tuple[SipProfileSensorEntityDescription, ...] = (
    SipProfileSensorEntityDescription(
        key="registration",
        translation_key="registration",
        device_class=SensorDeviceClass.ENUM,
        options=REGISTRATION_STATES,
        value_fn=lambda data: data.state,
        attributes_fn=registration_attributes,
    ),
    SipProfileSensorEntityDescription(
        key="other_bindings",
        translation_key="other_bindings",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda data: data.other_bindings,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SipProfileConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors of a profile."""
    coordinator = entry.runtime_data
    async_add_entities(SipProfileSensor(coordinator, description) for description in SENSORS)


class SipProfileSensor(SipProfileEntity, SensorEntity):
    """A sensor of a SIP profile."""

    entity_description: SipProfileSensorEntityDescription

    def __init__(
        self,
        coordinator: SipProfileCoordinator,
        description: SipProfileSensorEntityDescription,
    ) -> None:
        """Create the sensor ``description`` describes."""
        super().__init__(coordinator, description.key)
        self.entity_description = description

    @property
    def native_value(self) -> str | int | None:
        """The sensor's value."""
        return self.entity_description.value_fn(self.coordinator.data)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Details of the registration."""
        return self.entity_description.attributes_fn(self.coordinator.data)
