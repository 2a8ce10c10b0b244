"""Set-up, unload, reload, start-up failures, Home Assistant stop and dependent profiles."""

from __future__ import annotations

from collections.abc import Callable
import socket

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sip_profiles.const import CONF_EXPIRES, CONF_MASTER, DOMAIN
from custom_components.sip_profiles.sip.registration import RegistrationState
from tests.harness.kamailio import KamailioServer

from .helpers import (  # noqa: F401 - fixtures
    advance,
    no_stale_bindings,
    reauth_flows,
    registers_sent,
    setup_entry,
    state_of,
    wait_for,
)

MakeEntry = Callable[..., MockConfigEntry]


def closed_tcp_port() -> int:
    """A loopback TCP port nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_setup_registers_and_unload_unregisters(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    entry = make_entry()
    coordinator = await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    assert state_of(coordinator) is RegistrationState.REGISTERED
    (binding,) = kamailio_clean.bindings("alice")
    assert coordinator.data.status.contact is not None
    assert binding.contact.split(";")[0] == coordinator.data.status.contact.split(";")[0]
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, entry.entry_id), entry.entry_id
    )
    assert device is not None
    assert device.name == "sip:alice@sip.test"
    # The service that hosts the account, as its users know it.
    assert (device.manufacturer, device.model) == ("sip.test", "SIP account")

    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED
    assert kamailio_clean.bindings("alice") == []
    assert hass.states.get("sensor.sip_alice_sip_test_registration").state == "unavailable"


async def test_reload_registers_again(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    entry = make_entry()
    await setup_entry(hass, entry)
    first = kamailio_clean.bindings("alice")
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert state_of(entry.runtime_data) is RegistrationState.REGISTERED
    second = kamailio_clean.bindings("alice")
    assert len(first) == len(second) == 1
    assert first[0].contact != second[0].contact  # the old flow unregistered, a new one bound
    assert hass.states.get("sensor.sip_alice_sip_test_registration").state == "registered"


async def test_changed_options_reload_the_profile(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    entry = make_entry()
    coordinator = await setup_entry(hass, entry)
    hass.config_entries.async_update_entry(entry, options={CONF_EXPIRES: 600})
    await hass.async_block_till_done()
    assert entry.runtime_data is not coordinator
    assert entry.runtime_data.data.status.expires == 600


async def test_unreachable_server_is_not_ready(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    entry = make_entry(transport="tcp", registrar=f"127.0.0.1:{closed_tcp_port()}")
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason is not None
    assert "Cannot reach the SIP server" in entry.reason


async def test_wrong_password_starts_reauthentication(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    entry = make_entry(password="not-the-password")
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert len(reauth_flows(hass, entry)) == 1
    assert kamailio_clean.bindings("alice") == []


async def test_home_assistant_stop_unregisters(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    entry = make_entry()
    await setup_entry(hass, entry)
    assert len(kamailio_clean.bindings("alice")) == 1
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    assert kamailio_clean.bindings("alice") == []
    assert entry.runtime_data.runner is None


async def test_dependent_profile_follows_its_master(
    hass: HomeAssistant,
    make_entry: MakeEntry,
    kamailio_clean: KamailioServer,
    freezer: FrozenDateTimeFactory,
) -> None:
    master_entry = make_entry("alice")
    dependent_entry = make_entry("bob", master=master_entry.entry_id)

    # The master is not there yet: the dependent connects but does not register.
    dependent = await setup_entry(hass, dependent_entry)
    assert dependent_entry.state is ConfigEntryState.LOADED
    assert dependent.data.waiting_for_master
    assert state_of(dependent) is RegistrationState.UNREGISTERED
    assert kamailio_clean.bindings("bob") == []
    state = hass.states.get("sensor.sip_bob_sip_test_registration")
    assert state.state == "unregistered"
    assert state.attributes["waiting_for_master"] is True

    # The master registers: the dependent follows.
    master = await setup_entry(hass, master_entry)
    assert state_of(master) is RegistrationState.REGISTERED
    await wait_for(hass, lambda: state_of(dependent) is RegistrationState.REGISTERED)
    assert len(kamailio_clean.bindings("bob")) == 1
    assert not dependent.data.waiting_for_master

    # The master registers again after a failure: the dependent registers again too.
    kamailio_clean.set_register_503(30)
    master.async_refresh_registration()
    await wait_for(hass, lambda: state_of(master) is RegistrationState.FAILED)
    sent = registers_sent(dependent)
    kamailio_clean.set_register_503(0)
    await advance(hass, freezer, 30)
    await wait_for(hass, lambda: state_of(master) is RegistrationState.REGISTERED)
    await wait_for(hass, lambda: registers_sent(dependent) > sent)
    await wait_for(hass, lambda: state_of(dependent) is RegistrationState.REGISTERED)


async def test_dependent_stops_waiting_the_moment_its_master_registers(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    # The master registers while its own set-up is still under way (not yet loaded): the
    # dependent must not take that for a master that is not there.
    master_entry = make_entry("alice")
    dependent = await setup_entry(hass, make_entry("bob", master=master_entry.entry_id))
    assert dependent.data.waiting_for_master
    seen: list[tuple[bool, RegistrationState]] = []

    def record() -> None:
        seen.append((dependent.data.waiting_for_master, state_of(dependent)))

    remove = dependent.async_add_listener(record)
    await setup_entry(hass, master_entry)
    await wait_for(hass, lambda: state_of(dependent) is RegistrationState.REGISTERED)
    remove()
    # the first update after the master registered already says it is there
    assert seen
    assert seen[0] == (False, RegistrationState.REGISTERING)
    assert not dependent.data.waiting_for_master


async def test_dependent_of_a_disabled_master_waits(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    master_entry = make_entry("alice")
    master = await setup_entry(hass, master_entry)
    master.async_disable()
    await wait_for(hass, lambda: state_of(master) is RegistrationState.UNREGISTERED)
    dependent = await setup_entry(hass, make_entry("bob", master=master_entry.entry_id))
    assert dependent.data.waiting_for_master
    assert kamailio_clean.bindings("bob") == []

    master.async_enable()
    await wait_for(hass, lambda: state_of(dependent) is RegistrationState.REGISTERED)
    assert len(kamailio_clean.bindings("bob")) == 1
    assert dependent_entry_master(dependent) == master_entry.entry_id


def dependent_entry_master(coordinator: object) -> str:
    """The master entry id a coordinator's entry names."""
    return str(coordinator.config_entry.data[CONF_MASTER])  # type: ignore[attr-defined]
