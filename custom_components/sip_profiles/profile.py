"""A profile's settings and the one-off check that proves them live.

This is where config entry fields become the SIP core's settings; the config flow and the
coordinator both start their user agents through ``async_start_runner``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
import ssl
import time
from typing import Any

import aiodns
from homeassistant.const import CONF_PASSWORD
from homeassistant.core import HomeAssistant
from homeassistant.util.ssl import get_default_context, get_default_no_verify_context

from .const import (
    CONF_AOR,
    CONF_AUTH_USER,
    CONF_EXPIRES,
    CONF_KEEPALIVE,
    CONF_OUTBOUND_PROXY,
    CONF_REALM,
    CONF_REGISTRAR,
    CONF_SHOW_CALLS,
    CONF_TRANSPORT,
    CONF_VERIFY_TLS,
    DEFAULT_EXPIRES,
    DEFAULT_KEEPALIVE,
    DEFAULT_SHOW_CALLS,
    SETUP_TIMEOUT,
    SHUTDOWN_TIMEOUT,
    TRANSPORT_AUTO,
)
from .sip.aio.resolver import LocationError
from .sip.aio.runner import UserAgentRunner, start_user_agent
from .sip.auth import Credentials
from .sip.errors import RemoteProtocolError
from .sip.registration import (
    FailureReason,
    RegistrationChanged,
    RegistrationState,
    RegistrationStatus,
)
from .sip.target import Transport
from .sip.uri import SipUri, parse_sip_uri
from .sip.useragent import UserAgentEvent, UserAgentSettings


class InvalidAddressError(ValueError):
    """A SIP address in the profile cannot be read."""


class ProfileError(Exception):
    """Why a profile cannot be used; ``key`` is the translation key of the problem."""

    def __init__(self, key: str, detail: str | None = None, *, server_answer: str = "") -> None:
        """Name the problem by its translation key (and the server's answer, when it gave one)."""
        super().__init__(detail or key)
        self.key = key
        self.server_answer = server_answer
        """The final response as the server wrote it (``403 Forbidden``); "" without one."""


FAILURE_KEYS: Mapping[FailureReason, str] = {
    FailureReason.AUTH_FAILED: "invalid_auth",
    FailureReason.FORBIDDEN: "forbidden",
    FailureReason.NOT_FOUND: "unknown_account",
    FailureReason.TIMEOUT: "timeout",
    FailureReason.TRANSPORT_ERROR: "cannot_connect",
    FailureReason.SERVER_ERROR: "cannot_connect",
    FailureReason.REJECTED: "rejected",
    FailureReason.NOT_OFFERED: "rejected",
}


def parse_address(text: str) -> SipUri:
    """Read an address of record; ``alice@example.com`` means ``sip:alice@example.com``."""
    text = text.strip()
    if not text.lower().startswith(("sip:", "sips:")):
        text = f"sip:{text}"
    try:
        uri = parse_sip_uri(text)
    except RemoteProtocolError as err:
        raise InvalidAddressError(str(err)) from err
    if not uri.user:
        raise InvalidAddressError(f"{text} has no user part")
    return uri


def parse_server(text: str | None) -> SipUri | None:
    """Read a registrar or proxy given as a URI or as ``host[:port]``; empty means none."""
    if not text or not text.strip():
        return None
    text = text.strip()
    if not text.lower().startswith(("sip:", "sips:")):
        text = f"sip:{text}"
    try:
        return parse_sip_uri(text)
    except RemoteProtocolError as err:
        raise InvalidAddressError(str(err)) from err


def user_agent_settings(data: Mapping[str, Any], options: Mapping[str, Any]) -> UserAgentSettings:
    """The core's settings for a profile; raises InvalidAddressError for unreadable addresses."""
    aor = parse_address(data[CONF_AOR])
    transport_name = data.get(CONF_TRANSPORT, TRANSPORT_AUTO)
    keepalive = options.get(CONF_KEEPALIVE, DEFAULT_KEEPALIVE)
    return UserAgentSettings(
        aor=aor,
        credentials=(
            Credentials(
                data.get(CONF_AUTH_USER) or aor.user or "",
                data[CONF_PASSWORD],
                data.get(CONF_REALM) or None,
            ),
        ),
        transport=None if transport_name == TRANSPORT_AUTO else Transport(transport_name),
        registrar=parse_server(data.get(CONF_REGISTRAR)),
        outbound_proxy=parse_server(data.get(CONF_OUTBOUND_PROXY)),
        expires=int(options.get(CONF_EXPIRES, data.get(CONF_EXPIRES, DEFAULT_EXPIRES))),
        keepalive_interval=float(keepalive) if keepalive else None,
        user_agent="HomeAssistant-SIPProfiles",
        show_calls=bool(options.get(CONF_SHOW_CALLS, DEFAULT_SHOW_CALLS)),
    )


def _ssl_context(data: Mapping[str, Any]) -> ssl.SSLContext:
    """Home Assistant's shared client contexts, created once at start-up (no disk I/O here)."""
    if data.get(CONF_VERIFY_TLS, True):
        return get_default_context()
    return get_default_no_verify_context()


async def async_start_runner(
    hass: HomeAssistant, data: Mapping[str, Any], options: Mapping[str, Any]
) -> UserAgentRunner:
    """Locate the profile's server and open a flow to it.

    Raises ProfileError with the key of the problem (invalid_address, cannot_connect,
    tls_untrusted).
    """
    try:
        settings = user_agent_settings(data, options)
    except InvalidAddressError as err:
        raise ProfileError("invalid_address", str(err)) from err
    try:
        return await start_user_agent(
            settings,
            resolver=aiodns.DNSResolver(loop=hass.loop),
            ssl_context=_ssl_context(data),
            clock=time.monotonic,
        )
    except ssl.SSLCertVerificationError as err:
        raise ProfileError("tls_untrusted", str(err)) from err
    except (LocationError, OSError, ssl.SSLError) as err:
        raise ProfileError("cannot_connect", str(err)) from err


async def async_register_once(runner: UserAgentRunner, within: float) -> RegistrationStatus:
    """Register and wait for the outcome; raises ProfileError with the failure's key.

    A server asking for a longer expiry (423) is adopted by the core on the way.
    """
    outcome: asyncio.Future[RegistrationStatus] = asyncio.get_running_loop().create_future()

    def on_event(event: UserAgentEvent) -> None:
        if not isinstance(event, RegistrationChanged) or outcome.done():
            return
        if event.status.state in (RegistrationState.REGISTERED, RegistrationState.FAILED):
            outcome.set_result(event.status)

    remove = runner.add_listener(on_event)
    try:
        runner.register()
        async with asyncio.timeout(within):
            status = await outcome
    except TimeoutError as err:
        raise ProfileError("timeout") from err
    finally:
        remove()
    if status.state is RegistrationState.FAILED:
        reason = status.reason or FailureReason.REJECTED
        answer = f"{status.status_code or ''} {status.reason_phrase or ''}".strip()
        raise ProfileError(FAILURE_KEYS[reason], status.reason_phrase, server_answer=answer)
    return status


async def async_check_profile(
    hass: HomeAssistant, data: Mapping[str, Any], options: Mapping[str, Any]
) -> RegistrationStatus:
    """Prove a profile live: register once, then unregister again."""
    runner = await async_start_runner(hass, data, options)
    try:
        return await async_register_once(runner, SETUP_TIMEOUT)
    finally:
        await runner.stop(unregister_timeout=SHUTDOWN_TIMEOUT)
