"""The actions: targets, validation errors, and what each does at the real registrar."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest.mock import patch

from homeassistant.components import notify
from homeassistant.const import ATTR_CONFIG_ENTRY_ID, ATTR_DEVICE_ID
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.service import async_get_all_descriptions
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sip_profiles.const import DOMAIN
from custom_components.sip_profiles.coordinator import SipProfileCoordinator
from custom_components.sip_profiles.profile import ProfileError
from custom_components.sip_profiles.sip.registration import RegistrationState
from tests.harness.kamailio import KamailioServer

from .helpers import (  # noqa: F401 - fixtures
    no_stale_bindings,
    registers_sent,
    second_device,
    setup_entry,
    state_of,
    wait_for,
)

MakeEntry = Callable[..., MockConfigEntry]


async def call(
    hass: HomeAssistant, service: str, data: dict[str, Any], *, response: bool = False
) -> Any:
    return await hass.services.async_call(
        DOMAIN, service, data, blocking=True, return_response=response
    )


def device_id(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, entry.entry_id), entry.entry_id
    )
    assert device is not None
    return device.id


async def test_disable_and_enable_by_device(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    entry = make_entry()
    coordinator = await setup_entry(hass, entry)
    await call(hass, "disable", {ATTR_DEVICE_ID: device_id(hass, entry)})
    await wait_for(hass, lambda: state_of(coordinator) is RegistrationState.UNREGISTERED)
    assert kamailio_clean.bindings("alice") == []
    assert hass.states.get("switch.sip_alice_sip_test_registration_enabled").state == "off"

    await call(hass, "enable", {ATTR_DEVICE_ID: [device_id(hass, entry)]})
    await wait_for(hass, lambda: state_of(coordinator) is RegistrationState.REGISTERED)
    assert len(kamailio_clean.bindings("alice")) == 1


async def test_refresh_registers_again(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    entry = make_entry()
    coordinator = await setup_entry(hass, entry)
    sent = registers_sent(coordinator)
    await call(hass, "refresh", {ATTR_CONFIG_ENTRY_ID: entry.entry_id})
    await wait_for(hass, lambda: registers_sent(coordinator) > sent)
    await wait_for(hass, lambda: state_of(coordinator) is RegistrationState.REGISTERED)


async def test_refresh_of_a_disabled_profile_is_refused(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    entry = make_entry(enabled=False)
    await setup_entry(hass, entry)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "refresh", {ATTR_CONFIG_ENTRY_ID: entry.entry_id})
    assert err.value.translation_key == "profile_disabled"
    assert str(err.value) == "The SIP profile sip:alice@sip.test is disabled; enable it first"


async def test_list_bindings_and_unregister_all(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    entry = make_entry()
    coordinator = await setup_entry(hass, entry)
    async with second_device(hass, kamailio_clean) as phone:
        listed = await call(
            hass, "list_bindings", {ATTR_CONFIG_ENTRY_ID: entry.entry_id}, response=True
        )
        (profile,) = listed["profiles"]
        assert profile["config_entry_id"] == entry.entry_id
        assert profile["aor"] == "sip:alice@sip.test"
        bindings = profile["bindings"]
        assert len(bindings) == 2
        assert sorted(binding["ours"] for binding in bindings) == [False, True]
        assert {binding["contact"].split(";")[0] for binding in bindings} == {
            binding.contact.split(";")[0] for binding in kamailio_clean.bindings("alice")
        }
        assert all(3500 <= binding["expires"] <= 3600 for binding in bindings)

        removed = await call(
            hass, "unregister_all", {ATTR_DEVICE_ID: device_id(hass, entry)}, response=True
        )
        assert removed["removed"] == 2
        assert removed["profiles"] == [
            {"config_entry_id": entry.entry_id, "aor": "sip:alice@sip.test", "removed": 2}
        ]
        # Enabled means registered: the profile binds itself again, the phone stays removed.
        await wait_for(hass, lambda: state_of(coordinator) is RegistrationState.REGISTERED)
        contact = coordinator.runner.user_agent.registration.status.contact
        assert [b.contact for b in kamailio_clean.bindings("alice")] == [contact]
        assert phone.state is RegistrationState.REGISTERED  # it was not told


async def test_an_enabled_profile_registers_again_after_unregister_all(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    entry = make_entry()
    coordinator = await setup_entry(hass, entry)
    async with second_device(hass, kamailio_clean):
        removed = await call(
            hass, "unregister_all", {ATTR_CONFIG_ENTRY_ID: entry.entry_id}, response=True
        )
        assert removed["removed"] == 2
        # Enabled means registered: the profile binds again by itself, the phone does not.
        await wait_for(
            hass,
            lambda: state_of(coordinator) is RegistrationState.REGISTERED,
            within=3,
        )
        (binding,) = kamailio_clean.bindings("alice")
        contact = coordinator.data.status.contact
        assert contact is not None
        assert binding.contact.split(";")[0] == contact.split(";")[0]
        assert hass.states.get("switch.sip_alice_sip_test_registration_enabled").state == "on"


async def test_disable_then_unregister_all_stops_every_phone(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    entry = make_entry()
    coordinator = await setup_entry(hass, entry)
    target = {ATTR_DEVICE_ID: device_id(hass, entry)}
    async with second_device(hass, kamailio_clean) as phone:
        await call(hass, "disable", target)
        await wait_for(hass, lambda: state_of(coordinator) is RegistrationState.UNREGISTERED)
        assert len(kamailio_clean.bindings("alice")) == 1  # the phone's
        removed = await call(hass, "unregister_all", target, response=True)
        assert removed["removed"] == 1
        assert kamailio_clean.bindings("alice") == []
        assert phone.state is RegistrationState.REGISTERED  # it was not told
    # Disabled, the profile stays unregistered: nothing rings until it is enabled again.
    assert hass.states.get("sensor.sip_alice_sip_test_registration").state == "disabled"
    assert kamailio_clean.bindings("alice") == []


async def test_list_bindings_of_a_disabled_profile(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    entry = make_entry(enabled=False)
    await setup_entry(hass, entry)
    listed = await call(
        hass, "list_bindings", {ATTR_CONFIG_ENTRY_ID: [entry.entry_id]}, response=True
    )
    assert listed == {
        "profiles": [
            {"config_entry_id": entry.entry_id, "aor": "sip:alice@sip.test", "bindings": []}
        ]
    }


async def test_two_profiles_in_one_call(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    alice, bob = make_entry("alice"), make_entry("bob")
    await setup_entry(hass, alice)
    await setup_entry(hass, bob)
    removed = await call(
        hass,
        "unregister_all",
        {ATTR_CONFIG_ENTRY_ID: [alice.entry_id], ATTR_DEVICE_ID: device_id(hass, bob)},
        response=True,
    )
    assert removed["removed"] == 2
    assert [profile["aor"] for profile in removed["profiles"]] == [
        "sip:alice@sip.test",
        "sip:bob@sip.test",
    ]


@pytest.mark.parametrize(
    ("target", "key", "message"),
    [
        (
            {ATTR_CONFIG_ENTRY_ID: "nope"},
            "entry_not_found",
            "Config entry nope does not exist",
        ),
        ({ATTR_DEVICE_ID: "nope"}, "device_not_found", "Device nope does not exist"),
    ],
)
async def test_unknown_targets(
    hass: HomeAssistant,
    make_entry: MakeEntry,
    kamailio_clean: KamailioServer,
    target: dict[str, str],
    key: str,
    message: str,
) -> None:
    await setup_entry(hass, make_entry())
    for service in ("enable", "disable", "refresh"):
        with pytest.raises(ServiceValidationError) as err:
            await call(hass, service, target)
        assert err.value.translation_key == key
        assert str(err.value) == message
    for service in ("list_bindings", "unregister_all"):
        with pytest.raises(ServiceValidationError):
            await call(hass, service, target, response=True)


async def test_targets_of_another_integration(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    await setup_entry(hass, make_entry())
    other = MockConfigEntry(domain="other_domain", title="Other")
    other.add_to_hass(hass)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=other.entry_id, identifiers={("other_domain", "x")}
    )
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "enable", {ATTR_CONFIG_ENTRY_ID: other.entry_id})
    assert err.value.translation_key == "entry_not_profile"
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "enable", {ATTR_DEVICE_ID: device.id})
    assert err.value.translation_key == "device_not_profile"
    assert str(err.value) == f"Device {device.id} is not a SIP profile"


async def test_profile_not_loaded(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    entry = make_entry()
    await setup_entry(hass, entry)
    assert await hass.config_entries.async_unload(entry.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "list_bindings", {ATTR_CONFIG_ENTRY_ID: entry.entry_id}, response=True)
    assert err.value.translation_key == "entry_not_loaded"
    assert str(err.value) == "The SIP profile sip:alice@sip.test is not loaded"


async def test_no_target_means_every_loaded_profile(
    hass: HomeAssistant,
    make_entry: MakeEntry,
    kamailio_clean: KamailioServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without a target, each action that can undo itself acts on every loaded profile."""
    alice, bob, carol = make_entry("alice"), make_entry("bob"), make_entry("carol")
    await setup_entry(hass, alice)
    await setup_entry(hass, bob)
    carol.add_to_hass(hass)  # not loaded: left out

    listed = await call(hass, "list_bindings", {}, response=True)
    assert [profile["aor"] for profile in listed["profiles"]] == [
        "sip:alice@sip.test",
        "sip:bob@sip.test",
    ]
    await call(hass, "disable", {})
    await wait_for(
        hass, lambda: kamailio_clean.bindings("alice") == kamailio_clean.bindings("bob") == []
    )
    await call(hass, "refresh", {})  # every profile is disabled: nothing to refresh, no error
    await call(hass, "enable", {})
    for entry in (alice, bob):
        await wait_for(
            hass, lambda entry=entry: state_of(entry.runtime_data) is RegistrationState.REGISTERED
        )
    sent = registers_sent(alice.runtime_data)
    await call(hass, "refresh", {})
    await wait_for(hass, lambda: registers_sent(alice.runtime_data) > sent)
    assert "Error" not in caplog.text


async def test_unregister_all_needs_a_target(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    """Removing other devices' bindings of every account is never what an empty call means."""
    await setup_entry(hass, make_entry())
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "unregister_all", {}, response=True)
    assert err.value.translation_key == "target_required"
    assert str(err.value) == "Choose the SIP profiles or devices whose bindings to remove"
    assert len(kamailio_clean.bindings("alice")) == 1


async def test_a_device_is_read_by_its_one_config_entry(
    hass: HomeAssistant,
    make_entry: MakeEntry,
    kamailio_clean: KamailioServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No deprecated multi-entry device property is read (it breaks in 2027.10)."""
    entry = make_entry()
    await setup_entry(hass, entry)
    listed = await call(
        hass, "list_bindings", {ATTR_DEVICE_ID: device_id(hass, entry)}, response=True
    )
    assert [profile["config_entry_id"] for profile in listed["profiles"]] == [entry.entry_id]
    assert "deprecated" not in caplog.text


@pytest.mark.parametrize("service", ["list_bindings", "unregister_all"])
async def test_sip_failures_are_translated(
    hass: HomeAssistant,
    make_entry: MakeEntry,
    kamailio_clean: KamailioServer,
    service: str,
) -> None:
    entry = make_entry()
    await setup_entry(hass, entry)
    kamailio_clean.set_register_503(30)
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, service, {ATTR_CONFIG_ENTRY_ID: entry.entry_id}, response=True)
    assert not isinstance(err.value, ServiceValidationError)
    assert err.value.translation_key == "operation_failed"
    assert str(err.value) == (
        "The SIP server did not carry out the request for sip:alice@sip.test (cannot_connect)"
    )


async def test_operations_need_a_running_profile(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    entry = make_entry()
    coordinator: SipProfileCoordinator = await setup_entry(hass, entry)
    hass.bus.async_fire("homeassistant_stop")
    await hass.async_block_till_done()
    with pytest.raises(ProfileError):
        await coordinator.async_list_bindings()
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, "unregister_all", {ATTR_CONFIG_ENTRY_ID: entry.entry_id}, response=True)
    assert err.value.translation_key == "operation_failed"


async def test_actions_are_described(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    await setup_entry(hass, make_entry())
    # Reading notify's descriptions resolves its feature filters through every base entity
    # component, ai_task's among them, which needs the conversation agent's packages (not part
    # of the test stack); notify is the one those filters name.
    with patch("homeassistant.helpers.service._base_components", return_value={"notify": notify}):
        descriptions = (await async_get_all_descriptions(hass))[DOMAIN]
    assert set(descriptions) == {
        "enable",
        "disable",
        "refresh",
        "list_bindings",
        "unregister_all",
        "decline_call",
    }
    for name, description in descriptions.items():
        extra = {"call_id"} if name == "decline_call" else set()
        assert set(description["fields"]) == {ATTR_CONFIG_ENTRY_ID, ATTR_DEVICE_ID, *extra}
    assert descriptions["list_bindings"]["response"] == {"optional": False}
    assert descriptions["unregister_all"]["response"] == {"optional": True}
