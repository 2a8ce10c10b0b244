"""Repair issues: raised by what only the user can fix, cleared once the profile works again."""

from __future__ import annotations

from collections.abc import Callable

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sip_profiles.const import CONF_VERIFY_TLS, DOMAIN
from tests.harness.kamailio import TEST_ACCOUNTS, KamailioServer

from .helpers import no_stale_bindings, setup_entry, wait_for  # noqa: F401 - fixture

EVENT = "event.sip_alice_sip_test_registration_event"
REGISTRATION = "sensor.sip_alice_sip_test_registration"


async def test_unknown_account(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    entry = make_entry()
    coordinator = await setup_entry(hass, entry)
    issue_id = f"unknown_account_{entry.entry_id}"
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None

    kamailio_clean.remove_account("alice")
    coordinator.async_refresh_registration()
    await wait_for(hass, lambda: hass.states.get(REGISTRATION).state == "failed")
    assert hass.states.get(REGISTRATION).attributes["failure_reason"] == "not_found"
    assert hass.states.get(REGISTRATION).attributes["status_code"] == 404
    assert hass.states.get(EVENT).attributes["event_type"] == "rejected"
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "unknown_account"
    assert issue.translation_placeholders == {"profile": "sip:alice@sip.test"}
    assert issue.severity is ir.IssueSeverity.ERROR
    assert not issue.is_fixable

    kamailio_clean.set_password("alice", TEST_ACCOUNTS["alice"])
    coordinator.async_refresh_registration()
    await wait_for(hass, lambda: hass.states.get(REGISTRATION).state == "registered")
    assert hass.states.get(EVENT).attributes["event_type"] == "recovered"
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


async def test_unknown_account_at_start_up(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    kamailio_clean.remove_account("alice")
    entry = make_entry()
    await setup_entry(hass, entry)
    # Not an error of the set-up: the profile shows the failure and the repair says why.
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get(REGISTRATION).state == "failed"
    assert issue_registry.async_get_issue(DOMAIN, f"unknown_account_{entry.entry_id}")


async def test_untrusted_certificate(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    entry = make_entry(transport="tls")
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason is not None
    assert entry.reason.startswith("The certificate of the SIP server is not trusted")
    issue_id = f"tls_untrusted_{entry.entry_id}"
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "tls_untrusted"
    assert issue.translation_placeholders == {"profile": "sip:alice@sip.test"}

    # The user trusts this server: the profile connects and the issue is gone.
    hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_VERIFY_TLS: False})
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get(REGISTRATION).state == "registered"
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
