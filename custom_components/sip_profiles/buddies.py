"""The subscriptions of one profile: its buddies and, when it publishes, its watchers.

``ProfileSubscriptions`` owns every subscription a profile wants: one per buddy (presence or
dialog, the busy lamp) and one to our own address of record for ``presence.winfo``. It
subscribes and unsubscribes through the runner and keeps a ``Watched`` snapshot per
subscription for the entities, which listen per subscription.

The NOTIFY bodies of every profile go through one ``NotifyBodies`` queue: the core has answered
each NOTIFY on the wire already, and the queue parses the bodies that wait, many per executor
job, then applies the results in slices so that a burst never holds the event loop. A burst is
gathered until its NOTIFYs stop coming, so that the state writes it causes never slow down the
answers. One queue, worked in order, also keeps each subscription's versioned documents in order.

A subscription that goes down (failed, or starting over after its dialog was lost) is logged
once, at info level, with its reason, and its coming back once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.singleton import singleton

from .const import (
    CONF_BUDDY_NAME,
    CONF_BUDDY_URI,
    CONF_WATCH,
    DOMAIN,
    LOGGER,
    MWI_PACKAGE,
    SUBENTRY_BUDDY,
    WATCH_DIALOG,
    WATCH_PRESENCE,
)
from .profile import InvalidAddressError, parse_address
from .sip.aio.runner import UserAgentRunner
from .sip.client import FailureReason
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
from .sip.documents.message_summary import MessageSummary, parse_message_summary
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
    key: SubscriptionKey = field(init=False, repr=False, compare=False)
    """The subscription that watches the buddy: made once, shared by every holder of the key
    (the subscriptions, the entities, the repairs) rather than a copy of the URI for each."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", SubscriptionKey(str(self.uri), self.watch))


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
    summary: MessageSummary | None = None
    """What the voicemail server said last (message-summary)."""
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


@dataclass(frozen=True, slots=True)
class _NoDialogs:
    """An empty dialog-info body: the notifier knows of no dialog (RFC 4235 §4.2)."""


NO_DIALOGS = _NoDialogs()
NO_MESSAGES = MessageSummary(waiting=False)

type _Parsed = _Presence | DialogInfo | _NoDialogs | WatcherInfo | MessageSummary | None


def parse_notify(package: str, body: bytes, language: str | None) -> _Parsed:
    """Read a NOTIFY body of ``package``; runs in the executor (XML).

    An empty presence body is unknown presence; an empty dialog body means no dialogs, an empty
    message summary no messages. A body that cannot be read is logged and ignored (None).
    """
    empty = not body.strip()
    try:
        if package == WATCH_PRESENCE:
            document = None if empty else parse_pidf(body)
            return _Presence(
                summarize(document),
                best_note(document, language),
                tuple(
                    sorted(document.activities | set(document.other_activities)) if document else ()
                ),
            )
        if package == WATCH_DIALOG:
            return NO_DIALOGS if empty else parse_dialog_info(body)
        if package == MWI_PACKAGE:
            # A mailbox with no state published yet has nothing waiting.
            return NO_MESSAGES if empty else parse_message_summary(body)
        if empty:
            return None
        return parse_watcherinfo(body)
    except DocumentError as err:
        LOGGER.debug("Ignoring an unreadable %s document: %s", package, err)
        return None


def parse_notifies(bodies: list[tuple[str, bytes]], language: str | None) -> list[_Parsed]:
    """Read many NOTIFY bodies, each of its package; one executor job for the lot.

    A body repeated in the lot is read once and its (immutable) result shared: a server sends
    one document to every watcher of a presentity, so a burst repeats each body many times.
    """
    read: dict[tuple[str, bytes], _Parsed] = {}
    for item in bodies:
        if item not in read:
            read[item] = parse_notify(*item, language)
    return [read[item] for item in bodies]


MAX_PARSE_BATCH = 5000
"""NOTIFY bodies parsed in one executor job at most (repeated bodies are read once)."""
GATHER_QUIET_TURNS = 4
"""Turns of the loop without a new NOTIFY body that end the gathering of a batch."""
BURST_BODIES = 20
"""Bodies gathered within those turns that make a burst: the server is still sending."""
BURST_CALM = 0.03
"""Seconds without a new NOTIFY body that end the gathering of a burst."""
BURST_GATHER_MAX = 1.0
"""Seconds a burst is gathered at most before its first states are written."""
APPLY_SLICE = 50
"""Parsed bodies applied (entity states written) before the event loop serves others again."""


@dataclass(frozen=True, slots=True)
class _Received:
    owner: ProfileSubscriptions
    key: SubscriptionKey
    body: bytes


class NotifyBodies:
    """The NOTIFY bodies of every profile, parsed in batches off the loop and applied in order."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Start empty; the first body queued starts the work."""
        self._hass = hass
        self._waiting: deque[_Received] = deque()
        self._working = False

    def add(self, owner: ProfileSubscriptions, key: SubscriptionKey, body: bytes) -> None:
        """Queue the body of a NOTIFY of ``owner``'s subscription ``key``."""
        self._waiting.append(_Received(owner, key, body))
        if not self._working:
            self._working = True
            # Not eager: the NOTIFYs read in this turn of the loop join the first batch.
            self._hass.async_create_background_task(
                self._async_work(), f"{DOMAIN}: NOTIFY bodies", eager_start=False
            )

    async def _async_work(self) -> None:
        language = self._hass.config.language
        waiting = self._waiting
        try:
            while waiting:
                # A burst comes in over many turns of the loop (a datagram per socket per turn,
                # retransmissions among them): gather it until a few turns in a row bring
                # nothing more, or the batch is full. An idle loop turns in microseconds.
                quiet = 0
                while quiet < GATHER_QUIET_TURNS and (count := len(waiting)) < MAX_PARSE_BATCH:
                    await asyncio.sleep(0)
                    quiet = quiet + 1 if len(waiting) == count else 0
                if len(waiting) >= BURST_BODIES:
                    await self._async_gather_burst()
                batch = [waiting.popleft() for _ in range(min(len(waiting), MAX_PARSE_BATCH))]
                parsed = await self._hass.async_add_executor_job(
                    parse_notifies, [(item.key.package, item.body) for item in batch], language
                )
                for index, (item, result) in enumerate(zip(batch, parsed, strict=True), 1):
                    item.owner.apply(item.key, result)
                    if index % APPLY_SLICE == 0:
                        await asyncio.sleep(0)
        finally:
            self._working = False

    async def _async_gather_burst(self) -> None:
        """Wait until a burst's NOTIFYs stop coming (or for BURST_GATHER_MAX at most).

        Until then the event loop only reads and answers them: state writes, and the recorder
        thread's work on them, would slow each answer (every socket call gives up the GIL, and
        takes it back only when the busy thread lets go), and the server retransmits the NOTIFYs
        it gets no answer to within 500 ms.
        """
        waiting = self._waiting
        deadline = self._hass.loop.time() + BURST_GATHER_MAX
        while len(waiting) < MAX_PARSE_BATCH and self._hass.loop.time() < deadline:
            count = len(waiting)
            await asyncio.sleep(BURST_CALM)
            if len(waiting) == count:
                return


@callback
@singleton(f"{DOMAIN}_notify_bodies")
def notify_bodies(hass: HomeAssistant) -> NotifyBodies:
    """The one queue of NOTIFY bodies of this Home Assistant."""
    return NotifyBodies(hass)


class ProfileSubscriptions:
    """Keeps a profile's wanted subscriptions up and their state at hand."""

    def __init__(self, hass: HomeAssistant, title: str) -> None:
        """Prepare; ``attach`` hands over the runner."""
        self._title = title
        self._runner: UserAgentRunner | None = None
        self._remove_listener: CALLBACK_TYPE | None = None
        self._wanted: dict[SubscriptionKey, SipUri] = {}
        self._running = False
        self._watched: dict[SubscriptionKey, Watched] = {}
        self._dialogs: dict[SubscriptionKey, DialogTracker] = {}
        self._watcher_trackers: dict[SubscriptionKey, WatcherTracker] = {}
        self._bodies = notify_bodies(hass)
        self._listeners: dict[SubscriptionKey, list[CALLBACK_TYPE]] = {}
        self._logged_down: set[SubscriptionKey] = set()

    # -- set-up --------------------------------------------------------------------------------

    def attach(self, runner: UserAgentRunner) -> None:
        """Use ``runner`` for the subscriptions and listen to its events."""
        self._runner = runner
        self._remove_listener = runner.add_listener(self._on_event)

    def detach(self) -> None:
        """Forget the runner (it is stopping); the entities keep what they showed.

        They go away with the profile or with Home Assistant; NOTIFY bodies still waiting to be
        parsed are dropped.
        """
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        self._runner = None
        self._running = False

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
        self._listeners.setdefault(key, []).append(listener)
        # A partial, not a closure: one of these is kept for every entity of every buddy.
        return partial(self._drop_listener, key, listener)

    def _drop_listener(self, key: SubscriptionKey, listener: CALLBACK_TYPE) -> None:
        listeners = self._listeners.get(key)
        if listeners is None or listener not in listeners:
            return
        listeners.remove(listener)
        if not listeners:
            del self._listeners[key]

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

    @callback
    def _on_event(self, event: UserAgentEvent) -> None:
        if isinstance(event, SubscriptionChanged) and event.key in self._wanted:
            self._on_status(event.key, event.status)
        elif isinstance(event, NotifyReceived) and event.key in self._wanted:
            self._bodies.add(self, event.key, event.body)

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
        if status.reason is FailureReason.NOT_OFFERED and key.package == MWI_PACKAGE:
            return  # many servers keep no mailbox: the diagnostic sensor says so, no warning
        down = status.state is SubscriptionState.FAILED or (
            status.state is SubscriptionState.SUBSCRIBING and status.reason is not None
        )
        if down and self._running and key not in self._logged_down:
            self._logged_down.add(key)
            LOGGER.info(
                "%s: subscription to %s is down (%s%s)",
                self._title,
                what,
                status.reason.value if status.reason else status.state.value,
                f", {status.status_code}" if status.status_code else "",
            )

    def apply(self, key: SubscriptionKey, parsed: _Parsed) -> None:
        """Apply a parsed NOTIFY body of ``key`` (in the order the NOTIFYs arrived)."""
        if self._runner is None or key not in self._wanted:
            return  # stopping, or no longer wanted
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
            elif parsed is NO_DIALOGS:
                tracker.reset()
            current = replace(current, lamp=tracker.lamp)
        elif isinstance(parsed, MessageSummary):
            current = replace(current, summary=parsed)
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
