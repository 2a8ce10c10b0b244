"""Sensors of a SIP profile and of its buddies.

On the profile's device: the registration state, the other devices' bindings and, while the
profile publishes its presence, who watches it (``presence.winfo``). On each buddy's device:
its presence or its busy lamp, unavailable while the subscription is down, and the
subscription itself (a diagnostic sensor that stays available and tells why it is down).
Voicemail waiting (RFC 3842) on the profile's device: new messages, and the message-summary
subscription as a diagnostic sensor (``not_offered`` where the server keeps no mailbox).
"""

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

from .buddies import Buddy, Watched
from .const import WATCH_DIALOG
from .coordinator import ProfileData, SipProfileConfigEntry, SipProfileCoordinator
from .entity import (
    ChangedStateEntity,
    SipBuddyEntity,
    SipLineEntity,
    SipProfileEntity,
    present,
)
from .line import summary_attributes
from .sip.client import FailureReason
from .sip.documents import LampState, PresenceState
from .sip.subscription import SubscriptionKey, SubscriptionState

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
    """Everything about the registration besides its state, None where it is not known."""
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
        # The sensor leaves out what is not known (no failure reason while registered).
        attributes_fn=lambda data: present(**registration_attributes(data)),
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
    if (key := coordinator.watcher_info_key) is not None:
        async_add_entities([SipWatchersSensor(coordinator, key)])
    async_add_entities(
        [SipVoicemailSensor(coordinator), SipVoicemailSubscriptionSensor(coordinator)]
    )

    def add_buddies(buddies: list[Buddy]) -> None:
        for buddy in buddies:
            async_add_entities(
                buddy_sensors(coordinator, buddy), config_subentry_id=buddy.subentry_id
            )

    add_buddies(list(coordinator.buddies.values()))
    entry.async_on_unload(coordinator.async_add_buddy_listener(add_buddies))


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


# -- who watches our presence ------------------------------------------------------------------


def watcher_attributes(watched: Watched) -> dict[str, Any]:
    """Everyone who watches our presence, with how far their subscription got."""
    return {
        "watchers": [
            {
                "uri": watcher.uri,
                "status": watcher.status.value,
                "display_name": watcher.display_name,
            }
            for watcher in watched.watchers
        ]
    }


WATCHERS = SensorEntityDescription(
    key="watchers",
    translation_key="watchers",
    entity_category=EntityCategory.DIAGNOSTIC,
)


class SipWatchersSensor(SipProfileEntity, ChangedStateEntity, SensorEntity):
    """How many watch our presence; unavailable where the server offers no watcher info."""

    entity_description = WATCHERS

    def __init__(self, coordinator: SipProfileCoordinator, key: SubscriptionKey) -> None:
        """Show the watcher info subscription ``key``."""
        super().__init__(coordinator, WATCHERS.key)
        self._key = key

    async def async_added_to_hass(self) -> None:
        """Follow the watcher info subscription."""
        await super().async_added_to_hass()
        self.async_on_remove(
            self.coordinator.subscriptions.async_add_listener(
                self._key, self.async_write_state_if_changed
            )
        )

    @property
    def _watched(self) -> Watched:
        return self.coordinator.subscriptions.watched(self._key)

    @property
    def available(self) -> bool:
        """Available while the server tells us who watches."""
        return super().available and self._watched.up

    @property
    def native_value(self) -> int:
        """How many watch our presence."""
        return len(self._watched.watchers)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any]:
        """Who they are."""
        return watcher_attributes(self._watched)


# -- voicemail ---------------------------------------------------------------------------------

VOICEMAIL = SensorEntityDescription(key="voicemail", translation_key="voicemail")
VOICEMAIL_SUBSCRIPTION = SensorEntityDescription(
    key="voicemail_subscription",
    translation_key="voicemail_subscription",
    device_class=SensorDeviceClass.ENUM,
    entity_category=EntityCategory.DIAGNOSTIC,
    options=[*(state.value for state in SubscriptionState), FailureReason.NOT_OFFERED.value],
)


class SipVoicemailSensor(SipLineEntity, SensorEntity):
    """New voicemail messages; unknown until the server said how many."""

    entity_description = VOICEMAIL

    @property
    def native_value(self) -> int | None:
        """How many new voice messages wait."""
        summary = self.coordinator.line.summary
        return summary.new_messages if summary is not None else None

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Old and urgent messages, and the message account."""
        summary = self.coordinator.line.summary
        return summary_attributes(summary) if summary is not None else None


class SipVoicemailSubscriptionSensor(SipLineEntity, SensorEntity):
    """The message-summary subscription: ``not_offered`` where the server has no mailbox."""

    entity_description = VOICEMAIL_SUBSCRIPTION

    @property
    def native_value(self) -> str:
        """The subscription's state; a 489 reads ``not_offered``."""
        status = self.coordinator.line.subscription
        if status.reason is FailureReason.NOT_OFFERED:
            return FailureReason.NOT_OFFERED.value
        return status.state.value

    @property
    def extra_state_attributes(self) -> Mapping[str, Any]:
        """Why it is down, and when it tries again."""
        line = self.coordinator.line
        watched = self.coordinator.subscriptions.watched(line.voicemail_key)
        return {
            "uri": str(line.voicemail_uri),
            **subscription_attributes(watched, self.coordinator),
        }


# -- buddies -----------------------------------------------------------------------------------


def presence_attributes(watched: Watched, _: SipProfileCoordinator) -> dict[str, Any]:
    """The buddy's note and RPID activities."""
    return {"note": watched.note, "activities": list(watched.activities)}


def lamp_attributes(watched: Watched, _: SipProfileCoordinator) -> dict[str, Any]:
    """Who the buddy's call is with, and who called whom; None while idle."""
    lamp = watched.lamp
    remote = lamp.remote
    return {
        "direction": lamp.direction.value if lamp.direction else None,
        "remote": (remote.identity or remote.target) if remote else None,
        "remote_name": remote.display if remote else None,
    }


def subscription_attributes(watched: Watched, coordinator: SipProfileCoordinator) -> dict[str, Any]:
    """Why a subscription is down and when it tries again, each only when there is one.

    The seconds left of the subscription are not shown: every NOTIFY counts them down, and a
    state written for each would say nothing new.
    """
    status = watched.status
    retry_at = coordinator.wall_time(status.retry_at)
    return present(
        reason=status.reason.value if status.reason else None,
        status_code=status.status_code,
        retry_at=retry_at.isoformat() if retry_at else None,
    )


@dataclass(frozen=True, kw_only=True)
class BuddySensorEntityDescription(SensorEntityDescription):
    """How a buddy's sensor reads its subscription."""

    value_fn: Callable[[Watched], str]
    attributes_fn: Callable[[Watched, SipProfileCoordinator], Mapping[str, Any]]
    needs_subscription: bool = True
    """Unavailable while the subscription is down."""


BUDDY_PRESENCE = BuddySensorEntityDescription(
    key="presence",
    translation_key="buddy_presence",
    device_class=SensorDeviceClass.ENUM,
    options=[state.value for state in PresenceState],
    value_fn=lambda watched: watched.presence.value,
    attributes_fn=presence_attributes,
)
BUSY_LAMP = BuddySensorEntityDescription(
    key="busy_lamp",
    translation_key="busy_lamp",
    device_class=SensorDeviceClass.ENUM,
    options=[state.value for state in LampState],
    value_fn=lambda watched: watched.lamp.state.value,
    attributes_fn=lamp_attributes,
)
SUBSCRIPTION = BuddySensorEntityDescription(
    key="subscription",
    translation_key="subscription",
    device_class=SensorDeviceClass.ENUM,
    entity_category=EntityCategory.DIAGNOSTIC,
    # One per buddy: with 2,000 buddies an entity that is not shown costs less disabled.
    entity_registry_enabled_default=False,
    options=[state.value for state in SubscriptionState],
    value_fn=lambda watched: watched.status.state.value,
    attributes_fn=subscription_attributes,
    needs_subscription=False,
)


def buddy_sensors(coordinator: SipProfileCoordinator, buddy: Buddy) -> list[SipBuddySensor]:
    """The sensors of one buddy: what is watched, and the subscription that watches it."""
    main = BUSY_LAMP if buddy.watch == WATCH_DIALOG else BUDDY_PRESENCE
    return [
        SipBuddySensor(coordinator, buddy, main),
        SipBuddySensor(coordinator, buddy, SUBSCRIPTION),
    ]


class SipBuddySensor(SipBuddyEntity, ChangedStateEntity, SensorEntity):
    """A sensor of a buddy's device, pushed by the buddy's subscription."""

    entity_description: BuddySensorEntityDescription

    def __init__(
        self,
        coordinator: SipProfileCoordinator,
        buddy: Buddy,
        description: BuddySensorEntityDescription,
    ) -> None:
        """Create the sensor ``description`` describes for ``buddy``."""
        super().__init__(coordinator, buddy, description.key)
        self.entity_description = description

    async def async_added_to_hass(self) -> None:
        """Follow the buddy's subscription."""
        await super().async_added_to_hass()
        self.async_on_remove(
            self.coordinator.subscriptions.async_add_listener(
                self._buddy.key, self.async_write_state_if_changed
            )
        )

    @property
    def _watched(self) -> Watched:
        return self.coordinator.subscriptions.watched(self._buddy.key)

    @property
    def available(self) -> bool:
        """Unavailable while the subscription is down (the subscription sensor tells why)."""
        return not self.entity_description.needs_subscription or self._watched.up

    @property
    def native_value(self) -> str:
        """The buddy's presence, lamp or subscription state."""
        return self.entity_description.value_fn(self._watched)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any]:
        """The details of the state."""
        return self.entity_description.attributes_fn(self._watched, self.coordinator)
