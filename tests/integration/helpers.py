"""Helpers of the Home Assistant tests: bounded real waits, driven time, a second device."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
import contextlib
from datetime import timedelta
import re
import time
from typing import Any

from freezegun.api import FrozenDateTimeFactory, real_monotonic
from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.sip_profiles.const import CONF_AOR, CONF_REGISTRAR, DOMAIN
from custom_components.sip_profiles.coordinator import SipProfileCoordinator
from custom_components.sip_profiles.sip.aio.runner import UserAgentRunner
from custom_components.sip_profiles.sip.auth import Credentials
from custom_components.sip_profiles.sip.registration import (
    RegistrationChanged,
    RegistrationState,
)
from custom_components.sip_profiles.sip.target import Target, Transport
from custom_components.sip_profiles.sip.uri import parse_sip_uri
from custom_components.sip_profiles.sip.useragent import (
    UserAgent,
    UserAgentEvent,
    UserAgentSettings,
)
from tests.harness.kamailio import TEST_ACCOUNTS, KamailioServer

WAIT = 10.0
"""Real seconds a test waits for the server's answers."""
FIXED_ENTRY_ID = "01JSIPPROFILE0ALICE0000000"


async def wait_for(
    hass: HomeAssistant, predicate: Callable[[], bool], within: float = WAIT
) -> None:
    """Let the loop run until ``predicate()`` holds, for at most ``within`` real seconds.

    The freezer stops the loop's clock, so the deadline is read from the real monotonic clock
    and the pauses are real sleeps in the executor (the loop keeps serving the sockets).
    """
    deadline = real_monotonic() + within
    while not predicate():
        if real_monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await hass.async_add_executor_job(time.sleep, 0.01)
    await hass.async_block_till_done()


async def advance(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    """Move the frozen clock forward and fire what became due."""
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


async def advance_until(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    predicate: Callable[[], bool],
    step: float = 0.5,
    within: float = WAIT,
) -> None:
    """Move time in steps (retransmissions, retries) until ``predicate()`` holds."""
    deadline = real_monotonic() + within
    while not predicate():
        if real_monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} real s")
        await advance(hass, freezer, step)
        await hass.async_add_executor_job(time.sleep, 0.02)
    await hass.async_block_till_done()


async def setup_entry(hass: HomeAssistant, entry: MockConfigEntry) -> SipProfileCoordinator:
    """Add and set up a profile; returns its coordinator."""
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    coordinator: SipProfileCoordinator = entry.runtime_data
    return coordinator


def state_of(coordinator: SipProfileCoordinator) -> RegistrationState:
    """The core's registration state of a profile."""
    return coordinator.data.status.state


def reauth_flows(hass: HomeAssistant, entry: MockConfigEntry) -> list[Any]:
    """The reauthentication flows in progress for ``entry``."""
    return list(entry.async_get_active_flows(hass, {SOURCE_REAUTH}))


def registers_sent(coordinator: SipProfileCoordinator) -> int:
    """How many REGISTER requests the profile sent so far (as logged)."""
    return sum(
        1
        for message in coordinator.messages
        if message.direction == "out" and message.text.startswith("REGISTER ")
    )


_PORT = re.compile(r"(127\.0\.0\.1|\[::1\]):\d+")


def normalized(value: Any) -> Any:
    """``value`` with loopback ports (chosen at random by the OS) replaced by ``<port>``."""
    if isinstance(value, str):
        return _PORT.sub(r"\1:<port>", value)
    if isinstance(value, dict):
        return {key: normalized(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalized(item) for item in value]
    return value


def state_snapshot(state: State | None) -> dict[str, Any]:
    """What a snapshot keeps of a state: value and attributes, ports normalized."""
    assert state is not None
    return {"state": state.state, "attributes": normalized(dict(state.attributes))}


class SecondDevice:
    """Another device registering the same account with a raw user agent."""

    def __init__(self, kamailio: KamailioServer, user: str = "alice") -> None:
        """Prepare a TCP user agent for ``user``."""
        host, port = kamailio.address("tcp")
        settings = UserAgentSettings(
            aor=parse_sip_uri(kamailio.aor(user)),
            credentials=(Credentials(user, TEST_ACCOUNTS[user]),),
            transport=Transport.TCP,
        )
        self.runner = UserAgentRunner(
            UserAgent(settings, [Target(Transport.TCP, host, port, server_name="sip.test")])
        )
        self.events: list[UserAgentEvent] = []
        self.runner.add_listener(self.events.append)

    @property
    def state(self) -> RegistrationState:
        """The second device's registration state."""
        return self.runner.user_agent.registration.state

    async def register(self, hass: HomeAssistant) -> None:
        """Connect and register; waits for the answer."""
        await self.runner.start()
        self.runner.register()
        await wait_for(hass, lambda: self.state is RegistrationState.REGISTERED)

    def changes(self) -> list[RegistrationState]:
        """Every registration state the device went through."""
        return [e.status.state for e in self.events if isinstance(e, RegistrationChanged)]


@contextlib.asynccontextmanager
async def second_device(
    hass: HomeAssistant, kamailio: KamailioServer, user: str = "alice"
) -> AsyncIterator[SecondDevice]:
    """A registered second device, stopped (without unregistering) at the end."""
    device = SecondDevice(kamailio, user)
    try:
        await device.register(hass)
        yield device
    finally:
        await device.runner.stop(unregister=False)
        kamailio.remove_bindings(user)


FROZEN_AT = "2026-11-21T12:00:00+00:00"


def entry_of(data: dict[str, Any], **kwargs: Any) -> MockConfigEntry:
    """A profile of ``data`` (more of the entry, such as subentries, in ``kwargs``)."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=data[CONF_AOR],
        unique_id=f"{data[CONF_AOR]}|{data[CONF_REGISTRAR]}",
        data=data,
        **kwargs,
    )


def fixed_entry(
    profile_data: Callable[..., dict[str, Any]], user: str = "alice"
) -> MockConfigEntry:
    """A profile with a fixed entry id, so that snapshots name the same ids every run."""
    return entry_of(profile_data(user), entry_id=FIXED_ENTRY_ID)


def snapshot_entities(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    entry_id: str,
) -> None:
    """Snapshot every entity of a profile: its registry entry and its state, ports normalized."""
    entries = er.async_entries_for_config_entry(entity_registry, entry_id)
    assert entries
    for entity_entry in entries:
        assert entity_entry == snapshot(name=f"{entity_entry.entity_id}-entry")
        assert entity_entry.disabled_by is None, "enable every entity for the snapshot"
        state = hass.states.get(entity_entry.entity_id)
        assert state_snapshot(state) == snapshot(name=f"{entity_entry.entity_id}-state")


@pytest.fixture(autouse=True)
def no_stale_bindings(kamailio_clean: KamailioServer) -> None:
    """Start without bindings a failed test (or an unanswered unregistration) left behind."""
    for user in TEST_ACCOUNTS:
        kamailio_clean.remove_bindings(user)
