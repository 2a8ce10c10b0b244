"""The asyncio runner against the real Kamailio: failover at start, reconnecting, stopping.

Waits are bounded waits for events; the runner's reconnect backoff is made short through the
user agent's backoff policy rather than slept through.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import logging
import math
import socket

import pytest

from custom_components.sip_profiles.sip.aio.runner import (
    TIMER_GRID,
    UserAgentRunner,
    start_user_agent,
)
from custom_components.sip_profiles.sip.auth import Credentials
from custom_components.sip_profiles.sip.backoff import BackoffPolicy
from custom_components.sip_profiles.sip.registration import (
    RegistrationChanged,
    RegistrationState,
)
from custom_components.sip_profiles.sip.target import Target, Transport
from custom_components.sip_profiles.sip.uri import parse_sip_uri
from custom_components.sip_profiles.sip.useragent import (
    ConnectionNeeded,
    UserAgent,
    UserAgentEvent,
    UserAgentSettings,
)
from tests.harness.dnsmasq import host, srv
from tests.harness.kamailio import TEST_ACCOUNTS, KamailioServer

from .conftest import ServeDns

WAIT = 10.0


def settings(server: KamailioServer, **overrides: object) -> UserAgentSettings:
    values: dict[str, object] = {
        "aor": parse_sip_uri(server.aor("alice")),
        "credentials": (Credentials("alice", TEST_ACCOUNTS["alice"]),),
        "transport": Transport.TCP,
    }
    values.update(overrides)
    return UserAgentSettings(**values)  # type: ignore[arg-type]


def refused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Recorder:
    """Every event and message of a runner, with a bounded wait for a condition."""

    def __init__(self, runner: UserAgentRunner) -> None:
        self.runner = runner
        self.events: list[UserAgentEvent] = []
        self.traces: list[tuple[str, bytes]] = []
        self._changed = asyncio.Event()
        self.remove_listener = runner.add_listener(self._on_event)
        self.remove_tracer = runner.add_tracer(self._on_trace)

    def _on_event(self, event: UserAgentEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def _on_trace(self, direction: str, _peer: Target, data: bytes) -> None:
        self.traces.append((direction, data))
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def registration(self) -> RegistrationState:
        return self.runner.user_agent.registration.state


class _Notifying(logging.Handler):
    """Collects the runner's log lines about refused attempts and wakes the recorder."""

    def __init__(self, recorder: Recorder, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self._recorder = recorder
        self._lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Cannot reach"):
            self._lines.append(message)
            self._recorder._changed.set()


@pytest.fixture
async def runners() -> AsyncIterator[list[UserAgentRunner]]:
    """Runners a test started; stopped (without waiting on the server) at teardown."""
    started: list[UserAgentRunner] = []
    yield started
    for runner in started:
        await runner.stop(unregister=False)


async def test_start_fails_over_to_the_next_server_when_the_first_refuses(
    kamailio_clean: KamailioServer, serve_dns: ServeDns, runners: list[UserAgentRunner]
) -> None:
    _, port = kamailio_clean.address("tcp")
    dead = refused_port()
    resolver = await serve_dns(
        [
            srv("_sip._tcp.sip.test", "pbx1.sip.test", dead, priority=10),
            srv("_sip._tcp.sip.test", "pbx2.sip.test", port, priority=20),
            host("pbx1.sip.test", "127.0.0.1"),
            host("pbx2.sip.test", "127.0.0.1"),
        ]
    )

    runner = await start_user_agent(settings(kamailio_clean), resolver=resolver)
    runners.append(runner)

    assert runner.user_agent.target == Target(Transport.TCP, "127.0.0.1", port, "sip.test")
    recorder = Recorder(runner)
    runner.register()
    await recorder.wait_for(lambda: recorder.registration() is RegistrationState.REGISTERED)
    (binding,) = kamailio_clean.bindings("alice")
    assert "transport=tcp" in binding.contact


async def test_start_raises_the_error_of_the_last_server_when_none_answers(
    kamailio_clean: KamailioServer, serve_dns: ServeDns
) -> None:
    resolver = await serve_dns(
        [
            srv("_sip._tcp.sip.test", "pbx1.sip.test", refused_port(), priority=10),
            srv("_sip._tcp.sip.test", "pbx2.sip.test", refused_port(), priority=20),
            host("pbx1.sip.test", "127.0.0.1"),
            host("pbx2.sip.test", "127.0.0.1"),
        ]
    )
    with pytest.raises(ConnectionRefusedError):
        await start_user_agent(settings(kamailio_clean), resolver=resolver)


async def reconnected(kamailio: KamailioServer, runners: list[UserAgentRunner]) -> Recorder:
    """Alice registered over TCP; the server stopped (refusing two attempts) and started again.

    Returns once the flow is open again and the registrar answered a REGISTER sent over it.
    """
    host, port = kamailio.address("tcp")
    quick = BackoffPolicy(base=0.05, cap=0.2)
    runner = UserAgentRunner(
        UserAgent(settings(kamailio, backoff=quick), [Target(Transport.TCP, host, port)])
    )
    runners.append(runner)
    recorder = Recorder(runner)
    await runner.start()
    runner.register()
    await recorder.wait_for(lambda: recorder.registration() is RegistrationState.REGISTERED)
    first_local = runner.user_agent.local_address

    refused: list[str] = []
    handler = _Notifying(recorder, refused)
    logger = logging.getLogger("custom_components.sip_profiles.sip.aio.runner")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        kamailio.stop()  # not in a thread: the server dies with the thread that forked it
        await recorder.wait_for(
            lambda: any(isinstance(e, ConnectionNeeded) for e in recorder.events)
        )
        # While the server is down every attempt is refused and the next one waits a little.
        await recorder.wait_for(lambda: len(refused) >= 2)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert all(f"Cannot reach tcp:{host}:{port}" in line for line in refused)

    kamailio.start()  # the same ports again
    assert kamailio.address("tcp") == (host, port)

    def registered_over_the_new_flow() -> bool:
        local = runner.user_agent.local_address
        status = runner.user_agent.registration.status
        return (
            local is not None
            and local != first_local
            and status.state is RegistrationState.REGISTERED
            and status.refresh_at is not None
            and status.public_address == local
        )

    await recorder.wait_for(registered_over_the_new_flow)
    return recorder


async def test_a_lost_tcp_flow_is_reopened_with_backoff_once_the_server_is_back(
    kamailio_clean: KamailioServer, runners: list[UserAgentRunner]
) -> None:
    recorder = await reconnected(kamailio_clean, runners)
    status = recorder.runner.user_agent.registration.status
    assert status.status_code == 200
    assert len(kamailio_clean.bindings("alice")) >= 1


async def test_the_binding_is_renewed_over_the_reopened_flow(
    kamailio_clean: KamailioServer, runners: list[UserAgentRunner]
) -> None:
    recorder = await reconnected(kamailio_clean, runners)
    # The Contact names our listening socket, which outlived the flow; the restarted
    # registrar learnt it again from a REGISTER over the new flow.
    contact = recorder.runner.user_agent.registration.status.contact
    _, port = recorder.runner.user_agent.local_address or ("", 0)
    assert contact is not None
    assert f":{port};" not in contact
    assert [b.contact for b in kamailio_clean.bindings("alice")] == [contact]


async def test_stop_unregisters_once_and_a_second_stop_does_nothing(
    kamailio_clean: KamailioServer,
) -> None:
    host, port = kamailio_clean.address("tcp")
    runner = UserAgentRunner(
        UserAgent(settings(kamailio_clean), [Target(Transport.TCP, host, port)])
    )
    recorder = Recorder(runner)
    await runner.start()
    runner.register()
    await recorder.wait_for(lambda: recorder.registration() is RegistrationState.REGISTERED)
    assert len(kamailio_clean.bindings("alice")) == 1

    await runner.stop()

    assert kamailio_clean.bindings("alice") == []
    assert recorder.registration() is RegistrationState.UNREGISTERED
    sent = len(recorder.traces)
    await runner.stop()
    assert len(recorder.traces) == sent
    assert recorder.registration() is RegistrationState.UNREGISTERED


async def test_removed_listeners_and_tracers_hear_nothing_more(
    kamailio_clean: KamailioServer, runners: list[UserAgentRunner]
) -> None:
    host, port = kamailio_clean.address("udp")
    runner = UserAgentRunner(
        UserAgent(
            settings(kamailio_clean, transport=Transport.UDP), [Target(Transport.UDP, host, port)]
        )
    )
    runners.append(runner)
    kept, removed = Recorder(runner), Recorder(runner)
    await runner.start()
    runner.register()
    await kept.wait_for(lambda: kept.registration() is RegistrationState.REGISTERED)
    assert removed.events == kept.events
    assert removed.traces == kept.traces

    removed.remove_listener()
    removed.remove_tracer()
    events, traces = len(removed.events), len(removed.traces)
    runner.unregister()
    await kept.wait_for(lambda: kept.registration() is RegistrationState.UNREGISTERED)

    assert (len(removed.events), len(removed.traces)) == (events, traces)
    assert any(
        isinstance(e, RegistrationChanged) and e.status.state is RegistrationState.UNREGISTERED
        for e in kept.events[events:]
    )
    assert [d for d, _ in kept.traces[traces:]] == ["out", "in"]


async def test_far_timers_of_every_runner_share_wakeups_and_near_ones_stay_exact(
    kamailio_clean: KamailioServer, runners: list[UserAgentRunner]
) -> None:
    loop = asyncio.get_running_loop()
    host, port = kamailio_clean.address("udp")
    keepalive_times: list[float] = []
    for _ in range(2):
        runner = UserAgentRunner(
            UserAgent(
                settings(kamailio_clean, transport=Transport.UDP, keepalive_interval=30.0),
                [Target(Transport.UDP, host, port)],
            )
        )
        await runner.start()
        runners.append(runner)
        # each keep-alive falls due 30 s after its own start, a moment apart
        keepalive = runner.user_agent.next_deadline()
        assert keepalive is not None
        keepalive_times.append(keepalive)
        await asyncio.sleep(0.01)
    assert keepalive_times[0] != keepalive_times[1]
    wakeups = [runner._timer.when() for runner in runners if runner._timer is not None]
    assert len(wakeups) == 2
    # one wake-up on the grid, at most one grid step after both are due
    assert (
        wakeups[0]
        == wakeups[1]
        == pytest.approx(math.ceil(max(keepalive_times) / TIMER_GRID) * TIMER_GRID)
    )
    assert wakeups[0] - max(keepalive_times) < TIMER_GRID

    # a REGISTER's retransmission timer (T1 = 0.5 s) is armed exactly
    runners[0].register()
    timer = runners[0]._timer
    assert timer is not None
    assert timer.when() == pytest.approx(runners[0].user_agent.next_deadline())
    assert timer.when() - loop.time() <= 0.5
