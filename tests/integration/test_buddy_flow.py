"""Adding a buddy asks the server first: a refused watch is told on the form and in repairs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sip_profiles.buddy_repairs import issue_id
from custom_components.sip_profiles.const import DOMAIN
from custom_components.sip_profiles.sip.subscription import SubscriptionKey, SubscriptionState
from tests.harness.kamailio import KamailioServer

from .helpers import no_stale_bindings, setup_entry, wait_for  # noqa: F401 - fixture

MakeEntry = Callable[..., MockConfigEntry]
ELSEWHERE = "sip:bob@elsewhere.example"
"""A domain the test server does not serve: it answers 403 Relaying Forbidden."""


async def start(hass: HomeAssistant, entry: MockConfigEntry) -> Any:
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, "buddy"), context={"source": SOURCE_USER}
    )


async def submit(hass: HomeAssistant, flow_id: str, uri: str, watch: str = "presence") -> Any:
    return await hass.config_entries.subentries.async_configure(
        flow_id, {"uri": uri, "name": "Bob", "watch": watch}
    )


async def add_buddy(hass: HomeAssistant, entry: MockConfigEntry, uri: str) -> str:
    """Add a buddy, refused or not (a refused one is submitted twice); its subentry id."""
    result = await start(hass, entry)
    result = await submit(hass, result["flow_id"], uri)
    if result["type"] is FlowResultType.FORM:
        result = await submit(hass, result["flow_id"], uri)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    [subentry_id] = entry.subentries
    return subentry_id


async def test_a_refused_watch_is_told_then_added_if_asked_again(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    make_entry: MakeEntry,
    kamailio_clean: KamailioServer,
) -> None:
    entry = make_entry()
    coordinator = await setup_entry(hass, entry)
    result = await start(hass, entry)
    assert result["description_placeholders"] == {"profile": entry.title, "status_code": ""}

    result = await submit(hass, result["flow_id"], ELSEWHERE)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "watch_refused"}
    assert result["description_placeholders"]["status_code"] == "403"
    assert entry.subentries == {}
    # The trial subscription is over: nothing of it keeps running in the profile.
    status = coordinator.runner.user_agent.subscription_status(
        SubscriptionKey(ELSEWHERE, "presence")
    )
    assert status is not None
    assert status.state is SubscriptionState.UNSUBSCRIBED

    result = await submit(hass, result["flow_id"], ELSEWHERE)  # the same again: add it anyway
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    [subentry_id] = entry.subentries
    await wait_for(
        hass, lambda: issue_registry.async_get_issue(DOMAIN, issue_id(subentry_id)) is not None
    )
    issue = issue_registry.async_get_issue(DOMAIN, issue_id(subentry_id))
    assert issue.translation_key == "buddy_refused"
    assert issue.translation_placeholders == {
        "profile": entry.title,
        "buddy": "Bob",
        "uri": ELSEWHERE,
        "status_code": "403",
    }
    assert issue.severity is ir.IssueSeverity.WARNING

    # Removing the buddy takes its issue along.
    assert hass.config_entries.async_remove_subentry(entry, subentry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id(subentry_id)) is None


async def test_a_package_not_offered_is_named(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    """A 489 (the server does not offer the event package) suggests the other kind of watching."""
    kamailio_clean.set_no_mwi(True)
    entry = make_entry()
    await setup_entry(hass, entry)
    with patch(
        "custom_components.sip_profiles.buddy_flow.WATCHES", ("presence", "message-summary")
    ):
        result = await start(hass, entry)
        result = await submit(hass, result["flow_id"], kamailio_clean.aor("bob"), "message-summary")
    assert result["errors"] == {"base": "watch_not_offered"}
    assert result["description_placeholders"]["status_code"] == "489"


async def test_an_accepted_watch_is_added_and_watched(
    hass: HomeAssistant, make_entry: MakeEntry, kamailio_clean: KamailioServer
) -> None:
    entry = make_entry()
    coordinator = await setup_entry(hass, entry)
    result = await submit(hass, (await start(hass, entry))["flow_id"], kamailio_clean.aor("bob"))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    key = SubscriptionKey(kamailio_clean.aor("bob"), "presence")
    await wait_for(hass, lambda: coordinator.subscriptions.watched(key).up)


async def test_a_deleted_profile_takes_its_buddies_issues(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    make_entry: MakeEntry,
    kamailio_clean: KamailioServer,
) -> None:
    entry = make_entry()
    await setup_entry(hass, entry)
    subentry_id = await add_buddy(hass, entry, ELSEWHERE)
    await wait_for(
        hass, lambda: issue_registry.async_get_issue(DOMAIN, issue_id(subentry_id)) is not None
    )

    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id(subentry_id)) is None


async def test_an_issue_clears_once_the_server_accepts(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    make_entry: MakeEntry,
    kamailio_clean: KamailioServer,
) -> None:
    """An issue raised before a restart goes once the buddy's subscription comes up."""
    entry = make_entry()
    await setup_entry(hass, entry)
    subentry_id = await add_buddy(hass, entry, kamailio_clean.aor("bob"))
    assert await hass.config_entries.async_unload(entry.entry_id)
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(subentry_id),
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key="buddy_refused",
    )

    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(
        hass, lambda: issue_registry.async_get_issue(DOMAIN, issue_id(subentry_id)) is None
    )
