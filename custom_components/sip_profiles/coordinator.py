"""One coordinator per SIP profile: it owns the profile's user agent and publishes its state.

Nothing is polled: the user agent pushes events, the coordinator turns them into a
``ProfileData`` snapshot for the entities, fires registration problems and recoveries to
listeners (the event entity), starts reauthentication and raises or clears repair issues.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, override

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    ConfigEntryNotReady,
    ServiceValidationError,
)
from homeassistant.helpers import device_registry as dr, entity_registry as er, issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .buddies import Buddy, ProfileSubscriptions, buddies_of
from .const import (
    CONF_AOR,
    CONF_ENABLED,
    CONF_MASTER,
    CONF_PUBLISH_PRESENCE,
    CONF_SHOW_CALLS,
    CONF_VOICEMAIL_URI,
    DEFAULT_PUBLISH_PRESENCE,
    DEFAULT_SHOW_CALLS,
    DOMAIN,
    LOGGER,
    SETUP_TIMEOUT,
    SHUTDOWN_TIMEOUT,
    WATCHER_INFO_PACKAGE,
)
from .line import ProfileLine
from .profile import (
    FAILURE_KEYS,
    InvalidAddressError,
    ProfileError,
    async_register_once,
    async_start_runner,
    parse_address,
)
from .sip.aio.runner import UserAgentRunner
from .sip.documents.pidf import MyPresence
from .sip.errors import LocalProtocolError
from .sip.publication import PublicationChanged, PublicationState, PublicationStatus
from .sip.registration import (
    AllBindingsRemoved,
    Binding,
    BindingsListed,
    FailureReason,
    OperationFailed,
    RegistrationChanged,
    RegistrationState,
    RegistrationStatus,
)
from .sip.subscription import (
    NotifyReceived,
    SubscriptionChanged,
    SubscriptionKey,
)
from .sip.target import Target
from .sip.trace import masked_text
from .sip.uri import SipUri
from .sip.useragent import UserAgentEvent

type SipProfileConfigEntry = ConfigEntry[SipProfileCoordinator]

MESSAGE_LOG_SIZE = 50
OPERATION_TIMEOUT = 10.0

PROBLEM_EVENTS: dict[FailureReason, str] = {
    FailureReason.AUTH_FAILED: "auth_failed",
    FailureReason.FORBIDDEN: "auth_failed",
    FailureReason.TIMEOUT: "timeout",
    FailureReason.TRANSPORT_ERROR: "timeout",
    FailureReason.SERVER_ERROR: "server_error",
    FailureReason.NOT_FOUND: "rejected",
    FailureReason.REJECTED: "rejected",
    FailureReason.NOT_OFFERED: "rejected",
}
RECOVERED = "recovered"
REPAIRABLE: dict[FailureReason, str] = {FailureReason.NOT_FOUND: "unknown_account"}
"""Failures only the user can fix, with the translation key of their repair issue."""


@dataclass(frozen=True, slots=True)
class ProfileData:
    """What the entities of one profile show."""

    enabled: bool
    status: RegistrationStatus
    target: Target | None
    refresh_at: datetime | None
    retry_at: datetime | None
    waiting_for_master: bool = False
    publication: PublicationStatus | None = None
    """Our published presence; None while the profile does not publish."""

    @property
    def state(self) -> str:
        """The registration state as the entities name it (``disabled`` when switched off)."""
        if not self.enabled and self.status.state is RegistrationState.UNREGISTERED:
            return "disabled"
        return self.status.state.value

    @property
    def other_bindings(self) -> int:
        """Bindings of the address of record that belong to other devices."""
        return sum(1 for binding in self.status.bindings if not binding.ours)


@dataclass(frozen=True, slots=True)
class TracedMessage:
    """One SIP message seen on the wire."""

    time: datetime
    direction: str
    remote: Target
    data: bytes

    # Written out when read (diagnostics), not when traced: a received message is traced
    # before it is answered, so tracing must cost next to nothing.

    @property
    def peer(self) -> str:
        """Where the message came from or went to."""
        return str(self.remote)

    @property
    def text(self) -> str:
        """The message with its credentials masked."""
        return masked_text(self.data)


ProblemListener = Callable[[str, dict[str, Any]], None]
BuddyListener = Callable[[list[Buddy]], None]
SUBSCRIPTION_EVENTS = (NotifyReceived, SubscriptionChanged)
REGISTRATION_UP = (RegistrationState.REGISTERED, RegistrationState.REGISTERING)
PRESENCE_ENTITY_KEYS = ("my_presence", "presence_note", "watchers")
"""Entities (by unique id suffix) that exist only while the profile publishes its presence."""


class SipProfileCoordinator(DataUpdateCoordinator[ProfileData]):
    """Keeps one SIP profile registered and reports how it is doing."""

    config_entry: SipProfileConfigEntry

    def __init__(self, hass: HomeAssistant, entry: SipProfileConfigEntry) -> None:
        """Prepare the coordinator; ``async_start`` connects."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.data[CONF_AOR]}",
            update_interval=None,
            always_update=False,
        )
        self.runner: UserAgentRunner | None = None
        self.messages: deque[TracedMessage] = deque(maxlen=MESSAGE_LOG_SIZE)
        self._enabled: bool = entry.data.get(CONF_ENABLED, True)
        self._problem_listeners: list[ProblemListener] = []
        self._last_state: RegistrationState | None = None
        self._problem: str | None = None
        """The problem event fired for the ongoing outage; None while there is none."""
        self.settings_at_setup = _settings_of(entry)
        self.publish_presence: bool = entry.options.get(
            CONF_PUBLISH_PRESENCE, DEFAULT_PUBLISH_PRESENCE
        )
        self.my_presence = MyPresence.AVAILABLE
        self.my_note = ""
        self._presence_started = False
        self._publication_failed = False
        """Whether the outage of our publication was logged (once, as its return will be)."""
        self.subscriptions = ProfileSubscriptions(hass, entry.title)
        self.buddies: dict[str, Buddy] = buddies_of(entry)
        self.line = ProfileLine(
            entry.title,
            self.subscriptions,
            _voicemail_uri(entry),
            show_calls=entry.options.get(CONF_SHOW_CALLS, DEFAULT_SHOW_CALLS),
        )
        self._buddy_listeners: list[BuddyListener] = []
        self.device_id: str | None = None
        self._stop_listening: CALLBACK_TYPE | None = None
        self._wall_anchor: datetime | None = None
        """The date at which the user agent's clock read 0."""
        self.data = self._snapshot()

    # -- life cycle ----------------------------------------------------------------------------

    async def async_start(self) -> None:
        """Open the flow and, when enabled, make the first registration.

        Raises ConfigEntryNotReady when the server cannot be reached (Home Assistant retries)
        and ConfigEntryAuthFailed when it rejects the credentials (reauthentication starts).
        """
        entry = self.config_entry
        # The profile's device first: the buddies' devices name it as the one they go through.
        self.device_id = (
            dr.async_get(self.hass)
            .async_get_or_create(
                config_entry_id=entry.entry_id,
                identifiers={(DOMAIN, entry.entry_id)},
                name=entry.title,
            )
            .id
        )
        try:
            runner = await async_start_runner(self.hass, entry.data, entry.options)
        except ProfileError as err:
            if err.key == "tls_untrusted":
                self._raise_issue("tls_untrusted")
            raise ConfigEntryNotReady(
                translation_domain=DOMAIN,
                translation_key=err.key,
                translation_placeholders={"detail": str(err)},
            ) from err
        self._clear_issue("tls_untrusted")
        self.runner = runner
        self._wall_anchor = dt_util.utcnow() - timedelta(seconds=runner.now())
        self._stop_listening = runner.add_listener(self._on_event)
        runner.add_tracer(self._on_message)
        if self._enabled and self._master_ready():
            try:
                await async_register_once(runner, SETUP_TIMEOUT)
            except ProfileError as err:
                if err.key in ("invalid_auth", "forbidden"):
                    await self._async_stop_runner(unregister=False)
                    raise ConfigEntryAuthFailed(
                        translation_domain=DOMAIN, translation_key=err.key
                    ) from err
                if err.key in ("timeout", "cannot_connect"):
                    await self._async_stop_runner(unregister=False)
                    raise ConfigEntryNotReady(
                        translation_domain=DOMAIN, translation_key=err.key
                    ) from err
                # Other rejections stay visible as a failed registration (and a repair issue).
        self.subscriptions.attach(runner)
        self.line.attach(runner)
        self.subscriptions.set_wanted(self._wanted_subscriptions())
        if self._enabled:
            self.subscriptions.resume()
        self.async_set_updated_data(self._snapshot())

    @override
    async def async_shutdown(self) -> None:
        """Withdraw everything of ours from the server (bounded in time) and close the flows."""
        await super().async_shutdown()
        await self._async_stop_runner(unregister=True)

    async def _async_stop_runner(self, *, unregister: bool) -> None:
        """Stop the runner; with ``unregister``, end subscriptions, publication and binding first.

        The entities are not told: they go away with the profile or with Home Assistant, and
        thousands of states written for subscriptions that end would only hold up the stop.
        """
        runner, self.runner = self.runner, None
        if runner is None:
            return
        self.subscriptions.detach()
        self.line.detach()
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        deadline = self.hass.loop.time() + SHUTDOWN_TIMEOUT
        if unregister and runner.user_agent.registration.state in REGISTRATION_UP:
            # The binding first, before the subscriptions and the publication: of all we
            # leave at the server it is what sends calls our way. When many profiles stop at
            # once, the registrar then answers the REGISTERs ahead of the SUBSCRIBEs.
            with contextlib.suppress(TimeoutError):
                await _async_until(
                    runner, UserAgentRunner.unregister, _unregistered, SHUTDOWN_TIMEOUT
                )
        await runner.stop(
            unregister=unregister,
            unregister_timeout=max(deadline - self.hass.loop.time(), 0.0),
        )

    # -- commands (switch, services) -----------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether the profile is meant to be registered."""
        return self._enabled

    def async_enable(self) -> None:
        """Register the profile and keep it registered (remembered across restarts)."""
        self._set_enabled(True)
        if self.runner is not None and self._master_ready():
            self.runner.register()
        if self.runner is not None:
            self.subscriptions.resume()
        self._publish()
        self.async_set_updated_data(self._snapshot())

    def async_disable(self) -> None:
        """Unregister and keep the profile (remembered across restarts)."""
        self._set_enabled(False)
        if self.runner is not None:
            self.subscriptions.pause()
            if self.runner.user_agent.publication.state is not PublicationState.UNPUBLISHED:
                self.runner.unpublish()
            self.runner.unregister()
        self.async_set_updated_data(self._snapshot())

    def async_refresh_registration(self) -> None:
        """Register again now."""
        if self.runner is not None and self._enabled:
            self.runner.register()

    async def async_list_bindings(self) -> tuple[Binding, ...]:
        """Ask the registrar for every binding of the address of record."""
        event = await self._async_operation(
            lambda runner: runner.query_bindings(), (BindingsListed, OperationFailed)
        )
        if isinstance(event, OperationFailed):
            raise ProfileError(_operation_key(event))
        assert isinstance(event, BindingsListed)
        return event.bindings

    async def async_unregister_all(self) -> int:
        """Remove every binding of the address of record; returns how many there were.

        It is sent while the profile is disabled too (a one-off REGISTER that binds nothing of
        ours): disable, then remove every binding, and nothing of the account stays registered.
        An enabled profile registers again (enabled means registered).
        """
        event = await self._async_operation(
            lambda runner: runner.unregister_all(), (AllBindingsRemoved, OperationFailed)
        )
        if isinstance(event, OperationFailed):
            raise ProfileError(_operation_key(event))
        assert isinstance(event, AllBindingsRemoved)
        return event.count

    @callback
    def async_add_problem_listener(self, listener: ProblemListener) -> CALLBACK_TYPE:
        """Call ``listener(event_type, attributes)`` for every problem and recovery."""
        self._problem_listeners.append(listener)
        return lambda: self._problem_listeners.remove(listener)

    @callback
    def async_continue_outage(self, problem: str) -> None:
        """``problem`` was fired before a reload or restart and has not recovered since.

        Registered by now: it is over, ``recovered`` fires at once; otherwise it fires when
        the profile registers, and the same problem is not fired a second time.
        """
        if self._problem is not None:
            return
        if self.data.status.state is RegistrationState.REGISTERED:
            self._fire(RECOVERED, self.data.status)
        else:
            self._problem = problem

    # -- buddies and watchers ------------------------------------------------------------------

    @property
    def watcher_info_key(self) -> SubscriptionKey | None:
        """The subscription to who watches our presence; None while we do not publish."""
        if not self.publish_presence:
            return None
        return SubscriptionKey(str(self._aor), WATCHER_INFO_PACKAGE)

    @property
    def _aor(self) -> SipUri:
        return parse_address(self.config_entry.data[CONF_AOR])

    def _wanted_subscriptions(self) -> list[tuple[SubscriptionKey, SipUri]]:
        wanted = [(buddy.key, buddy.uri) for buddy in self.buddies.values()]
        if self.watcher_info_key is not None:
            wanted.append((self.watcher_info_key, self._aor))
        wanted.append((self.line.voicemail_key, self.line.voicemail_uri))
        return wanted

    @callback
    def async_add_buddy_listener(self, listener: BuddyListener) -> CALLBACK_TYPE:
        """Call ``listener(buddies)`` with the buddies added at run time."""
        self._buddy_listeners.append(listener)
        return lambda: self._buddy_listeners.remove(listener)

    @callback
    def async_sync_buddies(self) -> None:
        """The subentries changed: subscribe to new buddies, unsubscribe from removed ones."""
        current = buddies_of(self.config_entry)
        added = [buddy for sid, buddy in current.items() if sid not in self.buddies]
        self.buddies = current
        self.subscriptions.set_wanted(self._wanted_subscriptions())
        if added:
            for listener in list(self._buddy_listeners):
                listener(added)

    def wall_time(self, moment: float | None) -> datetime | None:
        """A time of the user agent's clock as a date; the same moment always gives the same.

        The clocks are lined up once, when the runner starts: a date computed afresh at every
        event would move by microseconds and rewrite every state that shows one.
        """
        if moment is None or self._wall_anchor is None:
            return None
        return self._wall_anchor + timedelta(seconds=moment)

    # -- our presence --------------------------------------------------------------------------

    @callback
    def async_restore_my_presence(
        self, presence: MyPresence | None = None, note: str | None = None
    ) -> None:
        """Take the choice made before the restart back, before anything is published."""
        if presence is not None:
            self.my_presence = presence
        if note is not None:
            self.my_note = note

    @callback
    def async_start_presence(self) -> None:
        """Publish our presence (entities restored); kept up while enabled."""
        self._presence_started = True
        self._publish()
        self.async_set_updated_data(self._snapshot())

    @callback
    def async_set_my_presence(
        self, presence: MyPresence | None = None, note: str | None = None
    ) -> None:
        """Choose our presence or note and publish it.

        Raises ServiceValidationError for a note XML cannot carry.
        """
        previous = (self.my_presence, self.my_note)
        if presence is not None:
            self.my_presence = presence
        if note is not None:
            self.my_note = note
        try:
            self._publish()
        except LocalProtocolError as err:
            self.my_presence, self.my_note = previous
            raise ServiceValidationError(
                translation_domain=DOMAIN, translation_key="invalid_note"
            ) from err
        self.async_set_updated_data(self._snapshot())

    def _publish(self) -> None:
        runner = self.runner
        if (
            runner is None
            or not self.publish_presence
            or not self._presence_started
            or not self._enabled
        ):
            return
        runner.publish(self.my_presence, self.my_note.strip() or None)

    @callback
    def async_remove_presence_entities(self) -> None:
        """Remove the entities of our presence left from when the profile published it."""
        registry = er.async_get(self.hass)
        for platform in ("select", "text", "sensor"):
            for key in PRESENCE_ENTITY_KEYS:
                unique_id = f"{self.config_entry.entry_id}_{key}"
                if entity_id := registry.async_get_entity_id(platform, DOMAIN, unique_id):
                    registry.async_remove(entity_id)

    def _on_publication_changed(self, status: PublicationStatus) -> None:
        if status.state is PublicationState.FAILED:
            if not self._publication_failed:
                self._publication_failed = True
                LOGGER.info(
                    "%s: publishing our presence failed (%s%s)",
                    self.config_entry.title,
                    status.reason.value if status.reason else "failed",
                    f", {status.status_code}" if status.status_code else "",
                )
        elif status.state is PublicationState.PUBLISHED and self._publication_failed:
            self._publication_failed = False
            LOGGER.info("%s: our presence is published again", self.config_entry.title)

    # -- dependent profiles --------------------------------------------------------------------

    def _master(self) -> SipProfileCoordinator | None:
        master_id = self.config_entry.data.get(CONF_MASTER)
        if not master_id:
            return None
        master = self.hass.config_entries.async_get_entry(master_id)
        # A master registers in the middle of its own set-up, before it is loaded.
        if master is None or master.state not in (
            ConfigEntryState.LOADED,
            ConfigEntryState.SETUP_IN_PROGRESS,
        ):
            return None
        coordinator: SipProfileCoordinator | None = getattr(master, "runtime_data", None)
        return coordinator

    def _master_ready(self) -> bool:
        """A dependent profile registers only while its master is registered."""
        if not self.config_entry.data.get(CONF_MASTER):
            return True
        master = self._master()
        return master is not None and master.data.status.state is RegistrationState.REGISTERED

    def _notify_dependents(self) -> None:
        """Our registration (re)succeeded: every profile depending on us registers again."""
        for entry in self.hass.config_entries.async_entries(DOMAIN):
            if (
                entry.data.get(CONF_MASTER) == self.config_entry.entry_id
                and entry.state is ConfigEntryState.LOADED
            ):
                dependent: SipProfileCoordinator = entry.runtime_data
                dependent.async_master_registered()

    @callback
    def async_master_registered(self) -> None:
        """Our master registered (again): register (again) too."""
        if self.runner is not None and self._enabled:
            self.runner.register()
        self.async_set_updated_data(self._snapshot())

    # -- internals -----------------------------------------------------------------------------

    async def _async_operation(
        self,
        start: Callable[[UserAgentRunner], None],
        wanted: tuple[type[UserAgentEvent], ...],
    ) -> UserAgentEvent:
        runner = self.runner
        if runner is None:
            raise ProfileError("not_running")
        try:
            return await _async_until(
                runner, start, lambda event: isinstance(event, wanted), OPERATION_TIMEOUT
            )
        except TimeoutError as err:
            raise ProfileError("timeout") from err

    def _set_enabled(self, enabled: bool) -> None:
        if enabled == self._enabled:
            return
        self._enabled = enabled
        entry = self.config_entry
        self.hass.config_entries.async_update_entry(
            entry, data={**entry.data, CONF_ENABLED: enabled}
        )

    @callback
    def _on_message(self, direction: str, peer: Target, data: bytes) -> None:
        if data.isspace():
            return  # keep-alives
        self.messages.append(TracedMessage(dt_util.utcnow(), direction, peer, data))

    @callback
    def _on_event(self, event: UserAgentEvent) -> None:
        if isinstance(event, SUBSCRIPTION_EVENTS):
            return  # the buddies' entities follow their own subscription
        newly_registered = False
        if isinstance(event, RegistrationChanged):
            newly_registered = self._on_registration_changed(event.status)
        elif isinstance(event, PublicationChanged):
            self._on_publication_changed(event.status)
        snapshot = self._snapshot()
        if snapshot != self.data:
            self.async_set_updated_data(snapshot)
        if newly_registered:
            # after our own data says so: the dependents read it
            self._notify_dependents()

    def _on_registration_changed(self, status: RegistrationStatus) -> bool:
        """Log, fire and raise what the change means; whether we just became registered."""
        previous, self._last_state = self._last_state, status.state
        if status.state is RegistrationState.FAILED and status.reason is not None:
            problem = PROBLEM_EVENTS[status.reason]
            if self._problem is None:
                # Once per outage, however many retries fail and for whichever reasons.
                LOGGER.info(
                    "%s: registration failed (%s%s)",
                    self.config_entry.title,
                    status.reason.value,
                    f", {status.status_code} {status.reason_phrase}" if status.status_code else "",
                )
            if problem != self._problem:
                # Once per outage (and again if its kind changes), not at every failed retry.
                self._problem = problem
                self._fire(problem, status)
            if status.reason in (FailureReason.AUTH_FAILED, FailureReason.FORBIDDEN):
                self.config_entry.async_start_reauth(self.hass)
            if issue := REPAIRABLE.get(status.reason):
                self._raise_issue(issue)
        elif status.state is RegistrationState.REGISTERED:
            if self._problem is not None:
                LOGGER.info("%s: registered again", self.config_entry.title)
                self._problem = None
                self._fire(RECOVERED, status)
            for issue in REPAIRABLE.values():
                self._clear_issue(issue)
            return previous is not RegistrationState.REGISTERED
        return False

    def _fire(self, event_type: str, status: RegistrationStatus) -> None:
        attributes: dict[str, Any] = {
            "reason": status.reason.value if status.reason else None,
            "status_code": status.status_code,
            "reason_phrase": status.reason_phrase,
        }
        for listener in list(self._problem_listeners):
            listener(event_type, attributes)

    def _issue_id(self, key: str) -> str:
        return f"{key}_{self.config_entry.entry_id}"

    def _raise_issue(self, key: str) -> None:
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self._issue_id(key),
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=key,
            translation_placeholders={"profile": self.config_entry.title},
        )

    def _clear_issue(self, key: str) -> None:
        ir.async_delete_issue(self.hass, DOMAIN, self._issue_id(key))

    def _snapshot(self) -> ProfileData:
        runner = self.runner
        if runner is None:
            return ProfileData(
                enabled=self._enabled,
                status=RegistrationStatus(RegistrationState.UNREGISTERED),
                target=None,
                refresh_at=None,
                retry_at=None,
            )
        status = runner.user_agent.registration.status
        return ProfileData(
            enabled=self._enabled,
            status=status,
            target=runner.user_agent.target,
            refresh_at=self.wall_time(status.refresh_at),
            retry_at=self.wall_time(status.retry_at),
            waiting_for_master=self._enabled and not self._master_ready(),
            publication=runner.user_agent.publication.status if self.publish_presence else None,
        )


async def _async_until(
    runner: UserAgentRunner,
    start: Callable[[UserAgentRunner], None],
    done: Callable[[UserAgentEvent], bool],
    within: float,
) -> UserAgentEvent:
    """Call ``start(runner)`` and wait for the first event that is ``done``.

    Raises TimeoutError after ``within`` seconds.
    """
    result: asyncio.Future[UserAgentEvent] = asyncio.get_running_loop().create_future()

    def on_event(event: UserAgentEvent) -> None:
        if done(event) and not result.done():
            result.set_result(event)

    remove = runner.add_listener(on_event)
    try:
        start(runner)
        async with asyncio.timeout(within):
            return await result
    finally:
        remove()


def _unregistered(event: UserAgentEvent) -> bool:
    """Whether ``event`` ends an unregistration (removed, or failed for good)."""
    return (
        isinstance(event, RegistrationChanged)
        and event.status.state is not RegistrationState.UNREGISTERING
    )


def _settings_of(entry: ConfigEntry) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a reload would change: the options and the data except the enabled flag."""
    data = {key: value for key, value in entry.data.items() if key != CONF_ENABLED}
    return data, dict(entry.options)


def _voicemail_uri(entry: ConfigEntry) -> SipUri:
    """Where voicemail waiting is subscribed: the options' voicemail URI, else the AOR."""
    voicemail = entry.options.get(CONF_VOICEMAIL_URI)
    if voicemail:
        try:
            return parse_address(voicemail)
        except InvalidAddressError:
            LOGGER.error("%s: unreadable voicemail address %r", entry.title, voicemail)
    return parse_address(entry.data[CONF_AOR])


def settings_changed(entry: SipProfileConfigEntry) -> bool:
    """Whether the entry's settings differ from those its running coordinator started with."""
    return _settings_of(entry) != entry.runtime_data.settings_at_setup


def _operation_key(event: OperationFailed) -> str:
    return FAILURE_KEYS[event.reason]
