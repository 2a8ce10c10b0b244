"""Helpers of the presence tests: buddies as subentries, a watching client and raw PUBLISHes."""

from __future__ import annotations

from collections.abc import AsyncIterator
import contextlib
import socket

from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sip_profiles.sip.aio.runner import UserAgentRunner
from custom_components.sip_profiles.sip.auth import Credentials, DigestClient
from custom_components.sip_profiles.sip.documents import (
    PresenceState,
    best_note,
    parse_pidf,
    summarize,
)
from custom_components.sip_profiles.sip.message import Response, parse_message
from custom_components.sip_profiles.sip.subscription import (
    NotifyReceived,
    SubscriptionKey,
    SubscriptionState,
)
from custom_components.sip_profiles.sip.target import Target, Transport
from custom_components.sip_profiles.sip.uri import parse_sip_uri
from custom_components.sip_profiles.sip.useragent import UserAgent, UserAgentSettings
from tests.harness.kamailio import TEST_ACCOUNTS, KamailioServer

from .helpers import WAIT, SecondDevice, wait_for


async def add_buddy(
    hass: HomeAssistant, entry: MockConfigEntry, uri: str, name: str, watch: str = "presence"
) -> str:
    """Add a buddy through the subentry flow, as the UI does; returns the subentry id."""
    before = set(entry.subentries)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "buddy"), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"uri": uri, "name": name, "watch": watch}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    (subentry_id,) = set(entry.subentries) - before
    return subentry_id


class Watcher(SecondDevice):
    """A second client that subscribes to someone's presence and keeps every NOTIFY.

    It speaks UDP: Kamailio sends NOTIFYs to the Contact, which over TCP would be a new
    connection to a port where nothing listens.
    """

    def __init__(self, kamailio: KamailioServer, user: str) -> None:
        """Prepare a UDP user agent for ``user``."""
        super().__init__(kamailio, user)
        host, port = kamailio.address("udp")
        settings = UserAgentSettings(
            aor=parse_sip_uri(kamailio.aor(user)),
            credentials=(Credentials(user, TEST_ACCOUNTS[user]),),
            transport=Transport.UDP,
        )
        self.runner = UserAgentRunner(UserAgent(settings, [Target(Transport.UDP, host, port)]))
        self.runner.add_listener(self.events.append)

    def notifies(self, key: SubscriptionKey) -> list[NotifyReceived]:
        """The NOTIFYs of subscription ``key`` so far."""
        return [e for e in self.events if isinstance(e, NotifyReceived) and e.key == key]

    def presence(self, key: SubscriptionKey) -> tuple[PresenceState, str | None]:
        """What the last NOTIFY of ``key`` says, and its note."""
        body = self.notifies(key)[-1].body
        document = parse_pidf(body) if body.strip() else None
        return summarize(document), best_note(document)


@contextlib.asynccontextmanager
async def watching(
    hass: HomeAssistant, kamailio: KamailioServer, user: str, watched: str
) -> AsyncIterator[tuple[Watcher, SubscriptionKey]]:
    """``user`` registered on its own runner, subscribed to ``watched``'s presence."""
    client = Watcher(kamailio, user)
    try:
        await client.register(hass)
        key = client.runner.subscribe(parse_sip_uri(kamailio.aor(watched)), "presence")
        await wait_for(hass, lambda: bool(client.notifies(key)))
        yield client, key
        # Leave no watcher behind at the server for the next test.
        client.runner.unsubscribe(key)
        await wait_for(
            hass,
            lambda: (
                (status := client.runner.user_agent.subscription_status(key)) is not None
                and status.state is SubscriptionState.UNSUBSCRIBED
            ),
        )
    finally:
        await client.runner.stop(unregister=False)
        kamailio.remove_bindings(user)


def raw_publish(
    server: KamailioServer,
    user: str,
    body: str,
    *,
    event: str = "presence",
    content_type: str = "application/pidf+xml",
    etag: str | None = None,
    expires: int = 600,
) -> str | None:
    """PUBLISH ``body`` for ``user`` from a bare UDP socket (blocking: run it in a thread).

    With ``etag`` the PUBLISH replaces that earlier publication (RFC 3903 modify), or removes
    it with ``expires=0``; returns the entity-tag of the publication.
    """
    if_match = f"SIP-If-Match: {etag}\r\n" if etag else ""
    digest = DigestClient([Credentials(user, server.accounts[user])])
    uri = server.aor(user)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(WAIT)
        port = sock.getsockname()[1]
        # Kamailio's SQLite store is sometimes locked by its other worker: 500, try again.
        for cseq in range(1, 8):
            authorization = "".join(
                f"{name}: {value}\r\n"
                for name, value in digest.authorization_headers("PUBLISH", uri)
            )
            request = (
                f"PUBLISH {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKraw{cseq}{port};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <{uri}>;tag=raw{port}\r\nTo: <{uri}>\r\nCall-ID: raw-{port}\r\n"
                f"CSeq: {cseq} PUBLISH\r\nEvent: {event}\r\nExpires: {expires}\r\n"
                f"Content-Type: {content_type}\r\n{if_match}{authorization}"
                f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
            )
            sock.sendto(request.encode(), server.address("udp"))
            answer = parse_message(sock.recv(65535))
            assert isinstance(answer, Response)
            if answer.status == 200:
                return answer.headers.get("SIP-ETag")
            assert answer.status in (401, 500), answer.status
            if answer.status == 401:
                digest.handle_challenge(401, answer.headers.get_all("WWW-Authenticate"))
    raise AssertionError("PUBLISH was not accepted")


def dialog_info(
    entity: str, version: int, state: str | None, *, direction: str = "recipient", remote: str = ""
) -> str:
    """A full dialog-info document (RFC 4235) with one dialog in ``state``, or none."""
    dialog = (
        f'<dialog id="d1" call-id="call-1" direction="{direction}"><state>{state}</state>'
        f'<remote><identity display="Caller">{remote}</identity></remote></dialog>'
        if state
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" '
        f'version="{version}" state="full" entity="{entity}">{dialog}</dialog-info>\n'
    )
