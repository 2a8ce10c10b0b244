"""Many profiles and buddies in one Home Assistant: state writes, NOTIFY bursts and the stop."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
import contextlib
import functools
import logging
import os
import threading
import time
from typing import Any, cast

from homeassistant.config_entries import ConfigSubentryData
from homeassistant.const import CONF_PASSWORD, EVENT_HOMEASSISTANT_STOP, EVENT_STATE_CHANGED
from homeassistant.core import Event, HomeAssistant
import pytest

from custom_components.sip_profiles import buddies
from custom_components.sip_profiles.const import CONF_AOR
from custom_components.sip_profiles.coordinator import SipProfileCoordinator
from custom_components.sip_profiles.sip.registration import RegistrationState
from custom_components.sip_profiles.sip.subscription import SubscriptionKey, SubscriptionState
from tests.harness.kamailio import KamailioServer, KamailioUnavailable, pidf
from tests.harness.publisher import raw_publish

from .helpers import entry_of, setup_entry, wait_for
from .presence import dialog_info
from .test_my_presence import PUBLISHING, published

BOB_PRESENCE = "sensor.bob_presence"
CAROL_LAMP = "sensor.carol_busy_lamp"


@pytest.fixture
def kamailio_clean(socket_enabled: None) -> Iterator[KamailioServer]:
    """A Kamailio of the test's own: the thousands of subscriptions and publications a test at
    scale leaves behind (ended only as far as the stop's bound allows) reach no other test."""
    try:
        server = KamailioServer()
    except KamailioUnavailable as err:
        pytest.skip(f"real SIP server unavailable: {err}")
    with server:
        yield server


def buddy(uri: str, name: str, watch: str = "presence") -> ConfigSubentryData:
    """A buddy subentry watching ``uri``."""
    return ConfigSubentryData(
        data={"uri": uri, "name": name, "watch": watch},
        subentry_type="buddy",
        title=name,
        unique_id=f"{watch}|{uri}",
    )


@contextlib.contextmanager
def state_writes(hass: HomeAssistant) -> Iterator[Counter[str]]:
    """Count the state changes per entity while the block runs."""
    writes: Counter[str] = Counter()

    def count(event: Event[Any]) -> None:
        writes[event.data["entity_id"]] += 1

    remove = hass.bus.async_listen(EVENT_STATE_CHANGED, count)
    try:
        yield writes
    finally:
        remove()


def active(coordinator: SipProfileCoordinator) -> bool:
    """Whether every subscription of the profile is active."""
    return all(
        w.status.state is SubscriptionState.ACTIVE
        for w in coordinator.subscriptions.all_watched.values()
    )


async def test_a_notify_writes_the_state_of_its_buddy_and_nothing_else(
    hass: HomeAssistant,
    profile_data: Callable[..., dict[str, Any]],
    kamailio_clean: KamailioServer,
) -> None:
    # Real time (no freezer): a date recomputed at every event would move and be written.
    entry = entry_of(
        profile_data(),
        subentries_data=[
            buddy("sip:bob@sip.test", "Bob"),
            buddy("sip:carol@sip.test", "Carol", "dialog"),
        ],
        options=PUBLISHING,
    )
    coordinator = await setup_entry(hass, entry)
    bob = SubscriptionKey(kamailio_clean.aor("bob"), "presence")
    carol = SubscriptionKey(kamailio_clean.aor("carol"), "dialog")

    def applied(key: SubscriptionKey) -> int:
        return coordinator.subscriptions.watched(key).notifies

    # The first NOTIFY of each subscription (nothing published yet) is applied before we start.
    await wait_for(
        hass,
        lambda: active(coordinator) and published(entry) and applied(bob) and applied(carol),
    )
    assert hass.states.get(BOB_PRESENCE).state == "unknown"

    etag: str | None = None  # one publication whose document each PUBLISH replaces
    for basic, note, expected in (
        ("open", "at my desk", "online"),
        ("closed", None, "offline"),
        ("open", "back", "online"),
    ):
        before = applied(bob)
        with state_writes(hass) as writes:
            etag = await asyncio.to_thread(
                functools.partial(
                    raw_publish,
                    kamailio_clean,
                    "bob",
                    pidf(kamailio_clean.aor("bob"), basic, note),
                    etag=etag,
                )
            )
            await wait_for(hass, lambda before=before: applied(bob) > before)
        assert hass.states.get(BOB_PRESENCE).state == expected
        assert writes == {BOB_PRESENCE: 1}

    before = applied(carol)
    with state_writes(hass) as writes:
        await asyncio.to_thread(
            raw_publish,
            kamailio_clean,
            "carol",
            dialog_info(kamailio_clean.aor("carol"), 1, "confirmed", remote="sip:dave@sip.test"),
            event="dialog",
            content_type="application/dialog-info+xml",
        )
        await wait_for(hass, lambda: applied(carol) > before)
    assert hass.states.get(CAROL_LAMP).state == "in_call"
    assert writes == {CAROL_LAMP: 1}


BURST = 60


@contextlib.contextmanager
def notify_parse_jobs(hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Count the executor jobs that parse NOTIFY bodies (``[count]``) while the block runs."""
    jobs = [0]
    submit = hass.async_add_executor_job

    def counted(target: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        if getattr(target, "__module__", None) == buddies.__name__:
            jobs[0] += 1
        return submit(target, *args)

    monkeypatch.setattr(hass, "async_add_executor_job", counted)
    try:
        yield jobs
    finally:
        monkeypatch.undo()


async def test_a_burst_of_notifies_is_parsed_in_a_few_executor_jobs(
    hass: HomeAssistant,
    profile_data: Callable[..., dict[str, Any]],
    kamailio_clean: KamailioServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    users = [f"burst{index}" for index in range(BURST)]
    for user in users:
        kamailio_clean.set_password(user, f"{user}-secret")
    entry = entry_of(
        profile_data(), subentries_data=[buddy(kamailio_clean.aor(user), user) for user in users]
    )
    coordinator = await setup_entry(hass, entry)
    keys = [SubscriptionKey(kamailio_clean.aor(user), "presence") for user in users]
    await wait_for(
        hass,
        lambda: (
            active(coordinator)
            and all(coordinator.subscriptions.watched(key).notifies for key in keys)
        ),
    )

    def publish(users: list[str]) -> None:
        for user in users:
            raw_publish(kamailio_clean, user, pidf(kamailio_clean.aor(user), "open"))

    def offline() -> list[str]:
        return [u for u in users if hass.states.get(f"sensor.{u}_presence").state != "online"]

    with notify_parse_jobs(hass, monkeypatch) as jobs:
        # Every buddy publishes while the event loop is busy (held here): the NOTIFYs come in
        # together, as in a burst that meets a loaded Home Assistant.
        publisher = threading.Thread(target=publish, args=(users,))
        publisher.start()
        publisher.join()
        # Now and then the test Kamailio sends no NOTIFY for a PUBLISH it accepted (its log
        # has no send_notify_request for it): those buddies publish once more.
        with contextlib.suppress(AssertionError):
            await wait_for(hass, lambda: not offline(), within=5)
        if missed := offline():
            await hass.async_add_executor_job(publish, missed)
        await wait_for(hass, lambda: not offline())
    assert jobs[0] <= BURST // 10, f"{jobs[0]} executor jobs for {BURST} NOTIFYs"


class _AppliedAt:
    """Stands in for a profile's subscriptions: when each parsed body was applied, in order."""

    def __init__(self) -> None:
        self.applied: list[tuple[float, SubscriptionKey]] = []

    def apply(self, key: SubscriptionKey, parsed: object) -> None:
        self.applied.append((time.monotonic(), key))


async def test_a_burst_is_applied_once_its_notifies_stop_coming(hass: HomeAssistant) -> None:
    queue = buddies.NotifyBodies(hass)
    owner = _AppliedAt()
    body = pidf("sip:carol@sip.test", "open").encode()
    keys = [SubscriptionKey(f"sip:b{index}@sip.test", "presence") for index in range(40)]
    # More bodies at once than a burst needs, then the rest a few milliseconds apart: the
    # server is still sending, so nothing is applied (no state written) until it stops.
    for key in keys[:25]:
        queue.add(cast(buddies.ProfileSubscriptions, owner), key, body)
    for key in keys[25:]:
        await asyncio.sleep(buddies.BURST_CALM / 3)
        queue.add(cast(buddies.ProfileSubscriptions, owner), key, body)
    last_added = time.monotonic()

    await wait_for(hass, lambda: len(owner.applied) == len(keys))

    assert [key for _, key in owner.applied] == keys
    assert owner.applied[0][0] >= last_added


BUDDIES_PER_PROFILE = 10
PROFILES = int(os.environ.get("SIP_PROFILES_STOP_PROFILES", "30"))
"""Profiles of the stop test; the full scale (200) runs with SIP_PROFILES_STOP_PROFILES=200."""


async def test_stop_withdraws_every_profile_at_once_and_writes_no_state(
    hass: HomeAssistant,
    profile_data: Callable[..., dict[str, Any]],
    kamailio_clean: KamailioServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    users = [f"stop{index}" for index in range(PROFILES)]
    for user in users:
        kamailio_clean.set_password(user, f"{user}-secret")
    coordinators: list[SipProfileCoordinator] = []
    for index, user in enumerate(users):
        data = profile_data() | {
            CONF_AOR: kamailio_clean.aor(user),
            CONF_PASSWORD: f"{user}-secret",
        }
        watched = [
            buddy(kamailio_clean.aor(users[(index + step) % PROFILES]), f"{user} buddy {step}")
            for step in range(1, BUDDIES_PER_PROFILE + 1)
        ]
        coordinators.append(await setup_entry(hass, entry_of(data, subentries_data=watched)))
    await wait_for(hass, lambda: all(active(c) for c in coordinators), within=60)
    assert all(c.data.status.state is RegistrationState.REGISTERED for c in coordinators)
    runners = [c.runner for c in coordinators]

    caplog.clear()
    caplog.set_level(logging.WARNING)
    with state_writes(hass) as writes:
        started = time.monotonic()
        hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
        await hass.async_block_till_done()
        took = time.monotonic() - started
    # (asyncio's own warnings are left out: the tests run its debug mode, slow by design)
    assert not [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.ERROR
        or (record.levelno >= logging.WARNING and record.name != "asyncio")
    ]
    assert not writes  # what goes away is not written
    assert all(c.runner is None for c in coordinators)
    for runner in runners:
        assert runner is not None
        user_agent = runner.user_agent
        assert all(
            status.state is SubscriptionState.UNSUBSCRIBED
            for status in user_agent.subscriptions.values()
        )
        assert user_agent.registration.state is RegistrationState.UNREGISTERED
    assert all(kamailio_clean.bindings(user) == [] for user in users)
    print(f"stop of {PROFILES} profiles x {BUDDIES_PER_PROFILE} buddies: {took:.2f} s")
