"""The subentry flow that adds a buddy to a profile: whom to watch, and what of them.

A buddy is stored as a config subentry of type ``buddy`` with:

- ``uri``: the watched address, normalized to ``sip:user@domain``; the form takes a SIP URI,
  ``user@domain``, or a bare user, which means a user of the profile's own domain;
- ``name``: what the buddy's device is called (the address when left empty);
- ``watch``: ``presence`` (the presence event package) or ``dialog`` (the busy lamp).

The subentry's unique id is ``<watch>|<uri>``, so one address can be watched both ways but not
twice the same way. Adding or removing a buddy does not reload the profile: the coordinator
subscribes and unsubscribes on the entry's update listener.

While the profile runs, the flow first subscribes once through it (and ends that subscription
again), so that a server refusing to let the profile watch the address (489 for a package it
does not offer, 403, 404) is told on the form. Submitting the same buddy again adds it anyway;
a repair issue then stays while the server refuses (``buddy_repairs``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from homeassistant.config_entries import ConfigEntryState, ConfigSubentryFlow, SubentryFlowResult
from homeassistant.helpers.selector import (
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)
import probatio as vol

from .buddies import UP_STATES
from .const import (
    CONF_AOR,
    CONF_BUDDY_NAME,
    CONF_BUDDY_URI,
    CONF_WATCH,
    SHUTDOWN_TIMEOUT,
    WATCH_PRESENCE,
    WATCHES,
)
from .profile import InvalidAddressError, parse_address
from .sip.aio.runner import UserAgentRunner
from .sip.client import FailureReason
from .sip.errors import LocalProtocolError
from .sip.subscription import (
    SubscriptionChanged,
    SubscriptionKey,
    SubscriptionState,
    SubscriptionStatus,
)
from .sip.useragent import UserAgentEvent

WATCH_CHECK_TIMEOUT = 5.0
"""How long the form waits for the server's answer to its SUBSCRIBE."""


def buddy_uri(text: str, profile_aor: str) -> str:
    """The buddy's address as stored: ``sip:user@domain``; a bare user is of the profile's domain.

    Raises InvalidAddressError when the text is not an address.
    """
    text = text.strip()
    if not text:
        raise InvalidAddressError("empty address")
    has_scheme = text.lower().startswith(("sip:", "sips:"))
    if not has_scheme and "@" not in text:
        aor = parse_address(profile_aor)
        host = f"[{aor.host}]" if ":" in aor.host else aor.host
        port = f":{aor.port}" if aor.port else ""
        text = f"{aor.scheme}:{text}@{host}{port}"
    uri = parse_address(text)
    return str(uri)


def buddy_unique_id(watch: str, uri: str) -> str:
    """The subentry's unique id: one buddy per address and kind of watching."""
    return f"{watch}|{uri}"


def refused(status: SubscriptionStatus) -> bool:
    """Whether the server answered a SUBSCRIBE with a final refusal (not a fault on the way)."""
    return (
        status.state is SubscriptionState.FAILED
        and status.status_code is not None
        and status.status_code >= 400
        and status.reason not in (FailureReason.TRANSPORT_ERROR, FailureReason.SERVER_ERROR)
    )


async def _async_until(
    runner: UserAgentRunner,
    key: SubscriptionKey,
    reached: Callable[[SubscriptionStatus], bool],
    within: float,
) -> SubscriptionStatus | None:
    """The first status of ``key`` that ``reached`` accepts, or None after ``within`` s."""
    status = runner.user_agent.subscription_status(key)
    if status is not None and reached(status):
        return status
    outcome: asyncio.Future[SubscriptionStatus] = asyncio.get_running_loop().create_future()

    def on_event(event: UserAgentEvent) -> None:
        if (
            isinstance(event, SubscriptionChanged)
            and event.key == key
            and reached(event.status)
            and not outcome.done()
        ):
            outcome.set_result(event.status)

    remove = runner.add_listener(on_event)
    try:
        async with asyncio.timeout(within):
            return await outcome
    except TimeoutError:
        return None
    finally:
        remove()


async def async_try_watch(
    runner: UserAgentRunner, uri: str, package: str
) -> SubscriptionStatus | None:
    """Subscribe once and end it again; the refusing status, or None when not refused.

    The subscription is ended before returning, so the profile's own subscription for the
    buddy starts afresh with the notifier's full state.
    """
    key = SubscriptionKey(uri, package)
    try:
        runner.subscribe(parse_address(uri), package)
    except LocalProtocolError:
        return None  # no flow to the server right now: the profile will keep trying
    answer = await _async_until(
        runner,
        key,
        lambda status: status.state in UP_STATES or status.state is SubscriptionState.FAILED,
        WATCH_CHECK_TIMEOUT,
    )
    runner.unsubscribe(key)
    await _async_until(
        runner,
        key,
        lambda status: status.state is SubscriptionState.UNSUBSCRIBED,
        SHUTDOWN_TIMEOUT,
    )
    return answer if answer is not None and refused(answer) else None


class BuddySubentryFlow(ConfigSubentryFlow):
    """Add a buddy: address, name and what to watch."""

    def __init__(self) -> None:
        """Nothing refused yet."""
        self._refused: tuple[str, str] | None = None
        """The (watch, uri) the server refused last: submitted again, it is added anyway."""

    async def _async_refusal(self, uri: str, watch: str) -> SubscriptionStatus | None:
        """Ask the server through the running profile; None when it did not refuse."""
        entry = self._get_entry()
        if (watch, uri) == self._refused or entry.state is not ConfigEntryState.LOADED:
            return None
        coordinator = entry.runtime_data
        if coordinator.runner is None or not coordinator.enabled:
            return None
        return await async_try_watch(coordinator.runner, uri, watch)

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Ask for the buddy's address, name and what to watch."""
        entry = self._get_entry()
        errors: dict[str, str] = {}
        status_code = ""
        if user_input is not None:
            watch = user_input[CONF_WATCH]
            try:
                uri = buddy_uri(user_input[CONF_BUDDY_URI], entry.data[CONF_AOR])
            except InvalidAddressError:
                errors[CONF_BUDDY_URI] = "invalid_address"
            else:
                unique_id = buddy_unique_id(watch, uri)
                if any(sub.unique_id == unique_id for sub in entry.subentries.values()):
                    return self.async_abort(reason="already_configured")
                if (refusal := await self._async_refusal(uri, watch)) is not None:
                    self._refused = (watch, uri)
                    errors["base"] = (
                        "watch_not_offered"
                        if refusal.reason is FailureReason.NOT_OFFERED
                        else "watch_refused"
                    )
                    status_code = str(refusal.status_code)
                else:
                    name = str(user_input.get(CONF_BUDDY_NAME) or "").strip() or uri
                    return self.async_create_entry(
                        title=name,
                        data={CONF_BUDDY_URI: uri, CONF_BUDDY_NAME: name, CONF_WATCH: watch},
                        unique_id=unique_id,
                    )
        schema = vol.Schema(
            {
                vol.Required(CONF_BUDDY_URI): TextSelector(),
                vol.Optional(CONF_BUDDY_NAME): TextSelector(),
                vol.Required(CONF_WATCH, default=WATCH_PRESENCE): SelectSelector(
                    SelectSelectorConfig(
                        options=list(WATCHES),
                        mode=SelectSelectorMode.LIST,
                        translation_key=CONF_WATCH,
                    )
                ),
            }
        )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
            description_placeholders={"profile": entry.title, "status_code": status_code},
        )
