"""The registration client against a real Kamailio over UDP, TCP and TLS.

Timers are driven with ``UserAgentRunner.advance_clock``; waits are bounded waits for events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
from dataclasses import dataclass, field

import pytest

from custom_components.sip_profiles.sip.aio.runner import UserAgentRunner
from custom_components.sip_profiles.sip.aio.tls import client_ssl_context
from custom_components.sip_profiles.sip.auth import Credentials
from custom_components.sip_profiles.sip.message import Request, parse_message
from custom_components.sip_profiles.sip.registration import (
    AllBindingsRemoved,
    BindingsListed,
    FailureReason,
    RegistrationChanged,
    RegistrationState,
)
from custom_components.sip_profiles.sip.target import Target, Transport
from custom_components.sip_profiles.sip.uri import parse_sip_uri
from custom_components.sip_profiles.sip.useragent import (
    UserAgent,
    UserAgentEvent,
    UserAgentSettings,
)
from tests.harness.kamailio import TEST_ACCOUNTS, KamailioServer

WAIT = 10.0


@dataclass
class Client:
    """A runner plus everything it reported and sent."""

    runner: UserAgentRunner
    events: list[UserAgentEvent] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def state(self) -> RegistrationState:
        return self.runner.user_agent.registration.state

    def registers_sent(self) -> list[Request]:
        """Distinct REGISTER requests on the wire (retransmissions counted once)."""
        seen: dict[str, Request] = {}
        for data in self.sent:
            if not data.strip():
                continue
            message = parse_message(data)
            if isinstance(message, Request) and message.method == "REGISTER":
                seen.setdefault(message.top_via.branch or "", message)
        return list(seen.values())

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_state(self, state: RegistrationState) -> None:
        await self.wait_for(lambda: self.state is state)


@pytest.fixture
async def make_client(
    kamailio_clean: KamailioServer,
) -> AsyncIterator[Callable[..., Client]]:
    clients: list[Client] = []

    def make(
        transport: Transport = Transport.UDP,
        *,
        user: str = "alice",
        password: str | None = None,
        expires: int = 3600,
    ) -> Client:
        host, port = kamailio_clean.address(transport.value)
        settings = UserAgentSettings(
            aor=parse_sip_uri(kamailio_clean.aor(user)),
            credentials=(Credentials(user, password or TEST_ACCOUNTS[user]),),
            transport=transport,
            expires=expires,
        )
        target = Target(transport, host, port, server_name="sip.test")
        ssl_context = (
            client_ssl_context(ca_file=str(kamailio_clean.ca_file))
            if transport is Transport.TLS
            else None
        )
        runner = UserAgentRunner(UserAgent(settings, [target]), ssl_context=ssl_context)
        client = Client(runner)

        def on_event(event: UserAgentEvent) -> None:
            client.events.append(event)
            client._changed.set()

        runner.add_listener(on_event)
        runner.add_tracer(
            lambda direction, _, data: direction == "out" and client.sent.append(data)
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.runner.stop(unregister_timeout=2)


TRANSPORTS = pytest.mark.parametrize(
    "transport", [Transport.UDP, Transport.TCP, Transport.TLS], ids=lambda t: t.value
)


@TRANSPORTS
async def test_register_refresh_and_unregister(
    transport: Transport, make_client: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    client = make_client(transport)
    await client.runner.start()
    client.runner.register()
    await client.wait_for_state(RegistrationState.REGISTERED)
    status = client.runner.user_agent.registration.status
    assert status.expires == 3600
    (binding,) = kamailio_clean.bindings("alice")
    assert status.contact is not None
    assert binding.contact.split(";")[0] == status.contact.split(";")[0]
    assert binding.expires > 3500

    first_cseq = client.registers_sent()[-1].cseq.number
    client.runner.advance_clock(3240)
    await client.wait_for(lambda: client.registers_sent()[-1].cseq.number > first_cseq)
    await client.wait_for_state(RegistrationState.REGISTERED)
    refresh = client.registers_sent()[-1]
    assert refresh.call_id == client.registers_sent()[0].call_id
    assert "nc=00000002" in (refresh.headers.get("Authorization") or "")
    assert len(kamailio_clean.bindings("alice")) == 1

    client.runner.unregister()
    await client.wait_for_state(RegistrationState.UNREGISTERED)
    assert kamailio_clean.bindings("alice") == []


async def test_interval_too_brief_adopts_the_servers_minimum(
    make_client: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    client = make_client(expires=20)
    await client.runner.start()
    client.runner.register()
    await client.wait_for_state(RegistrationState.REGISTERED)
    assert client.runner.user_agent.registration.status.expires == 60
    assert [r.headers.get("Expires") for r in client.registers_sent()][-1] == "60"


async def test_max_expires_is_granted_less(make_client: Callable[..., Client]) -> None:
    client = make_client(expires=7200)
    await client.runner.start()
    client.runner.register()
    await client.wait_for_state(RegistrationState.REGISTERED)
    assert client.runner.user_agent.registration.status.expires == 3600


@TRANSPORTS
@pytest.mark.parametrize("enabled", [True, False])
async def test_unregister_all_removes_another_clients_binding(
    transport: Transport,
    enabled: bool,
    make_client: Callable[..., Client],
    kamailio_clean: KamailioServer,
) -> None:
    phone = make_client(Transport.UDP if transport is Transport.TCP else Transport.TCP)
    home = make_client(transport)
    for client in (phone, home):
        await client.runner.start()
        client.runner.register()
        await client.wait_for_state(RegistrationState.REGISTERED)
    assert len(kamailio_clean.bindings("alice")) == 2

    home.runner.query_bindings()
    await home.wait_for(lambda: any(isinstance(e, BindingsListed) for e in home.events))
    listed = next(e for e in home.events if isinstance(e, BindingsListed))
    assert len(listed.bindings) == 2
    assert [b.ours for b in listed.bindings].count(True) == 1

    if not enabled:
        home.runner.unregister()
        await home.wait_for_state(RegistrationState.UNREGISTERED)
    home.runner.unregister_all()
    await home.wait_for(lambda: any(isinstance(e, AllBindingsRemoved) for e in home.events))
    assert AllBindingsRemoved(2 if enabled else 1) in home.events
    if enabled:
        # Enabled means registered: only our own binding comes back.
        await home.wait_for_state(RegistrationState.REGISTERED)
        contact = home.runner.user_agent.registration.status.contact
        assert [b.contact for b in kamailio_clean.bindings("alice")] == [contact]
    else:
        assert kamailio_clean.bindings("alice") == []
        assert home.state is RegistrationState.UNREGISTERED


@pytest.mark.parametrize("answer_403", [False, True])
async def test_wrong_password_fails_after_at_most_two_registers(
    answer_403: bool, make_client: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    kamailio_clean.set_auth_403(answer_403)
    client = make_client(password="not-the-password")
    await client.runner.start()
    client.runner.register()
    await client.wait_for_state(RegistrationState.FAILED)
    status = client.runner.user_agent.registration.status
    expected = FailureReason.FORBIDDEN if answer_403 else FailureReason.AUTH_FAILED
    assert status.reason is expected
    assert status.retry_at is None
    client.runner.advance_clock(7200)
    assert len(client.registers_sent()) == 2


async def test_service_unavailable_retry_after_is_honoured(
    make_client: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    kamailio_clean.set_register_503(45)
    client = make_client()
    await client.runner.start()
    client.runner.register()
    await client.wait_for_state(RegistrationState.FAILED)
    status = client.runner.user_agent.registration.status
    assert status.status_code == 503
    assert status.retry_at is not None
    assert status.retry_at - client.runner.now() == pytest.approx(45, abs=1)
    kamailio_clean.set_register_503(0)
    client.runner.advance_clock(44)
    assert len(client.registers_sent()) == 1
    client.runner.advance_clock(1.5)
    await client.wait_for_state(RegistrationState.REGISTERED)


async def test_udp_retransmission_survives_dropped_requests(
    make_client: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    kamailio_clean.set_drop_every(2)
    client = make_client()
    await client.runner.start()
    client.runner.register()
    while client.state is not RegistrationState.REGISTERED:
        # Fire Timer E by hand: each retransmission goes out at once instead of after T1.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.3):
                await client.wait_for_state(RegistrationState.REGISTERED)
        client.runner.advance_clock(0.5)
    assert client.runner.user_agent.stats.retransmissions >= 1
    assert len(kamailio_clean.bindings("alice")) == 1


@TRANSPORTS
async def test_registration_comes_back_after_a_server_restart(
    transport: Transport, make_client: Callable[..., Client], kamailio_clean: KamailioServer
) -> None:
    client = make_client(transport)
    await client.runner.start()
    client.runner.register()
    await client.wait_for_state(RegistrationState.REGISTERED)
    kamailio_clean.stop()
    client.runner.advance_clock(3240)  # the refresh goes unanswered...
    client.runner.advance_clock(32)  # ...until Timer F
    assert client.state is RegistrationState.FAILED
    status = client.runner.user_agent.registration.status
    assert status.reason in (FailureReason.TIMEOUT, FailureReason.TRANSPORT_ERROR)
    assert status.retry_at is not None
    kamailio_clean.start()
    client.runner.advance_clock(status.retry_at - client.runner.now())
    await client.wait_for_state(RegistrationState.REGISTERED)
    assert len(kamailio_clean.bindings("alice")) == 1


@TRANSPORTS
async def test_every_state_change_is_reported_in_order(
    transport: Transport, make_client: Callable[..., Client]
) -> None:
    client = make_client(transport)
    await client.runner.start()
    client.runner.register()
    await client.wait_for_state(RegistrationState.REGISTERED)
    client.runner.unregister()
    await client.wait_for_state(RegistrationState.UNREGISTERED)
    states = [e.status.state for e in client.events if isinstance(e, RegistrationChanged)]
    assert states == [
        RegistrationState.REGISTERING,
        RegistrationState.REGISTERED,
        RegistrationState.UNREGISTERING,
        RegistrationState.UNREGISTERED,
    ]
