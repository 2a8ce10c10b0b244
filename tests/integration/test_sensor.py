"""The sensors: registration state with its details, and the other devices' bindings."""

from __future__ import annotations

from collections.abc import Callable
import logging
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.sip_profiles.sip.registration import RegistrationState
from tests.harness.kamailio import KamailioServer

from .helpers import (  # noqa: F401 - fixtures
    FROZEN_AT,
    advance,
    fixed_entry,
    no_stale_bindings,
    second_device,
    setup_entry,
    snapshot_entities,
    state_of,
    wait_for,
)

REGISTRATION = "sensor.sip_alice_sip_test_registration"
VOICEMAIL = "sensor.sip_alice_sip_test_voicemail"
VOICEMAIL_SUBSCRIPTION = "sensor.sip_alice_sip_test_voicemail_subscription"
OTHER_BINDINGS = "sensor.sip_alice_sip_test_other_bindings"


@pytest.fixture(autouse=True)
def only_sensors() -> Any:
    """Set up the sensor platform alone."""
    with patch("custom_components.sip_profiles.PLATFORMS", [Platform.SENSOR]):
        yield


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_sensors(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    profile_data: Callable[..., dict[str, Any]],
    kamailio_clean: KamailioServer,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(FROZEN_AT)
    entry = fixed_entry(profile_data)
    await setup_entry(hass, entry)
    # The voicemail subscription follows the registration, and its first NOTIFY's body is read
    # off the loop: the snapshot shows both settled (an empty mailbox).
    await wait_for(
        hass,
        lambda: (
            getattr(hass.states.get(VOICEMAIL_SUBSCRIPTION), "state", None) == "active"
            and getattr(hass.states.get(VOICEMAIL), "state", None) == "0"
        ),
    )
    snapshot_entities(hass, entity_registry, snapshot, entry.entry_id)


async def test_other_bindings_sensor_is_disabled_by_default(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    await setup_entry(hass, make_entry())
    entity = entity_registry.async_get(OTHER_BINDINGS)
    assert entity is not None
    assert entity.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    assert hass.states.get(OTHER_BINDINGS) is None


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_other_bindings_counts_another_device(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    coordinator = await setup_entry(hass, make_entry())
    assert hass.states.get(OTHER_BINDINGS).state == "0"
    async with second_device(hass, kamailio_clean):
        coordinator.async_refresh_registration()
        await wait_for(hass, lambda: hass.states.get(OTHER_BINDINGS).state == "1")
    assert len(coordinator.data.status.bindings) == 2


async def test_failure_details_then_recovery(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    freezer.move_to(FROZEN_AT)
    coordinator = await setup_entry(hass, make_entry())
    state = hass.states.get(REGISTRATION)
    assert state.state == "registered"
    assert state.attributes["refresh_at"] == "2026-11-21T12:54:00+00:00"
    # What is not known is left out, not shown as "Unknown".
    assert "retry_at" not in state.attributes
    assert "failure_reason" not in state.attributes

    kamailio_clean.set_register_503(120)
    coordinator.async_refresh_registration()
    await wait_for(hass, lambda: hass.states.get(REGISTRATION).state == "failed")
    attributes = hass.states.get(REGISTRATION).attributes
    assert attributes["status_code"] == 503
    assert attributes["reason_phrase"] == "Service Unavailable"
    assert attributes["failure_reason"] == "server_error"
    assert attributes["retry_at"] == "2026-11-21T12:02:00+00:00"

    kamailio_clean.set_register_503(0)
    await advance(hass, freezer, 119)
    assert state_of(coordinator) is RegistrationState.FAILED
    await advance(hass, freezer, 1)
    await wait_for(hass, lambda: hass.states.get(REGISTRATION).state == "registered")
    attributes = hass.states.get(REGISTRATION).attributes
    assert "failure_reason" not in attributes
    assert "retry_at" not in attributes
    assert attributes["status_code"] == 200
    # The outage is logged once when it starts and once when it ends, at info level.
    logged = [
        (record.levelname, record.getMessage())
        for record in caplog.records
        if record.name.startswith("custom_components.sip_profiles")
        and record.levelno >= logging.INFO
    ]
    # The voicemail subscription is made again in a new dialog once the registration is back.
    voicemail = "sip:alice@sip.test: subscription to message-summary of sip:alice@sip.test"
    assert logged == [
        ("INFO", "sip:alice@sip.test: registration failed (server_error, 503 Service Unavailable)"),
        ("INFO", "sip:alice@sip.test: registered again"),
        ("INFO", f"{voicemail} is down (dialog_lost)"),
        ("INFO", f"{voicemail} is back"),
    ]
    assert attributes["refresh_at"] == "2026-11-21T12:56:00+00:00"


async def test_disabled_profile_shows_disabled(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    entry = make_entry(enabled=False)
    await setup_entry(hass, entry)
    state = hass.states.get(REGISTRATION)
    assert state.state == "disabled"
    assert "contact" not in state.attributes
    assert kamailio_clean.bindings("alice") == []
