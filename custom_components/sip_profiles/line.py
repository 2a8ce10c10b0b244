"""What the line tells, for one profile: incoming calls, text messages and voicemail waiting.

``ProfileLine`` follows the runner's call and message events, the message-summary NOTIFYs that
PBXs send to a registered contact without a subscription, and the profile's own message-summary
subscription (kept by ``ProfileSubscriptions`` with the buddies'). Entities listen to it:
the calls event and the ringing sensor to calls, the profile's event entity to voicemail and
messages, the voicemail sensor to the summary. Nothing about a call is logged above debug.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from homeassistant.core import CALLBACK_TYPE, callback
from homeassistant.exceptions import HomeAssistantError

from .buddies import ProfileSubscriptions
from .const import DOMAIN, LOGGER, MWI_PACKAGE
from .sip.aio.runner import UserAgentRunner
from .sip.calls import CallEnded, IncomingCall
from .sip.documents import DocumentError
from .sip.documents.message_summary import MessageSummary, parse_message_summary
from .sip.inbound import UnsolicitedNotify
from .sip.messaging import MessageFailed, MessageReceived, MessageSent
from .sip.subscription import SubscriptionKey, SubscriptionStatus
from .sip.uri import SipUri
from .sip.useragent import UserAgentEvent

SEND_TIMEOUT = 35.0
"""Seconds to wait for the answer to a MESSAGE: longer than its transaction may last (64*T1)."""
CALL_EVENTS = ["incoming_call", "answered_elsewhere", "missed", "declined"]
VOICEMAIL = "voicemail"
MESSAGE_RECEIVED = "message_received"

LineListener = Callable[[str, dict[str, Any]], None]


def call_attributes(call: IncomingCall) -> dict[str, Any]:
    """What automations learn about a call."""
    return {
        "call_id": call.call_id,
        "caller_number": call.caller_number,
        "caller_name": call.caller_name,
        "called": call.called,
    }


class ProfileLine:
    """Calls, messages and voicemail of one profile."""

    def __init__(
        self,
        title: str,
        subscriptions: ProfileSubscriptions,
        voicemail_uri: SipUri,
        *,
        show_calls: bool,
    ) -> None:
        """Prepare; ``attach`` hands over the runner."""
        self._title = title
        self._subscriptions = subscriptions
        self.voicemail_uri = voicemail_uri
        self.voicemail_key = SubscriptionKey(str(voicemail_uri), MWI_PACKAGE)
        self.show_calls = show_calls
        self._runner: UserAgentRunner | None = None
        self._removers: list[CALLBACK_TYPE] = []
        self._ringing: dict[str, IncomingCall] = {}
        self._summary: MessageSummary | None = None
        self._call_listeners: list[LineListener] = []
        self._profile_listeners: list[LineListener] = []
        self._state_listeners: list[CALLBACK_TYPE] = []

    # -- set-up --------------------------------------------------------------------------------

    def attach(self, runner: UserAgentRunner) -> None:
        """Follow ``runner``'s events and the voicemail subscription."""
        self._runner = runner
        self._removers = [
            runner.add_listener(self._on_event),
            self._subscriptions.async_add_listener(self.voicemail_key, self._on_subscription),
        ]

    def detach(self) -> None:
        """Forget the runner (it is stopping): nothing rings any more."""
        for remove in self._removers:
            remove()
        self._removers = []
        self._runner = None
        self._ringing.clear()
        self._changed()

    # -- what the entities read ----------------------------------------------------------------

    @property
    def ringing(self) -> tuple[IncomingCall, ...]:
        """The calls ringing now, oldest first."""
        return tuple(self._ringing.values())

    @property
    def summary(self) -> MessageSummary | None:
        """What the voicemail server said last; None until it said anything."""
        return self._summary

    @property
    def subscription(self) -> SubscriptionStatus:
        """The state of the message-summary subscription."""
        return self._subscriptions.watched(self.voicemail_key).status

    @callback
    def async_add_call_listener(self, listener: LineListener) -> CALLBACK_TYPE:
        """Call ``listener(event_type, attributes)`` when a call starts or ends ringing."""
        return _add(self._call_listeners, listener)

    @callback
    def async_add_profile_listener(self, listener: LineListener) -> CALLBACK_TYPE:
        """Call ``listener(event_type, attributes)`` for new voicemail and received messages."""
        return _add(self._profile_listeners, listener)

    @callback
    def async_add_state_listener(self, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call ``listener()`` when the ringing calls or the voicemail summary change."""
        return _add(self._state_listeners, listener)

    # -- commands ------------------------------------------------------------------------------

    def decline(self, call_id: str | None) -> bool:
        """Answer a ringing call 603 Decline (the newest without ``call_id``); False if none."""
        runner = self._runner
        return runner is not None and runner.decline_call(call_id)

    async def async_send_message(self, uri: SipUri, text: str) -> None:
        """Send ``text`` to ``uri``; raises HomeAssistantError (translated) when it fails."""
        runner = self._runner
        if runner is None:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="message_not_running",
                translation_placeholders={"profile": self._title},
            )
        outcome: asyncio.Future[MessageSent | MessageFailed] = (
            asyncio.get_running_loop().create_future()
        )
        message_id: str | None = None

        def on_event(event: UserAgentEvent) -> None:
            if (
                isinstance(event, MessageSent | MessageFailed)
                and event.message_id == message_id
                and not outcome.done()
            ):
                outcome.set_result(event)

        remove = runner.add_listener(on_event)
        try:
            message_id = runner.send_message(uri, text)
            async with asyncio.timeout(SEND_TIMEOUT):
                result = await outcome
        except TimeoutError:
            result = MessageFailed(message_id or "", None, "timeout")
        finally:
            remove()
        if isinstance(result, MessageFailed):
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="message_failed",
                translation_placeholders={
                    "uri": str(uri),
                    "reason": f"{result.status_code} {result.reason}"
                    if result.status_code
                    else result.reason,
                },
            )

    # -- internals -----------------------------------------------------------------------------

    @callback
    def _on_event(self, event: UserAgentEvent) -> None:
        if isinstance(event, IncomingCall):
            LOGGER.debug("%s: call %s rings", self._title, event.call_id)
            self._ringing[event.call_id] = event
            self._fire(self._call_listeners, "incoming_call", call_attributes(event))
            self._changed()
        elif isinstance(event, CallEnded):
            LOGGER.debug("%s: call %s ended (%s)", self._title, event.call_id, event.outcome)
            call = self._ringing.pop(event.call_id, None)
            attributes = call_attributes(call) if call else {"call_id": event.call_id}
            self._fire(self._call_listeners, event.outcome.value, attributes)
            self._changed()
        elif isinstance(event, MessageReceived):
            self._fire(
                self._profile_listeners,
                MESSAGE_RECEIVED,
                {
                    "sender": event.sender,
                    "sender_name": event.sender_name,
                    "text": event.text,
                    "truncated": event.truncated,
                },
            )
        elif isinstance(event, UnsolicitedNotify) and event.body.strip():
            try:
                summary = parse_message_summary(event.body)
            except DocumentError as err:
                LOGGER.debug("%s: unreadable message summary: %s", self._title, err)
                return
            self._set_summary(summary)

    @callback
    def _on_subscription(self) -> None:
        summary = self._subscriptions.watched(self.voicemail_key).summary
        if summary is not None:
            self._set_summary(summary)
        else:
            self._changed()  # the subscription's state changed

    def _set_summary(self, summary: MessageSummary) -> None:
        previous, self._summary = self._summary, summary
        if summary == previous:
            return
        if previous is not None and summary.new_messages > previous.new_messages:
            self._fire(self._profile_listeners, VOICEMAIL, summary_attributes(summary))
        self._changed()

    def _fire(self, listeners: list[LineListener], event_type: str, data: dict[str, Any]) -> None:
        for listener in list(listeners):
            listener(event_type, data)

    def _changed(self) -> None:
        for listener in list(self._state_listeners):
            listener()


def summary_attributes(summary: MessageSummary) -> dict[str, Any]:
    """The counts of a message summary, as attributes."""
    voice = summary.voice
    return {
        "new_messages": summary.new_messages,
        "old_messages": voice.old if voice else None,
        "new_urgent_messages": voice.new_urgent if voice else None,
        "old_urgent_messages": voice.old_urgent if voice else None,
        "message_account": summary.account,
    }


def _add[T](listeners: list[T], listener: T) -> CALLBACK_TYPE:
    listeners.append(listener)
    return lambda: listeners.remove(listener)
