"""2,000 presence subscriptions from one process against the harness's Kamailio.

Run with ``python -m benchmarks.presence_subscriptions [watchers [buddies [rounds]]]``
(defaults 10 x 200 = 2,000 subscriptions, 3 rounds). It prints:

- the time from the first SUBSCRIBE until every subscription is active;
- resident memory per subscription (RSS growth of this process over the subscriptions);
- NOTIFY-to-event latency while a second process publishes a change for every buddy at once:
  the publisher writes its wall-clock send time into the PIDF note, the watchers read it back
  from the body they were handed (parsed after the run, off the measurement). The latency
  includes the publisher's retries: Kamailio's workers lock each other out of its SQLite store
  under load and answer PUBLISH with 500 (WAL mode does not help: writers still collide, and
  db_sqlite sets no busy timeout), which the publication retries after backoff.

The watchers are ``watchers`` user agents (one account and UDP socket each) in this process,
each watching every buddy; the publisher is ``python -m benchmarks.presence_subscriptions
--publish HOST PORT BUDDIES ROUNDS`` started by the benchmark, one user agent per buddy.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
import contextlib
import gc
import statistics
import sys
import time

from custom_components.sip_profiles.sip.aio.runner import UserAgentRunner
from custom_components.sip_profiles.sip.auth import Credentials
from custom_components.sip_profiles.sip.backoff import BackoffPolicy
from custom_components.sip_profiles.sip.documents import best_note, parse_pidf
from custom_components.sip_profiles.sip.documents.pidf import MyPresence
from custom_components.sip_profiles.sip.publication import PublicationChanged, PublicationState
from custom_components.sip_profiles.sip.registration import RegistrationState
from custom_components.sip_profiles.sip.subscription import (
    NotifyReceived,
    SubscriptionChanged,
    SubscriptionKey,
    SubscriptionState,
)
from custom_components.sip_profiles.sip.target import Target, Transport
from custom_components.sip_profiles.sip.uri import parse_sip_uri
from custom_components.sip_profiles.sip.useragent import (
    UserAgent,
    UserAgentEvent,
    UserAgentSettings,
)
from tests.harness.kamailio import DOMAIN, KamailioServer

ROUND_STATES = (MyPresence.BUSY, MyPresence.AWAY, MyPresence.AVAILABLE)
WAIT = 120.0
SETTLE = 10.0
"""Seconds to wait for NOTIFYs still missing after a round."""


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def password(user: str) -> str:
    return f"{user}-pw"


def make_runner(host: str, port: int, user: str) -> UserAgentRunner:
    settings = UserAgentSettings(
        aor=parse_sip_uri(f"sip:{user}@{DOMAIN}"),
        credentials=(Credentials(user, password(user)),),
        transport=Transport.UDP,
        backoff=BackoffPolicy(base=0.5, cap=5.0),
    )
    return UserAgentRunner(UserAgent(settings, [Target(Transport.UDP, host, port)]))


async def wait_until(changed: asyncio.Event, done: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not done():
            changed.clear()
            await changed.wait()


# -------------------------------------------------------------------------------- publisher


def published(runners: list[UserAgentRunner], presence: MyPresence) -> bool:
    """Whether the server accepted presence from every runner."""
    # refresh_at is set again once the server accepted the new state
    return all(
        r.user_agent.publication.state is PublicationState.PUBLISHED
        and r.user_agent.publication.status.presence is presence
        and r.user_agent.publication.status.refresh_at is not None
        for r in runners
    )


async def publish(host: str, port: int, buddies: int, rounds: int) -> None:
    """The second process: publish one state per round for every buddy at once."""
    runners = [make_runner(host, port, f"b{index:03d}") for index in range(buddies)]
    changed = asyncio.Event()
    failures = Counter[str]()

    def on_event(event: UserAgentEvent) -> None:
        if isinstance(event, PublicationChanged) and event.status.reason is not None:
            failures[f"{event.status.reason} {event.status.status_code}"] += 1
        changed.set()

    for runner in runners:
        runner.add_listener(on_event)
        await runner.start()

    def all_published() -> bool:
        return published(runners, presence)

    # A first round fetches the nonces, so measured rounds carry credentials at once.
    presence = MyPresence.AVAILABLE
    for runner in runners:
        runner.publish(presence, "warm-up")
    await wait_until(changed, all_published)
    print("ready", flush=True)
    for _ in range(rounds):
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        for presence in ROUND_STATES:
            for runner in runners:
                runner.publish(presence, f"{time.time():.6f}")
            await wait_until(changed, all_published)
        print("round", flush=True)
    for runner in runners:
        await runner.stop(unregister=False)
    # stdout is the benchmark's control channel; the failures go to the terminal
    print(f"publisher: failed PUBLISHes retried after backoff: {dict(failures)}", file=sys.stderr)


# -------------------------------------------------------------------------------- watchers


async def watch(watchers: int, buddies: int, rounds: int) -> None:
    accounts = {f"w{i}": password(f"w{i}") for i in range(watchers)}
    accounts |= {f"b{i:03d}": password(f"b{i:03d}") for i in range(buddies)}
    with KamailioServer(accounts=accounts) as server:
        await measure(server, watchers, buddies, rounds)


async def measure(server: KamailioServer, watchers: int, buddies: int, rounds: int) -> None:
    host, port = server.address("udp")
    changed = asyncio.Event()
    received: list[tuple[float, bytes]] = []

    active: set[tuple[str, SubscriptionKey]] = set()

    def listener(watcher: str) -> Callable[[UserAgentEvent], None]:
        def on_event(event: UserAgentEvent) -> None:
            if isinstance(event, NotifyReceived) and event.body:
                received.append((time.time(), event.body))
            elif isinstance(event, SubscriptionChanged):
                if event.status.state is SubscriptionState.ACTIVE:
                    active.add((watcher, event.key))
                else:
                    active.discard((watcher, event.key))
            changed.set()

        return on_event

    runners = [make_runner(host, port, f"w{i}") for i in range(watchers)]
    for index, runner in enumerate(runners):
        runner.add_listener(listener(f"w{index}"))
        await runner.start()
        runner.register()
    await wait_until(
        changed,
        lambda: all(
            r.user_agent.registration.state is RegistrationState.REGISTERED for r in runners
        ),
    )
    gc.collect()
    rss_before = rss_bytes()
    started = time.perf_counter()
    for index in range(buddies):
        uri = parse_sip_uri(f"sip:b{index:03d}@{DOMAIN}")
        for runner in runners:
            runner.subscribe(uri, "presence")
    total = watchers * buddies

    try:
        await wait_until(changed, lambda: len(active) == total)
    except TimeoutError:
        states = Counter(
            f"{status.state}/{status.reason}"
            for r in runners
            for status in r.user_agent.subscriptions.values()
        )
        print(f"not all active after {WAIT:g} s: {dict(states)}")
        raise
    elapsed = time.perf_counter() - started
    gc.collect()
    rss_after = rss_bytes()
    print(f"subscriptions active:      {total} in {elapsed:.2f} s")
    print(f"resident memory:           {(rss_after - rss_before) / total:.0f} B/subscription")
    # Finished transactions linger (Timer K, J) holding their messages; let them go.
    for runner in runners:
        runner.advance_clock(40)
    gc.collect()
    print(f"  after transactions ended: {(rss_bytes() - rss_before) / total:.0f} B/subscription")

    publisher = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.presence_subscriptions",
        "--publish",
        host,
        str(port),
        str(buddies),
        str(rounds),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert publisher.stdin is not None
    assert publisher.stdout is not None
    async with asyncio.timeout(WAIT):
        assert (await publisher.stdout.readline()).strip() == b"ready"
    received.clear()
    per_round = len(ROUND_STATES) * total
    for done_rounds in range(1, rounds + 1):
        publisher.stdin.write(b"go\n")
        await publisher.stdin.drain()
        async with asyncio.timeout(WAIT):
            assert (await publisher.stdout.readline()).strip() == b"round"
        # Kamailio may fold changes that follow each other closely into one NOTIFY.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE):

                def enough(count: int = done_rounds * per_round) -> bool:
                    return len(received) >= count

                await wait_until(changed, enough)
    publisher.stdin.close()
    await publisher.wait()
    latencies = []
    for arrived, body in received:
        note = best_note(parse_pidf(body))
        if note and note[0].isdigit():
            latencies.append(arrived - float(note))
    latencies.sort()
    expected = rounds * per_round
    print(f"NOTIFYs with a timestamp:  {len(latencies)} of {expected} publications x watchers")
    if latencies:
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"NOTIFY-to-event latency:   median {statistics.median(latencies) * 1000:.1f} ms,"
              f" p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")  # fmt: skip
    for runner in runners:
        await runner.stop(unregister=False)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--publish"]:
        host, port, buddies, rounds = argv[1:5]
        asyncio.run(publish(host, int(port), int(buddies), int(rounds)))
        return
    counts = ([int(a) for a in argv] + [10, 200, 3][len(argv) :])[:3]
    asyncio.run(watch(*counts))


if __name__ == "__main__":
    main(sys.argv[1:])
