"""REGISTER-with-digest round trip on loopback UDP: our stack against sipp, on one Kamailio.

Run with ``python -m benchmarks.register_roundtrip [--count N] [--rounds R] [--repeats K]
[--profile] [--hold-cpus-awake]``.

What is measured, the same for both: a fresh registration, i.e. two round trips. The clock
starts when the first REGISTER (no credentials) has been sent and stops when the final 200 OK
to the second REGISTER (answering the 401's fresh nonce) has been received. No nonce is reused
inside the measured span, so every registration gets its own 401 challenge.

- sipp: a UAC scenario ``REGISTER -> 401 -> REGISTER [authentication] -> 200``, one call per
  registration. Its own response-time statistics (``-trace_rtt``, ``rtd``) count whole
  milliseconds, too coarse for loopback, so each call's time is read from the microsecond time
  stamps of its message trace (``-trace_msg``): the first REGISTER logged as sent to the 200
  logged as received. sipp takes a sent message's time stamp once ``sendto`` has returned and
  a received message's as soon as it has read the datagram, before its scenario handles it
  (``write_socket`` and ``process_message`` in sipp's ``socket.cpp``).
- Ours, at the same two points: one ``UserAgentRunner`` and UDP socket for a whole run, as
  sipp keeps one socket; before each registration its digest client forgets the nonce. Each
  run's first registration, which pays for starting the runner, is dropped as sipp's first
  call is. Start:
  the first REGISTER's ``sendto`` has returned (the benchmark wraps the transport layer's
  ``send``). Stop: the 200's datagram reaches the runner's message tracer, which sees every
  message as it arrives, before the user agent reads it. So both spans hold the server's two
  answers and the client's work between them: reading the 401 and writing and sending the
  answering REGISTER.
- Ours, to the REGISTERED state: also printed, not compared. It adds what happens after the
  200 has arrived: parsing it, the transaction and registration state machines and the
  listener call that hands the state change on.

Both then remove their binding (untimed), so Kamailio inserts a new binding every time for
both, and both run one registration at a time. The runs alternate in rounds, 10 by default,
so that load from other processes on the machine falls on both alike: on a shared virtual
machine that load comes and goes within a second, and with fewer, longer rounds one client
can get all of a quiet spell.

One such measurement (``--count`` registrations each, 200 by default) is a repeat; 5 repeats
are run back to back and each one's ratio of medians is printed. The verdict is on the median
of those ratios. A single repeat's ratio swings with the host's load over seconds (one repeat
of the same code has measured anywhere from 0.95x to 1.78x on a shared 2-vCPU virtual
machine): contention for the host's caches slows a Python process more than a small C one,
and it comes in spells that one repeat may fall into. The median of several repeats is the
typical ratio.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator
import contextlib
import cProfile
from datetime import datetime
from pathlib import Path
import pstats
import re
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

from custom_components.sip_profiles.sip.aio.runner import UserAgentRunner
from custom_components.sip_profiles.sip.auth import Credentials
from custom_components.sip_profiles.sip.registration import (
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

USER = "alice"
TARGET_RATIO = 1.5
WAIT = 10.0
# One entry of sipp's -trace_msg file: a dashed line with the time, then the message.
_SIPP_ENTRY_RE = re.compile(
    r"^-{10,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6})\n(.*?)(?=^-{10,} |\Z)",
    re.MULTILINE | re.DOTALL,
)
_SIPP_OK_RE = re.compile(r"^SIP/2\.0 200 ", re.MULTILINE)
# CPU seconds each client used over its measured runs (whole register/unregister cycles).
CPU_SECONDS = {"ours": 0.0, "sipp": 0.0}

# [authentication] answers the 401 with -au/-ap; the third REGISTER (after the measured span)
# removes the binding, like our runner's unregister.
SIPP_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register with digest">
  <send retrans="500">
    <![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
Max-Forwards: 70
From: <sip:[service]@sip.test>;tag=[pid]T[call_number]
To: <sip:[service]@sip.test>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:[service]@[local_ip]:[local_port]>
Expires: 600
Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
Max-Forwards: 70
From: <sip:[service]@sip.test>;tag=[pid]T[call_number]
To: <sip:[service]@sip.test>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:[service]@[local_ip]:[local_port]>
Expires: 600
[authentication]
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
  <send retrans="500">
    <![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
Max-Forwards: 70
From: <sip:[service]@sip.test>;tag=[pid]T[call_number]
To: <sip:[service]@sip.test>
Call-ID: [call_id]
CSeq: 3 REGISTER
Contact: <sip:[service]@[local_ip]:[local_port]>
Expires: 0
[authentication]
Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""


# -- ours ---------------------------------------------------------------------------------------


class _OurClient:
    """One runner and its UDP socket for a whole run, as sipp keeps one socket for all calls."""

    def __init__(self, runner: UserAgentRunner) -> None:
        self.runner = runner
        self.sent_at: float | None = None
        self.answered_at: float | None = None
        self._waiting: tuple[RegistrationState, asyncio.Future[float]] | None = None
        send = runner.transports.send

        def send_and_stamp(target: Target, data: bytes) -> None:
            send(target, data)
            if self.sent_at is None:
                self.sent_at = time.perf_counter()

        # Stamped once the datagram has left, as sipp's trace is (see the module docstring).
        runner.transports.send = send_and_stamp  # type: ignore[method-assign]
        runner.add_tracer(self._on_message)
        runner.add_listener(self._on_event)

    def _on_message(self, direction: str, _: Target, data: bytes) -> None:
        # The first 200 after the first REGISTER went out answers the authorized REGISTER:
        # the bare one is always challenged, as the digest client holds no nonce.
        if (
            direction == "in"
            and self.sent_at is not None
            and self.answered_at is None
            and data.startswith(b"SIP/2.0 200 ")
        ):
            self.answered_at = time.perf_counter()

    def _on_event(self, event: UserAgentEvent) -> None:
        if self._waiting is None or not isinstance(event, RegistrationChanged):
            return
        state, reached = self._waiting
        if event.status.state is state and not reached.done():
            reached.set_result(time.perf_counter())

    async def reach(self, state: RegistrationState) -> float:
        reached: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting = (state, reached)
        async with asyncio.timeout(WAIT):
            return await reached

    async def one_registration(self) -> tuple[float, float]:
        """Seconds from the first REGISTER sent to the final 200 and to the REGISTERED state.

        The binding is removed afterwards.
        """
        self._start_registration()
        registered = await self.reach(RegistrationState.REGISTERED)
        sent_at, answered_at = self.sent_at, self.answered_at
        assert sent_at is not None
        assert answered_at is not None
        self.runner.unregister()
        await self.reach(RegistrationState.UNREGISTERED)
        return answered_at - sent_at, registered - sent_at

    def _start_registration(self) -> None:
        # A fresh registration: no nonce is known, so the first REGISTER is challenged.
        self.runner.user_agent.digest.forget()
        self.sent_at = self.answered_at = None
        self.runner.register()


async def measure_ours(server: KamailioServer, count: int) -> list[tuple[float, float]]:
    """``count`` fresh registrations by our stack, one at a time; seconds each, as above.

    Each is a pair: to the final 200 and to the REGISTERED state. As for sipp, one registration
    more than asked is run and the first is dropped: it pays for the new runner, socket and
    event loop. The CPU time of the whole run is added to ``CPU_SECONDS["ours"]``.
    """
    host, port = server.address("udp")
    settings = UserAgentSettings(
        aor=parse_sip_uri(server.aor(USER)),
        credentials=(Credentials(USER, TEST_ACCOUNTS[USER]),),
        transport=Transport.UDP,
        registrar=parse_sip_uri(f"sip:{host}:{port}"),
        expires=600,
    )
    cpu_before = time.process_time()
    runner = UserAgentRunner(UserAgent(settings, [Target(Transport.UDP, host, port)]))
    await runner.start()
    client = _OurClient(runner)
    try:
        times = [await client.one_registration() for _ in range(count + 1)]
    finally:
        await runner.stop()
    CPU_SECONDS["ours"] += time.process_time() - cpu_before
    return times[1:]


# -- sipp ---------------------------------------------------------------------------------------


def measure_sipp(sipp: str, server: KamailioServer, count: int, workdir: Path) -> list[float]:
    """``count`` fresh registrations by sipp, one at a time; seconds each.

    sipp runs one registration more than asked and the first is dropped: it pays for the
    process's start (as each of our runs drops its first). The CPU time of the whole sipp process
    is added to ``CPU_SECONDS["sipp"]``.
    """
    host, port = server.address("udp")
    scenario = workdir / "register_digest.xml"
    scenario.write_text(SIPP_SCENARIO, encoding="ascii")
    messages = workdir / "messages.log"
    messages.unlink(missing_ok=True)
    command = [
        sipp, f"{host}:{port}", "-sf", str(scenario), "-i", host, "-s", USER,
        "-au", USER, "-ap", TEST_ACCOUNTS[USER], "-m", str(count + 1), "-l", "1", "-r", "10000",
        "-trace_msg", "-message_file", str(messages), "-nostdin", "-timeout", "120s",
        "-timeout_error",
    ]  # fmt: skip
    cpu_before = _children_cpu()
    result = subprocess.run(
        command,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    CPU_SECONDS["sipp"] += _children_cpu() - cpu_before
    if result.returncode != 0:
        raise RuntimeError(f"sipp exited with {result.returncode}: {result.stderr.strip()}")
    times = registration_times(messages.read_text(encoding="utf-8", errors="replace"))
    if len(times) != count + 1:
        raise RuntimeError(f"sipp's trace holds {len(times)} registrations, expected {count + 1}")
    return times[1:]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def registration_times(trace: str) -> list[float]:
    """Per call in a sipp message trace: first REGISTER sent -> 200 to CSeq 2 received."""
    started: dict[str, datetime] = {}
    times: list[float] = []
    for stamp, block in _SIPP_ENTRY_RE.findall(trace):
        when = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")
        call_id = _header(block, "Call-ID")
        cseq = _header(block, "CSeq").split()[0]
        sent = "message sent" in block.split("\n", 1)[0]
        if sent and cseq == "1":
            started[call_id] = when
        elif not sent and cseq == "2" and _SIPP_OK_RE.search(block):
            times.append((when - started.pop(call_id)).total_seconds())
    return times


def _header(block: str, name: str) -> str:
    match = re.search(rf"^{name}:[ \t]*(.*?)\r?$", block, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no {name} in sipp's trace entry {block[:200]!r}")
    return match.group(1)


# -- report -------------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values``."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered)))
    return ordered[rank - 1]


Repeat = tuple[list[tuple[float, float]], list[float]]
"""One repeat: ours (to the 200, to the REGISTERED state) and sipp's (to the 200), in seconds."""


def report(repeats: list[Repeat]) -> None:
    """Print each repeat's medians and ratio, the spans of all repeats together, and the verdict.

    The verdict is on the median of the repeats' ratios (see the module docstring).
    """
    ours = [times for repeat_ours, _ in repeats for times in repeat_ours]
    sipp = [seconds for _, repeat_sipp in repeats for seconds in repeat_sipp]
    count = len(repeats[0][0])
    print(f"\nREGISTER + 401 + REGISTER with digest + 200 over UDP on loopback, one at a time, "
          f"{len(repeats)} repeats of {count} registrations each")  # fmt: skip
    ratios: list[float] = []
    for number, (repeat_ours, repeat_sipp) in enumerate(repeats, 1):
        ours_median = statistics.median(to_answer for to_answer, _ in repeat_ours)
        sipp_median = statistics.median(repeat_sipp)
        ratios.append(ours_median / sipp_median)
        print(f"repeat {number}: median to the 200 ours {ours_median * 1000:.3f}ms, "
              f"sipp {sipp_median * 1000:.3f}ms, ratio {ratios[-1]:.2f}x")  # fmt: skip
    answered = [to_answer for to_answer, _ in ours]
    registered = [to_state for _, to_state in ours]
    print(f"\nall repeats together{'':14}{'median':>10}{'p90':>10}{'mean':>10}")
    rows = (
        ("ours, to the 200 received", answered),
        ("sipp 3.6.1, to the 200 received", sipp),
        ("ours, to the REGISTERED state", registered),
    )
    for name, values in rows:
        row = (statistics.median(values), percentile(values, 0.9), statistics.fmean(values))
        print(f"{name:34}" + "".join(f"{value * 1000:>8.3f}ms" for value in row))
    median_ratio = statistics.median(ratios)
    verdict = "met" if median_ratio <= TARGET_RATIO else "NOT met"
    within = sum(ratio <= TARGET_RATIO for ratio in ratios)
    print(f"ratio ours/sipp to the 200, median of {count} per repeat: "
          + ", ".join(f"{ratio:.2f}x" for ratio in ratios)
          + f"; {within} of {len(ratios)} within {TARGET_RATIO}x")  # fmt: skip
    print(f"median of the repeats' ratios {median_ratio:.2f}x "
          f"(target {TARGET_RATIO}x: {verdict})")  # fmt: skip
    state_ratio = statistics.median(registered) / statistics.median(sipp)
    print(f"ours to the REGISTERED state / sipp to the 200, all repeats: median {state_ratio:.2f}x")
    # On a busy machine wall time stretches with CPU time; this shows how much each client used.
    cpu = {name: seconds / len(ours) * 1e6 for name, seconds in CPU_SECONDS.items()}
    print(
        "CPU per register+unregister cycle (whole client process):"
        f" ours {cpu['ours']:.0f} us, sipp {cpu['sipp']:.0f} us (each with its runs' starts)"
    )


@contextlib.contextmanager
def cpus_held_awake() -> Iterator[None]:
    """Keep every CPU out of idle states while the context lasts.

    A 0 us request in ``/dev/cpu_dma_latency`` (Linux PM QoS), as latency benchmarks often make:
    an idle CPU then polls instead of halting. Waking a halted CPU costs both clients alike, but
    on a virtual machine the host may meanwhile run other work on that core, and refilling
    its caches costs a Python process more than a small C one. The option shows how much of
    the gap that is.
    """
    with open("/dev/cpu_dma_latency", "wb", buffering=0) as request:
        request.write(struct.pack("i", 0))
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.register_roundtrip")
    parser.add_argument(
        "--count", type=int, default=200, help="registrations per client and repeat"
    )
    parser.add_argument(
        "--rounds", type=int, default=10, help="alternations of ours and sipp per repeat"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="measurements of --count registrations each"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile our side (CPU time), print the top 25"
    )
    parser.add_argument(
        "--hold-cpus-awake",
        action="store_true",
        help="keep every CPU out of idle states during the runs (Linux PM QoS; needs root)",
    )
    args = parser.parse_args(argv)
    sipp = shutil.which("sipp")
    if sipp is None:
        print("sipp is not installed (Debian package sip-tester)", file=sys.stderr)
        return 1
    per_round = max(1, args.count // args.rounds)
    repeats: list[Repeat] = []
    # CPU time, not wall time: a process waiting for a core must not be charged to a function.
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    with contextlib.ExitStack() as stack:
        if args.hold_cpus_awake:
            stack.enter_context(cpus_held_awake())
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="sipp-"))
        server = stack.enter_context(KamailioServer())
        asyncio.run(measure_ours(server, 5))  # warm up imports, caches and Kamailio
        CPU_SECONDS["ours"] = 0.0
        for _ in range(args.repeats):
            ours: list[tuple[float, float]] = []
            theirs: list[float] = []
            for _ in range(args.rounds):
                if profiler is not None:
                    profiler.enable()
                ours += asyncio.run(measure_ours(server, per_round))
                if profiler is not None:
                    profiler.disable()
                theirs += measure_sipp(sipp, server, per_round, Path(workdir))
            repeats.append((ours, theirs))
    report(repeats)
    if args.hold_cpus_awake:
        print("CPUs held out of idle states during the runs (PM QoS request of 0 us)")
    if profiler is not None:
        print("\nWhere our side spends its CPU time (cumulative, top 25):")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
