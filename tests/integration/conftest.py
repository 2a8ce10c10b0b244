"""Fixtures for the Home Assistant tests: real hass, real Kamailio."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest.mock import PropertyMock, patch

from homeassistant.const import CONF_PASSWORD
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from custom_components.sip_profiles.const import (
    CONF_AOR,
    CONF_REGISTRAR,
    CONF_TRANSPORT,
    CONF_VERIFY_TLS,
    DOMAIN,
)
from tests.harness.kamailio import TEST_ACCOUNTS, KamailioServer


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load the integration from custom_components/."""


@pytest.fixture
def entity_registry_enabled_by_default() -> Any:
    """Create entities disabled by default enabled."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        return_value=True,
        new_callable=PropertyMock,
    ):
        yield


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Home Assistant's snapshots (stored in ``snapshots/``, registry ids left out)."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


@pytest.fixture
def profile_data(kamailio_clean: KamailioServer) -> Callable[..., dict[str, Any]]:
    """Config entry data for a test account of the running Kamailio."""

    def make(user: str = "alice", transport: str = "udp", **overrides: Any) -> dict[str, Any]:
        host, port = kamailio_clean.address(transport)
        data: dict[str, Any] = {
            CONF_AOR: kamailio_clean.aor(user),
            CONF_PASSWORD: TEST_ACCOUNTS[user],
            CONF_REGISTRAR: f"{host}:{port}",
            CONF_TRANSPORT: transport,
            CONF_VERIFY_TLS: True,
        }
        data.update(overrides)
        return data

    return make


@pytest.fixture
def make_entry(profile_data: Callable[..., dict[str, Any]]) -> Callable[..., MockConfigEntry]:
    """A config entry (not yet added to hass) for a test account."""

    def make(user: str = "alice", transport: str = "udp", **overrides: Any) -> MockConfigEntry:
        data = profile_data(user, transport, **overrides)
        return MockConfigEntry(
            domain=DOMAIN,
            title=data[CONF_AOR],
            unique_id=f"{data[CONF_AOR]}|{data[CONF_REGISTRAR]}",
            data=data,
        )

    return make
