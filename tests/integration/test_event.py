"""The event entity, and faults of the real server as states, events and reauthentication."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_UNKNOWN, Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.sip_profiles.sip.registration import RegistrationState
from tests.harness.kamailio import TEST_ACCOUNTS, KamailioServer

from .helpers import (  # noqa: F401 - fixtures
    FROZEN_AT,
    advance,
    advance_until,
    fixed_entry,
    no_stale_bindings,
    reauth_flows,
    registers_sent,
    setup_entry,
    snapshot_entities,
    state_of,
    wait_for,
)

EVENT = "event.sip_alice_sip_test_registration_event"
REGISTRATION = "sensor.sip_alice_sip_test_registration"
REGISTERED = "binary_sensor.sip_alice_sip_test_registrar_connection"


def event_type(hass: HomeAssistant) -> str | None:
    """The type of the last event the entity fired."""
    state = hass.states.get(EVENT)
    assert state is not None
    return state.attributes.get("event_type")


async def test_event_entity(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    profile_data: Callable[..., dict[str, Any]],
    kamailio_clean: KamailioServer,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(FROZEN_AT)
    entry = fixed_entry(profile_data)
    with patch("custom_components.sip_profiles.PLATFORMS", [Platform.EVENT]):
        await setup_entry(hass, entry)
    assert hass.states.get(EVENT).state == STATE_UNKNOWN
    snapshot_entities(hass, entity_registry, snapshot, entry.entry_id)


async def test_server_error_then_recovered(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(FROZEN_AT)
    coordinator = await setup_entry(hass, make_entry())
    kamailio_clean.set_register_503(60)
    coordinator.async_refresh_registration()
    await wait_for(hass, lambda: hass.states.get(REGISTRATION).state == "failed")
    state = hass.states.get(EVENT)
    assert state.state == "2026-11-21T12:00:00.000+00:00"
    assert state.attributes["event_type"] == "server_error"
    assert state.attributes["reason"] == "server_error"
    assert state.attributes["status_code"] == 503
    assert state.attributes["reason_phrase"] == "Service Unavailable"
    assert hass.states.get(REGISTERED).state == "off"

    # Still failing at the retry: no second event while the failure lasts.
    sent = registers_sent(coordinator)
    await advance(hass, freezer, 60)
    await wait_for(
        hass,
        lambda: (
            registers_sent(coordinator) > sent and state_of(coordinator) is RegistrationState.FAILED
        ),
    )
    assert hass.states.get(EVENT).state == "2026-11-21T12:00:00.000+00:00"

    kamailio_clean.set_register_503(0)
    await advance(hass, freezer, 60)
    await wait_for(hass, lambda: hass.states.get(REGISTRATION).state == "registered")
    state = hass.states.get(EVENT)
    assert state.attributes["event_type"] == "recovered"
    assert state.attributes["status_code"] == 200
    assert state.state == "2026-11-21T12:02:00.000+00:00"
    assert hass.states.get(REGISTERED).state == "on"


async def test_dropped_requests_still_register(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
    freezer: FrozenDateTimeFactory,
) -> None:
    coordinator = await setup_entry(hass, make_entry())
    kamailio_clean.set_drop_every(2)
    sent = registers_sent(coordinator)
    coordinator.async_refresh_registration()
    # Retransmissions (RFC 3261 timer E) are driven by moving time.
    await advance_until(
        hass,
        freezer,
        lambda: (
            registers_sent(coordinator) > sent + 1
            and state_of(coordinator) is RegistrationState.REGISTERED
        ),
    )
    assert len(kamailio_clean.bindings("alice")) == 1
    assert event_type(hass) is None


async def test_server_restart(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
    freezer: FrozenDateTimeFactory,
) -> None:
    coordinator = await setup_entry(hass, make_entry(transport="tcp"))
    assert state_of(coordinator) is RegistrationState.REGISTERED
    kamailio_clean.restart()
    # The TCP flow is lost: the profile reconnects (with backoff) and registers again.
    await advance_until(
        hass,
        freezer,
        lambda: (
            len(kamailio_clean.bindings("alice")) == 1
            and state_of(coordinator) is RegistrationState.REGISTERED
        ),
        step=1.0,
        within=30,
    )
    assert hass.states.get(REGISTRATION).state == "registered"


async def test_wrong_password_at_run_time(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    entry = make_entry()
    coordinator = await setup_entry(hass, entry)
    kamailio_clean.set_password("alice", "changed-elsewhere")
    coordinator.async_refresh_registration()
    await wait_for(hass, lambda: hass.states.get(REGISTRATION).state == "failed")
    assert hass.states.get(REGISTRATION).attributes["failure_reason"] == "auth_failed"
    assert event_type(hass) == "auth_failed"
    assert hass.states.get(EVENT).attributes["status_code"] == 401
    assert len(reauth_flows(hass, entry)) == 1

    # The core does not offer rejected credentials again (a refresh sends no new answer);
    # once they are right again, reloading the profile (what reauthentication does) recovers.
    kamailio_clean.set_password("alice", TEST_ACCOUNTS["alice"])
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(REGISTRATION).state == "registered"


async def test_forbidden_fires_auth_failed(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    entry = make_entry()
    coordinator = await setup_entry(hass, entry)
    kamailio_clean.set_auth_403(True)
    kamailio_clean.set_password("alice", "changed-elsewhere")
    coordinator.async_refresh_registration()
    await wait_for(hass, lambda: hass.states.get(REGISTRATION).state == "failed")
    assert hass.states.get(REGISTRATION).attributes["failure_reason"] == "forbidden"
    assert event_type(hass) == "auth_failed"
    assert hass.states.get(EVENT).attributes["status_code"] == 403
    assert len(reauth_flows(hass, entry)) == 1
