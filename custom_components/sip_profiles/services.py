"""The actions of SIP Profiles: enable, disable, refresh, list and remove bindings; decline a call.

Every action targets profiles by ``config_entry_id`` and/or ``device_id``. ``refresh`` needs
an enabled profile (there is no registration to refresh otherwise); ``list_bindings`` and
``unregister_all`` send a one-off REGISTER that adds no binding of ours, so they also work
while a profile is disabled.

Without a target, ``enable``, ``disable``, ``refresh`` (of the enabled ones) and
``list_bindings`` act on every loaded profile: each is undone by its opposite or changes
nothing. ``unregister_all`` also removes the bindings of other devices, which no action of
ours can bring back, so it refuses to run without a target.
"""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_CONFIG_ENTRY_ID, ATTR_DEVICE_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.util.json import JsonValueType
import probatio as vol

from .const import CONF_AOR, DOMAIN
from .coordinator import SipProfileCoordinator
from .profile import ProfileError
from .sip.registration import Binding

SERVICE_ENABLE = "enable"
SERVICE_DISABLE = "disable"
SERVICE_REFRESH = "refresh"
SERVICE_LIST_BINDINGS = "list_bindings"
SERVICE_UNREGISTER_ALL = "unregister_all"
SERVICE_DECLINE_CALL = "decline_call"
ATTR_CALL_ID = "call_id"

SERVICE_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_CONFIG_ENTRY_ID): vol.All(cv.ensure_list, [cv.string]),
        vol.Optional(ATTR_DEVICE_ID): vol.All(cv.ensure_list, [cv.string]),
    }
)


def _entry_ids(hass: HomeAssistant, call: ServiceCall) -> list[str]:
    """The config entry ids the call targets, in order, without repeats."""
    ids: list[str] = list(call.data.get(ATTR_CONFIG_ENTRY_ID, []))
    device_registry = dr.async_get(hass)
    for device_id in call.data.get(ATTR_DEVICE_ID, []):
        device = device_registry.async_get(device_id)
        if device is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="device_not_found",
                translation_placeholders={"device_id": device_id},
            )
        entry = hass.config_entries.async_get_entry(device.config_entry_id)
        if entry is None or entry.domain != DOMAIN:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="device_not_profile",
                translation_placeholders={"device_id": device_id},
            )
        ids.append(entry.entry_id)
    return list(dict.fromkeys(ids))


def _targeted(call: ServiceCall) -> bool:
    return bool(call.data.get(ATTR_CONFIG_ENTRY_ID) or call.data.get(ATTR_DEVICE_ID))


def _coordinators(hass: HomeAssistant, call: ServiceCall) -> list[SipProfileCoordinator]:
    """The running profiles a call targets, or every loaded one when it names none.

    Raises ServiceValidationError for any bad target.
    """
    if not _targeted(call):
        return [entry.runtime_data for entry in hass.config_entries.async_loaded_entries(DOMAIN)]
    coordinators: list[SipProfileCoordinator] = []
    for entry_id in _entry_ids(hass, call):
        entry = hass.config_entries.async_get_entry(entry_id)
        if entry is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="entry_not_found",
                translation_placeholders={"config_entry_id": entry_id},
            )
        if entry.domain != DOMAIN:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="entry_not_profile",
                translation_placeholders={"config_entry_id": entry_id},
            )
        if entry.state is not ConfigEntryState.LOADED:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="entry_not_loaded",
                translation_placeholders={"profile": entry.title},
            )
        coordinator: SipProfileCoordinator = entry.runtime_data
        coordinators.append(coordinator)
    return coordinators


def _require_enabled(coordinators: list[SipProfileCoordinator]) -> None:
    for coordinator in coordinators:
        if not coordinator.enabled:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="profile_disabled",
                translation_placeholders={"profile": coordinator.config_entry.title},
            )


def _operation_failed(coordinator: SipProfileCoordinator, err: ProfileError) -> HomeAssistantError:
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="operation_failed",
        translation_placeholders={"profile": coordinator.config_entry.title, "reason": err.key},
    )


def _binding_data(binding: Binding) -> JsonValueType:
    return {
        "contact": binding.contact,
        "expires": binding.expires,
        "q": binding.q,
        "ours": binding.ours,
    }


async def _async_enable(call: ServiceCall) -> None:
    for coordinator in _coordinators(call.hass, call):
        coordinator.async_enable()


async def _async_disable(call: ServiceCall) -> None:
    for coordinator in _coordinators(call.hass, call):
        coordinator.async_disable()


async def _async_refresh(call: ServiceCall) -> None:
    coordinators = _coordinators(call.hass, call)
    if _targeted(call):
        _require_enabled(coordinators)
    else:
        coordinators = [coordinator for coordinator in coordinators if coordinator.enabled]
    for coordinator in coordinators:
        coordinator.async_refresh_registration()


async def _async_list_bindings(call: ServiceCall) -> ServiceResponse:
    profiles: list[JsonValueType] = []
    for coordinator in _coordinators(call.hass, call):
        try:
            bindings = await coordinator.async_list_bindings()
        except ProfileError as err:
            raise _operation_failed(coordinator, err) from err
        profiles.append(
            {
                "config_entry_id": coordinator.config_entry.entry_id,
                "aor": coordinator.config_entry.data[CONF_AOR],
                "bindings": [_binding_data(binding) for binding in bindings],
            }
        )
    return {"profiles": profiles}


async def _async_unregister_all(call: ServiceCall) -> ServiceResponse:
    if not _targeted(call):
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="target_required")
    profiles: list[JsonValueType] = []
    total = 0
    for coordinator in _coordinators(call.hass, call):
        try:
            removed = await coordinator.async_unregister_all()
        except ProfileError as err:
            raise _operation_failed(coordinator, err) from err
        total += removed
        profiles.append(
            {
                "config_entry_id": coordinator.config_entry.entry_id,
                "aor": coordinator.config_entry.data[CONF_AOR],
                "removed": removed,
            }
        )
    return {"removed": total, "profiles": profiles}


DECLINE_CALL_SCHEMA = SERVICE_SCHEMA.extend({vol.Optional(ATTR_CALL_ID): cv.string})


async def _async_decline_call(call: ServiceCall) -> None:
    """Answer the ringing call (or the one named) 603 Decline; the PBX stops every phone.

    Each targeted profile declines its newest ringing call, or the call named; it is an error
    when none of them had such a call.
    """
    call_id = call.data.get(ATTR_CALL_ID)
    coordinators = _coordinators(call.hass, call)
    declined = False
    for coordinator in coordinators:
        declined = coordinator.line.decline(call_id) or declined
    if not declined:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="no_ringing_call",
            translation_placeholders={
                "profile": ", ".join(c.config_entry.title for c in coordinators)
            },
        )


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions (once, from ``async_setup``)."""
    for name, handler in ((SERVICE_ENABLE, _async_enable), (SERVICE_DISABLE, _async_disable)):
        hass.services.async_register(DOMAIN, name, handler, schema=SERVICE_SCHEMA)
    hass.services.async_register(DOMAIN, SERVICE_REFRESH, _async_refresh, schema=SERVICE_SCHEMA)
    hass.services.async_register(
        DOMAIN,
        SERVICE_LIST_BINDINGS,
        _async_list_bindings,
        schema=SERVICE_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_UNREGISTER_ALL,
        _async_unregister_all,
        schema=SERVICE_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN, SERVICE_DECLINE_CALL, _async_decline_call, schema=DECLINE_CALL_SCHEMA
    )
