"""Buddies: added and removed at run time as subentries, following a second client's presence."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import functools
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState, ConfigSubentryData
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import Event, EventStateChangedData, HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.event import async_track_state_change_event
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.sip_profiles.buddies import parse_notifies, parse_notify
from custom_components.sip_profiles.const import DOMAIN
from custom_components.sip_profiles.coordinator import SipProfileCoordinator
from custom_components.sip_profiles.sip.documents.pidf import MyPresence
from custom_components.sip_profiles.sip.subscription import SubscriptionKey, SubscriptionState
from tests.harness.kamailio import KamailioServer, pidf
from tests.harness.publisher import raw_publish

from .helpers import (  # noqa: F401 - fixtures
    FROZEN_AT,
    advance,
    fixed_entry,
    no_stale_bindings,
    second_device,
    setup_entry,
    snapshot_entities,
    wait_for,
)
from .presence import add_buddy, dialog_info

BOB_PRESENCE = "sensor.bob_presence"
BOB_SUBSCRIPTION = "sensor.bob_subscription"
CAROL_LAMP = "sensor.carol_busy_lamp"


def key_of(kamailio: KamailioServer, user: str, package: str = "presence") -> SubscriptionKey:
    """The profile's subscription to ``user``."""
    return SubscriptionKey(kamailio.aor(user), package)


def notifies(coordinator: SipProfileCoordinator, key: SubscriptionKey) -> int:
    """NOTIFY bodies applied for ``key`` so far."""
    return coordinator.subscriptions.watched(key).notifies


def state(hass: HomeAssistant, entity_id: str) -> str | None:
    """The state of ``entity_id``, None when there is no such entity."""
    current = hass.states.get(entity_id)
    return current.state if current is not None else None


async def test_buddy_added_at_run_time_follows_presence_and_removal_unsubscribes(
    hass: HomeAssistant,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    entry = make_entry()
    coordinator = await setup_entry(hass, entry)
    runner = coordinator.runner
    assert runner is not None
    key = key_of(kamailio_clean, "bob")

    subentry_id = await add_buddy(hass, entry, "bob", "Bob")  # a bare user: the profile's domain
    assert entry.state is ConfigEntryState.LOADED
    assert entry.subentries[subentry_id].data["uri"] == "sip:bob@sip.test"
    await wait_for(hass, lambda: state(hass, BOB_PRESENCE) not in (None, STATE_UNAVAILABLE))
    # The diagnostic subscription sensor is there, disabled until a user enables it.
    subscription_entry = entity_registry.async_get(BOB_SUBSCRIPTION)
    assert subscription_entry is not None
    assert subscription_entry.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    assert hass.states.get(BOB_SUBSCRIPTION) is None

    # The buddy's own device, reached through the profile's.
    profile_device = device_registry.async_get_device_by_identifier(
        (DOMAIN, entry.entry_id), entry.entry_id
    )
    buddy_device = device_registry.async_get_device_by_identifier(
        (DOMAIN, subentry_id), entry.entry_id
    )
    assert profile_device is not None
    assert buddy_device is not None
    assert buddy_device.name == "Bob"
    assert (buddy_device.manufacturer, buddy_device.model) == ("sip.test", "Presence")
    assert buddy_device.via_device_id == profile_device.id
    assert buddy_device.config_entry_id == entry.entry_id
    assert buddy_device.config_subentry_id == subentry_id

    async with second_device(hass, kamailio_clean, "bob") as bob:
        for chosen, note, expected in (
            (MyPresence.AVAILABLE, None, "online"),
            (MyPresence.BUSY, "In a meeting", "busy"),
            (MyPresence.OFFLINE, None, "offline"),
        ):
            count = notifies(coordinator, key)
            bob.runner.publish(chosen, note)
            await wait_for(hass, lambda count=count: notifies(coordinator, key) > count)
            # The very next NOTIFY carries the change.
            current = hass.states.get(BOB_PRESENCE)
            assert current is not None
            assert current.state == expected
            assert current.attributes["note"] == note

    entity_ids = {
        e.entity_id for e in er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    }
    assert {BOB_PRESENCE, BOB_SUBSCRIPTION} <= entity_ids

    messages_before = len(coordinator.messages)
    hass.config_entries.async_remove_subentry(entry, subentry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED  # not reloaded
    assert hass.states.get(BOB_PRESENCE) is None
    assert hass.states.get(BOB_SUBSCRIPTION) is None
    assert entity_registry.async_get(BOB_PRESENCE) is None
    assert (
        device_registry.async_get_device_by_identifier((DOMAIN, subentry_id), entry.entry_id)
        is None
    )

    def unsubscribed() -> bool:
        status = runner.user_agent.subscription_status(key)
        return status is not None and status.state is SubscriptionState.UNSUBSCRIBED

    await wait_for(hass, unsubscribed)
    sent = [m.text for m in list(coordinator.messages)[messages_before:]]
    assert any(t.startswith("SUBSCRIBE ") and "Expires: 0" in t for t in sent)
    assert any(t.startswith("NOTIFY ") and "Subscription-State: terminated" in t for t in sent)
    assert key not in coordinator.subscriptions.keys


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_buddies_unavailable_while_the_server_restarts_then_back(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    freezer.move_to(FROZEN_AT)
    entry = make_entry()
    coordinator = await setup_entry(hass, entry)
    await add_buddy(hass, entry, "sip:bob@sip.test", "Bob")
    await wait_for(hass, lambda: state(hass, BOB_SUBSCRIPTION) == "active")
    await asyncio.to_thread(
        raw_publish, kamailio_clean, "bob", pidf(kamailio_clean.aor("bob"), "open")
    )
    await wait_for(hass, lambda: state(hass, BOB_PRESENCE) == "online")

    seen: list[str] = []

    def record(event: Event[EventStateChangedData]) -> None:
        if (new := event.data["new_state"]) is not None:
            seen.append(new.state)

    remove = async_track_state_change_event(hass, [BOB_PRESENCE], record)
    kamailio_clean.restart()  # the new server knows no subscriptions and no presence
    # The refresh (at 90 % of 3600 s) finds no dialog: the subscription starts over.
    await advance(hass, freezer, 3240)
    await wait_for(hass, lambda: STATE_UNAVAILABLE in seen)
    await wait_for(hass, lambda: state(hass, BOB_SUBSCRIPTION) == "active")
    assert state(hass, BOB_PRESENCE) not in (None, STATE_UNAVAILABLE)
    await asyncio.to_thread(
        raw_publish, kamailio_clean, "bob", pidf(kamailio_clean.aor("bob"), "open", "back")
    )
    await wait_for(hass, lambda: hass.states.get(BOB_PRESENCE).attributes["note"] == "back")
    remove()
    assert state(hass, BOB_PRESENCE) == "online"
    downs = [r for r in caplog.records if "subscription to presence of" in r.getMessage()]
    assert [r.levelname for r in downs] == ["INFO", "INFO"]  # down once, back once
    assert "dialog_lost" in downs[0].getMessage()
    assert coordinator.subscriptions.watched(key_of(kamailio_clean, "bob")).up


async def watching_carols_lamp(
    hass: HomeAssistant, entry: MockConfigEntry, kamailio: KamailioServer
) -> tuple[SipProfileCoordinator, SubscriptionKey]:
    """Set up the profile ``entry`` watching Carol's busy lamp, idle so far."""
    coordinator = await setup_entry(hass, entry)
    await add_buddy(hass, entry, "carol@sip.test", "Carol", watch="dialog")
    await wait_for(hass, lambda: state(hass, CAROL_LAMP) == "idle")
    return coordinator, key_of(kamailio, "carol", "dialog")


async def test_busy_lamp_follows_published_dialog_state(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    coordinator, key = await watching_carols_lamp(hass, make_entry(), kamailio_clean)
    carol = kamailio_clean.aor("carol")

    etag: str | None = None
    for version, dialog_state, expected in (
        (1, "early", "ringing"),
        (2, "confirmed", "in_call"),
        (3, "terminated", "idle"),
    ):
        count = notifies(coordinator, key)
        # One publication whose document each PUBLISH replaces, as a phone sends them.
        etag = await asyncio.to_thread(
            functools.partial(
                raw_publish,
                kamailio_clean,
                "carol",
                dialog_info(carol, version, dialog_state, remote="sip:dave@sip.test"),
                event="dialog",
                content_type="application/dialog-info+xml",
                etag=etag,
            )
        )
        assert etag
        await wait_for(hass, lambda count=count: notifies(coordinator, key) > count)
        await wait_for(hass, lambda expected=expected: state(hass, CAROL_LAMP) == expected)
        attributes = hass.states.get(CAROL_LAMP).attributes
        if expected == "idle":
            assert attributes["direction"] is None
        else:
            assert attributes["direction"] == "recipient"
            assert attributes["remote"] == "sip:dave@sip.test"
            assert attributes["remote_name"] == "Caller"


async def test_buddy_subentry_flow_validates_and_refuses_duplicates(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    entry = make_entry()
    await setup_entry(hass, entry)
    await add_buddy(hass, entry, "bob", "Bob")
    manager = hass.config_entries.subentries
    result = await manager.async_init((entry.entry_id, "buddy"), context={"source": "user"})
    result = await manager.async_configure(
        result["flow_id"], {"uri": "sip:", "name": "", "watch": "presence"}
    )
    assert result["errors"] == {"uri": "invalid_address"}
    result = await manager.async_configure(
        result["flow_id"], {"uri": "   ", "name": "", "watch": "presence"}
    )
    assert result["errors"] == {"uri": "invalid_address"}
    result = await manager.async_configure(
        result["flow_id"], {"uri": "sip:bob@sip.test", "watch": "presence"}
    )
    assert result["type"] == "abort"
    assert result["reason"] == "already_configured"
    # The same address watched the other way is another buddy, named by its address.
    result = await manager.async_init((entry.entry_id, "buddy"), context={"source": "user"})
    result = await manager.async_configure(
        result["flow_id"], {"uri": "bob@sip.test", "watch": "dialog"}
    )
    assert result["type"] == "create_entry"
    assert result["title"] == "sip:bob@sip.test"


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_disabled_profile_ends_its_subscriptions(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    entry = make_entry()
    coordinator = await setup_entry(hass, entry)
    await add_buddy(hass, entry, "bob", "Bob")
    await wait_for(hass, lambda: state(hass, BOB_SUBSCRIPTION) == "active")
    coordinator.async_disable()
    await wait_for(hass, lambda: state(hass, BOB_SUBSCRIPTION) == "unsubscribed")
    assert state(hass, BOB_PRESENCE) == STATE_UNAVAILABLE
    coordinator.async_enable()
    await wait_for(hass, lambda: state(hass, BOB_SUBSCRIPTION) == "active")
    await wait_for(hass, lambda: state(hass, BOB_PRESENCE) != STATE_UNAVAILABLE)


BOB_SUBENTRY = "01JSIPBUDDY0BOB00000000000"
CAROL_SUBENTRY = "01JSIPBUDDY0CAROL000000000"


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_buddy_entities(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    profile_data: Callable[..., dict[str, Any]],
    kamailio_clean: KamailioServer,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to(FROZEN_AT)
    base = fixed_entry(profile_data)
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=base.title,
        unique_id=base.unique_id,
        data=dict(base.data),
        entry_id=base.entry_id,
        subentries_data=[
            ConfigSubentryData(
                data={"uri": "sip:bob@sip.test", "name": "Bob", "watch": "presence"},
                subentry_id=BOB_SUBENTRY,
                subentry_type="buddy",
                title="Bob",
                unique_id="presence|sip:bob@sip.test",
            ),
            ConfigSubentryData(
                data={"uri": "sip:carol@sip.test", "name": "Carol", "watch": "dialog"},
                subentry_id=CAROL_SUBENTRY,
                subentry_type="buddy",
                title="Carol",
                unique_id="dialog|sip:carol@sip.test",
            ),
        ],
    )
    await asyncio.to_thread(
        raw_publish, kamailio_clean, "bob", pidf(kamailio_clean.aor("bob"), "open", "Hello")
    )
    coordinator = await setup_entry(hass, entry)
    await wait_for(hass, lambda: state(hass, BOB_PRESENCE) == "online")
    await wait_for(hass, lambda: state(hass, CAROL_LAMP) == "idle")
    assert notifies(coordinator, key_of(kamailio_clean, "bob")) >= 1
    for entity_id in (BOB_PRESENCE, BOB_SUBSCRIPTION, CAROL_LAMP, "sensor.carol_subscription"):
        entity_entry = entity_registry.async_get(entity_id)
        assert entity_entry is not None
        assert entity_entry == snapshot(name=f"{entity_id}-entry")
        current = hass.states.get(entity_id)
        assert current is not None
        assert {"state": current.state, "attributes": dict(current.attributes)} == snapshot(
            name=f"{entity_id}-state"
        )


async def test_diagnostics_show_every_subscription(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    entry = make_entry()
    await setup_entry(hass, entry)
    await add_buddy(hass, entry, "bob", "Bob")
    await wait_for(hass, lambda: state(hass, BOB_PRESENCE) not in (None, STATE_UNAVAILABLE))
    # The voicemail subscription's first NOTIFY has been read: an empty mailbox.
    await wait_for(hass, lambda: state(hass, "sensor.sip_alice_sip_test_voicemail") == "0")
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diagnostics["publication"] is None
    assert diagnostics["subscriptions"] == [
        {
            "uri": "sip:bob@sip.test",
            "package": "presence",
            "state": "active",
            "reason": None,
            "status_code": 200,
            "expires": 3600,
            "notifies": 1,
        },
        {
            "uri": "sip:alice@sip.test",
            "package": "message-summary",
            "state": "active",
            "reason": None,
            "status_code": 200,
            "expires": 3600,
            "notifies": 1,
        },
    ]


async def test_busy_lamp_goes_idle_when_the_notifier_knows_no_dialog(
    hass: HomeAssistant,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    coordinator, key = await watching_carols_lamp(hass, make_entry(), kamailio_clean)
    carol = kamailio_clean.aor("carol")
    subscriptions = coordinator.subscriptions

    def notified(body: str) -> None:
        """A NOTIFY of the live subscription carries ``body``."""
        subscriptions.apply(key, parse_notify("dialog", body.encode(), None))

    notified(dialog_info(carol, 10, "confirmed", remote="sip:dave@sip.test"))
    assert state(hass, CAROL_LAMP) == "in_call"
    # An empty body (RFC 4235 §4.2: the notifier knows no dialog state) in the same dialog.
    notified("")
    assert state(hass, CAROL_LAMP) == "idle"
    assert hass.states.get(CAROL_LAMP).attributes["direction"] is None
    # The documents that follow are numbered afresh or go on; either is taken.
    notified(dialog_info(carol, 3, "early", remote="sip:dave@sip.test"))
    assert state(hass, CAROL_LAMP) == "ringing"


def test_a_body_repeated_in_a_batch_is_read_once_and_each_keeps_its_package() -> None:
    online = pidf("sip:carol@sip.test", "open", "In the office").encode()
    offline = pidf("sip:carol@sip.test", "closed").encode()
    bodies = [("presence", online), ("presence", offline), ("presence", online), ("dialog", b"")]

    parsed = parse_notifies(bodies, None)

    assert parsed == [parse_notify(package, body, None) for package, body in bodies]
    assert parsed[0] is parsed[2]
    assert parsed[0] != parsed[1]
    assert parsed[3] is not None
    assert parsed[3] != parsed[0]
