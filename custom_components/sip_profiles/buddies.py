"""The subscriptions of one profile: its buddies and, when it publishes, its watchers.

``ProfileSubscriptions`` owns every subscription a profile wants: one per buddy (presence or
dialog, the busy lamp) and one to our own address of record for ``presence.winfo``. It
subscribes and unsubscribes through the runner, parses the NOTIFY bodies in the executor (one
after the other per subscription, so that versioned documents apply in order) and keeps a
``Watched`` snapshot per subscription for the entities, which listen per subscription.

A subscription that goes down (failed, or starting over after its dialog was lost) is logged
once with its reason, and its coming back once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback

from .const import (
    CONF_BUDDY_NAME,
    CONF_BUDDY_URI,
    CONF_WATCH,
    LOGGER,
    SUBENTRY_BUDDY,
    WATCH_DIALOG,
    WATCH_PRESENCE,
)
from .profile import InvalidAddressError, parse_address
from .sip.aio.runner import UserAgentRunner
from .sip.documents import (
    ApplyResult,
    DialogInfo,
    DialogTracker,
    DocumentError,
    Lamp,
    LampState,
    PresenceState,
    Watcher,
    WatcherInfo,
    WatcherTracker,
    best_note,
    parse_dialog_info,
    parse_pidf,
    parse_watcherinfo,
    summarize,
)
from .sip.errors import LocalProtocolError
from .sip.subscription import (
    NotifyReceived,
    SubscriptionChanged,
    SubscriptionKey,
    SubscriptionState,
    SubscriptionStatus,
)
from .sip.uri import SipUri
from .sip.useragent import UserAgentEvent

UP_STATES = frozenset({SubscriptionState.ACTIVE, SubscriptionState.PENDING})
"""States in which the notifier keeps us informed (pending: not yet authorized to see)."""


@dataclass(frozen=True, slots=True)
class Buddy:
    """A buddy of a profile, read from its subentry."""

    subentry_id: str
    name: str
    uri: SipUri
    watch: str
    """``presence`` or ``dialog``: the event package subscribed to."""

    @property
    def key(self) -> SubscriptionKey:
        """The subscription that watches the buddy."""
        return SubscriptionKey(str(self.uri), self.watch)


def buddies_of(entry: ConfigEntry) -> dict[str, Buddy]:
    """The buddies of a profile by subentry id; unreadable subentries are logged and left out."""
    buddies: dict[str, Buddy] = {}
    for subentry in entry.subentries.values():
        if subentry.subentry_type != SUBENTRY_BUDDY:
            continue
        if (buddy := _buddy(subentry)) is not None:
            buddies[subentry.subentry_id] = buddy
    return buddies


def _buddy(subentry: ConfigSubentry) -> Buddy | None:
    data = subentry.data
    watch = data.get(CONF_WATCH, WATCH_PRESENCE)
    try:
        uri = parse_address(str(data.get(CONF_BUDDY_URI, "")))
    except InvalidAddressError as err:
        LOGGER.error("Buddy %s has an unreadable address: %s", subentry.title, err)
        return None
    if watch not in (WATCH_PRESENCE, WATCH_DIALOG):
        LOGGER.error("Buddy %s watches an unknown event package %r", subentry.title, watch)
        return None
    return Buddy(subentry.subentry_id, str(data.get(CONF_BUDDY_NAME) or subentry.title), uri, watch)


@dataclass(frozen=True, slots=True)
class Watched:
    """What one subscription knows: its status and the last state its NOTIFYs carried."""

    status: SubscriptionStatus = field(
        default_factory=lambda: SubscriptionStatus(SubscriptionState.UNSUBSCRIBED)
    )
    presence: PresenceState = PresenceState.UNKNOWN
    note: str | None = None
    activities: tuple[str, ...] = ()
    lamp: Lamp = field(default_factory=lambda: Lamp(LampState.IDLE))
    watchers: tuple[Watcher, ...] = ()
    notifies: int = 0
    """NOTIFY bodies applied since the profile started."""

    @property
    def up(self) -> bool:
        """Whether the notifier keeps us informed."""
        return self.status.state in UP_STATES


@dataclass(frozen=True, slots=True)
class _Presence:
    presence: PresenceState
    note: str | None
    activities: tuple[str, ...]


type _Parsed = _Presence | DialogInfo | WatcherInfo | None


def parse_notify(package: str, body: bytes, language: str | None) -> _Parsed:
    """Read a NOTIFY body of ``package``; runs in the executor (XML).

    An empty presence body is unknown presence; an empty dialog body means no dialogs. A body
    that cannot be read is logged and ignored (None).
    """
    try:
        if package == WATCH_PRESENCE:
            document = parse_pidf(body) if body.strip() else None
            return _Presence(
                summarize(document),
                best_note(document, language),
                tuple(
                    sorted(document.activities | set(document.other_activities)) if document else ()
                ),
            )
        if not body.strip():
            return None
        if package == WATCH_DIALOG:
            return parse_dialog_info(body)
        return parse_watcherinfo(body)
    except DocumentError as err:
        LOGGER.debug("Ignoring an unreadable %s document: %s", package, err)
        return None


class ProfileSubscriptions:
    """Keeps a profile's wanted subscriptions up and their state at hand."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry, title: str) -> None:
        """Prepare; ``attach`` hands over the runner."""
        self._hass = hass
        self._entry = entry
        self._title = title
        self._runner: UserAgentRunner | None = None
        self._remove_listener: CALLBACK_TYPE | None = None
        self._wanted: dict[SubscriptionKey, SipUri] = {}
        self._running = False
        self._watched: dict[SubscriptionKey, Watched] = {}
        self._dialogs: dict[SubscriptionKey, DialogTracker] = {}
        self._watcher_trackers: dict[SubscriptionKey, WatcherTracker] = {}
        self._queues: dict[SubscriptionKey, deque[NotifyReceived]] = {}
        self._draining: set[SubscriptionKey] = set()
        self._listeners: dict[SubscriptionKey, list[CALLBACK_TYPE]] = {}
        self._logged_down: set[SubscriptionKey] = set()

    # -- set-up --------------------------------------------------------------------------------

    def attach(self, runner: UserAgentRunner) -> None:
        """Use ``runner`` for the subscriptions and listen to its events."""
        self._runner = runner
        self._remove_listener = runner.add_listener(self._on_event)

    def detach(self) -> None:
        """Forget the runner (it is stopping); every subscription reads as unsubscribed."""
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        self._runner = None
        self._running = False
        for key in list(self._watched):
            self._set(key, Watched())

    @property
    def keys(self) -> tuple[SubscriptionKey, ...]:
        """The wanted subscriptions."""
        return tuple(self._wanted)

    def watched(self, key: SubscriptionKey) -> Watched:
        """What subscription ``key`` knows (unsubscribed when it is not wanted)."""
        return self._watched.get(key) or Watched()

    @property
    def all_watched(self) -> Mapping[SubscriptionKey, Watched]:
        """Every wanted subscription's snapshot."""
        return {key: self.watched(key) for key in self._wanted}

    @callback
    def async_add_listener(self, key: SubscriptionKey, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call ``listener()`` whenever subscription ``key`` changes; returns its remover."""
        listeners = self._listeners.setdefault(key, [])
        listeners.append(listener)

        def remove() -> None:
            listeners.remove(listener)
            if not listeners:
                self._listeners.pop(key, None)

        return remove

    # -- commands ------------------------------------------------------------------------------

    def set_wanted(self, wanted: Iterable[tuple[SubscriptionKey, SipUri]]) -> None:
        """Subscribe to what is newly wanted and unsubscribe from what no longer is."""
        new = dict(wanted)
        removed = [key for key in self._wanted if key not in new]
        added = [key for key in new if key not in self._wanted]
        self._wanted = new
        for key in removed:
            self._logged_down.discard(key)
            if self._running:
                self._unsubscribe(key)
            self._forget(key)
        for key in added:
            self._watched.setdefault(key, Watched())
            if self._running:
                self._subscribe(key)

    def resume(self) -> None:
        """Keep every wanted subscription up (the profile is enabled)."""
        self._running = True
        for key in self._wanted:
            self._subscribe(key)

    def pause(self) -> None:
        """End every subscription (the profile is disabled)."""
        self._running = False
        for key in self._wanted:
            self._unsubscribe(key)
        self._logged_down.clear()

    def unsubscribe_all(self) -> list[SubscriptionKey]:
        """End every subscription before the runner stops; returns those still being ended."""
        self.pause()
        runner = self._runner
        if runner is None:
            return []
        return [
            key
            for key in self._wanted
            if (status := runner.user_agent.subscription_status(key)) is not None
            and status.state is SubscriptionState.UNSUBSCRIBING
        ]

    # -- internals -----------------------------------------------------------------------------

    def _subscribe(self, key: SubscriptionKey) -> None:
        runner = self._runner
        if runner is None:
            return
        try:
            runner.subscribe(self._wanted[key], key.package)
        except LocalProtocolError as err:
            # No flow yet (it is being reopened): the flow's return restarts the dialogs.
            LOGGER.debug("%s: cannot subscribe to %s yet: %s", self._title, key.uri, err)

    def _unsubscribe(self, key: SubscriptionKey) -> None:
        if self._runner is not None:
            self._runner.unsubscribe(key)

    def _forget(self, key: SubscriptionKey) -> None:
        self._watched.pop(key, None)
        self._dialogs.pop(key, None)
        self._watcher_trackers.pop(key, None)
        self._queues.pop(key, None)

    @callback
    def _on_event(self, event: UserAgentEvent) -> None:
        if isinstance(event, SubscriptionChanged) and event.key in self._wanted:
            self._on_status(event.key, event.status)
        elif isinstance(event, NotifyReceived) and event.key in self._wanted:
            self._queues.setdefault(event.key, deque()).append(event)
            if event.key not in self._draining:
                self._draining.add(event.key)
                self._entry.async_create_background_task(
                    self._hass,
                    self._async_drain(event.key),
                    f"{self._title}: NOTIFY of {event.key.package} for {event.key.uri}",
                    eager_start=False,
                )

    def _on_status(self, key: SubscriptionKey, status: SubscriptionStatus) -> None:
        current = self.watched(key)
        if status.state not in UP_STATES:
            # A new dialog numbers its documents anew and starts with the full state.
            if (tracker := self._dialogs.get(key)) is not None:
                tracker.reset()
            if (watchers := self._watcher_trackers.get(key)) is not None:
                watchers.reset()
        self._log_status(key, status)
        self._set(key, replace(current, status=status))

    def _log_status(self, key: SubscriptionKey, status: SubscriptionStatus) -> None:
        what = f"{key.package} of {key.uri}"
        if status.state in UP_STATES:
            if key in self._logged_down:
                self._logged_down.discard(key)
                LOGGER.info("%s: subscription to %s is back", self._title, what)
            return
        down = status.state is SubscriptionState.FAILED or (
            status.state is SubscriptionState.SUBSCRIBING and status.reason is not None
        )
        if down and self._running and key not in self._logged_down:
            self._logged_down.add(key)
            LOGGER.warning(
                "%s: subscription to %s is down (%s%s)",
                self._title,
                what,
                status.reason.value if status.reason else status.state.value,
                f", {status.status_code}" if status.status_code else "",
            )

    async def _async_drain(self, key: SubscriptionKey) -> None:
        """Parse and apply the queued NOTIFYs of ``key`` in order."""
        language = self._hass.config.language
        try:
            while (queue := self._queues.get(key)) and self._runner is not None:
                event = queue.popleft()
                parsed = await self._hass.async_add_executor_job(
                    parse_notify, key.package, event.body, language
                )
                if key in self._wanted:
                    self._apply(key, parsed)
        finally:
            self._draining.discard(key)

    def _apply(self, key: SubscriptionKey, parsed: _Parsed) -> None:
        current = replace(self.watched(key), notifies=self.watched(key).notifies + 1)
        if isinstance(parsed, _Presence):
            current = replace(
                current,
                presence=parsed.presence,
                note=parsed.note,
                activities=parsed.activities,
            )
        elif key.package == WATCH_DIALOG:
            tracker = self._dialogs.setdefault(key, DialogTracker())
            if isinstance(parsed, DialogInfo):
                self._check(key, tracker.apply(parsed))
            current = replace(current, lamp=tracker.lamp)
        elif isinstance(parsed, WatcherInfo):
            tracker_w = self._watcher_trackers.setdefault(key, WatcherTracker())
            self._check(key, tracker_w.apply(parsed))
            current = replace(
                current,
                watchers=tuple(
                    watcher
                    for watcher_list in tracker_w.watcher_lists
                    if watcher_list.package == WATCH_PRESENCE
                    for watcher in watcher_list.watchers
                ),
            )
        self._set(key, current)

    def _check(self, key: SubscriptionKey, result: ApplyResult) -> None:
        if result is ApplyResult.RESYNC_NEEDED:
            # The next full document (at the latest, the next subscription) catches up.
            LOGGER.debug("%s: missed a %s document of %s", self._title, key.package, key.uri)

    def _set(self, key: SubscriptionKey, watched: Watched) -> None:
        if key not in self._wanted:
            return
        if self._watched.get(key) == watched:
            return
        self._watched[key] = watched
        for listener in list(self._listeners.get(key, ())):
            listener()
