"""The probe's watch and publish commands, and its failures, against the real Kamailio.

A command that must stay up while something else happens (a watch while bob publishes, a
publication while a watcher looks) runs the probe as a program with ``--hold`` and ends it with
Ctrl-C (SIGINT), as a user would; short commands run in-process through ``main(argv)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
import re
import socket
import subprocess

import pytest

from custom_components.sip_profiles.sip.aio.probe import ExitCode
from custom_components.sip_profiles.sip.aio.runner import UserAgentRunner
from custom_components.sip_profiles.sip.auth import Credentials
from custom_components.sip_profiles.sip.documents import PresenceState, parse_pidf, summarize
from custom_components.sip_profiles.sip.subscription import NotifyReceived, SubscriptionState
from custom_components.sip_profiles.sip.target import Target, Transport
from custom_components.sip_profiles.sip.uri import parse_sip_uri
from custom_components.sip_profiles.sip.useragent import (
    UserAgent,
    UserAgentEvent,
    UserAgentSettings,
)
from tests.harness.kamailio import TEST_ACCOUNTS, KamailioServer
from tests.sip.test_probe import (
    PASSWORD_VARIABLE,
    PROBE,
    ROOT,
    WAIT,
    ProbeProgram,
    free_port,
    probe_argv,
    run_probe,
)


@pytest.fixture
def programs() -> Iterator[Callable[[list[str], str], ProbeProgram]]:
    """Start probe programs; any still running at teardown gets Ctrl-C."""
    started: list[ProbeProgram] = []

    def start(argv: list[str], password: str) -> ProbeProgram:
        program = ProbeProgram(argv, password)
        started.append(program)
        return program

    yield start
    for program in started:
        if program.process.poll() is None:
            program.end()


def password_env(monkeypatch: pytest.MonkeyPatch, password: str) -> list[str]:
    monkeypatch.setenv(PASSWORD_VARIABLE, password)
    return ["--password-env", PASSWORD_VARIABLE]


# -- watch ---------------------------------------------------------------------------------------


def test_watch_prints_bobs_busy_presence_and_ctrl_c_unsubscribes(
    kamailio_clean: KamailioServer,
    programs: Callable[[list[str], str], ProbeProgram],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bob = kamailio_clean.aor("bob")
    watcher = programs(
        probe_argv(kamailio_clean, "watch", bob, "--hold", "120"), TEST_ACCOUNTS["alice"]
    )
    watcher.wait_for_line(r"presence of sip:bob@sip\.test  active  \[200\]")
    watcher.wait_for_line(r"watching for 120 s \(Ctrl-C ends it\)")

    argv = probe_argv(kamailio_clean, "publish", "--presence", "busy", "--note", "In a meeting",
                      "--quiet", user="bob")  # fmt: skip
    code, out, err = run_probe([*argv, *password_env(monkeypatch, TEST_ACCOUNTS["bob"])], capsys)
    assert code == ExitCode.OK, err
    assert re.findall(r"publication  (\w+)", out) == [
        "publishing",
        "published",
        "unpublishing",
        "unpublished",
    ]

    # The NOTIFY is printed as it came, then counted; bob's busy person and note are in it.
    watcher.wait_for_line(r"<rpid:busy/>|<note>In a meeting</note>")
    watcher.wait_for_line(r"presence of sip:bob@sip\.test: \d+ bytes of application/pidf\+xml")

    code, out, err = watcher.end()
    assert code == ExitCode.OK, err
    assert re.findall(r"presence of sip:bob@sip\.test  (\w+)", out)[-2:] == [
        "unsubscribing",
        "unsubscribed",
    ]
    assert "Subscription-State: terminated" in out
    assert "Expires: 0" in out
    assert TEST_ACCOUNTS["alice"] not in out + err


@pytest.mark.parametrize(
    ("watched", "answer_403", "expected"),
    [
        ("sip:bob@sip.test", False, "auth_failed (401)"),
        ("sip:bob@sip.test", True, "forbidden (403)"),
        ("sip:bob@example.com", False, "forbidden (403)"),
    ],
    ids=["wrong-password", "wrong-password-403", "foreign-domain"],
)
def test_refused_watch_exits_with_the_auth_code(
    watched: str,
    answer_403: bool,
    expected: str,
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kamailio_clean.set_auth_403(answer_403)
    password = "wrong-horse" if watched.endswith("sip.test") else TEST_ACCOUNTS["alice"]
    argv = probe_argv(kamailio_clean, "watch", watched, "--quiet")
    code, out, err = run_probe([*argv, *password_env(monkeypatch, password)], capsys)
    assert code == ExitCode.AUTH_FAILED
    assert err == f"probe: subscription to presence of {watched} failed: {expected}\n"
    assert re.search(rf"presence of {re.escape(watched)}  failed", out)


@pytest.mark.parametrize(("event", "body_type"), [
    ("dialog", "application/dialog-info+xml"),
    ("presence.winfo", "application/watcherinfo+xml"),
])  # fmt: skip
def test_watch_other_event_packages(
    event: str,
    body_type: str,
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watched = kamailio_clean.aor("alice" if event == "presence.winfo" else "bob")
    argv = probe_argv(kamailio_clean, "watch", watched, "--event", event)
    code, out, err = run_probe([*argv, *password_env(monkeypatch, TEST_ACCOUNTS["alice"])], capsys)
    assert code == ExitCode.OK, err
    assert f"Event: {event}" in out
    assert f"Accept: {body_type}" in out
    states = re.findall(rf"{re.escape(event)} of {re.escape(watched)}  (\w+)", out)
    assert states[0] == "subscribing"
    assert states[-1] == "unsubscribed"
    assert "active" in states


def test_watch_without_answer_is_one_clear_line(
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port(socket.SOCK_DGRAM)
    argv = ["watch", kamailio_clean.aor("alice"), "sip:bob@sip.test",
            "--registrar", f"sip:127.0.0.1:{port}", "--timeout", "0.5",
            *password_env(monkeypatch, "irrelevant")]  # fmt: skip
    code, out, err = run_probe(argv, capsys)
    assert code == ExitCode.UNREACHABLE
    assert err == f"probe: no answer to the SUBSCRIBE from udp:127.0.0.1:{port} within 0.5 s\n"
    assert "presence of sip:bob@sip.test  subscribing" in out


def test_ctrl_c_while_waiting_for_an_answer_exits_130(
    kamailio_clean: KamailioServer, programs: Callable[[list[str], str], ProbeProgram]
) -> None:
    port = free_port(socket.SOCK_DGRAM)
    argv = ["watch", kamailio_clean.aor("alice"), "sip:bob@sip.test",
            "--registrar", f"sip:127.0.0.1:{port}", "--timeout", "60", "--quiet"]  # fmt: skip
    watcher = programs(argv, "irrelevant")
    watcher.wait_for_line(r"presence of sip:bob@sip\.test  subscribing")

    code, _, err = watcher.end()

    assert code == ExitCode.INTERRUPTED
    assert err == "probe: interrupted while waiting for SUBSCRIBE\n"


# -- publish -------------------------------------------------------------------------------------


async def test_published_presence_is_seen_by_a_watcher_until_ctrl_c_removes_it(
    kamailio_clean: KamailioServer, programs: Callable[[list[str], str], ProbeProgram]
) -> None:
    argv = probe_argv(kamailio_clean, "publish", "--presence", "busy", "--note", "In a meeting",
                      "--hold", "120")  # fmt: skip
    publisher = programs(argv, TEST_ACCOUNTS["alice"])
    await asyncio.to_thread(publisher.wait_for_line, r"publication  published")
    await asyncio.to_thread(publisher.wait_for_line, r"keeping it published for 120 s")

    host, port = kamailio_clean.address("udp")
    settings = UserAgentSettings(
        aor=parse_sip_uri(kamailio_clean.aor("bob")),
        credentials=(Credentials("bob", TEST_ACCOUNTS["bob"]),),
        transport=Transport.UDP,
    )
    runner = UserAgentRunner(UserAgent(settings, [Target(Transport.UDP, host, port)]))
    notifies: list[NotifyReceived] = []
    changed = asyncio.Event()

    def on_event(event: UserAgentEvent) -> None:
        if isinstance(event, NotifyReceived):
            notifies.append(event)
            changed.set()

    runner.add_listener(on_event)

    async def wait_for(predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate():
                changed.clear()
                await changed.wait()

    def presence() -> PresenceState | None:
        if not notifies:
            return None
        body = notifies[-1].body
        return summarize(parse_pidf(body) if body else None)

    try:
        await runner.start()
        key = runner.subscribe(parse_sip_uri(kamailio_clean.aor("alice")), "presence")
        await wait_for(lambda: presence() is PresenceState.BUSY)
        assert b"In a meeting" in notifies[-1].body
        status = runner.user_agent.subscription_status(key)
        assert status is not None
        assert status.state is SubscriptionState.ACTIVE

        seen = len(notifies)
        code, out, err = await asyncio.to_thread(publisher.end)
        assert code == ExitCode.OK, err
        assert re.findall(r"publication  (\w+)", out)[-2:] == ["unpublishing", "unpublished"]
        assert "SIP-If-Match: " in out

        await wait_for(lambda: len(notifies) > seen)
        assert presence() is not PresenceState.BUSY
    finally:
        await runner.stop(unregister=False)


@pytest.mark.parametrize("answer_403", [False, True])
def test_publish_with_a_wrong_password_exits_with_the_auth_code(
    answer_403: bool,
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kamailio_clean.set_auth_403(answer_403)
    argv = probe_argv(kamailio_clean, "publish", "--presence", "away", "--quiet")
    code, out, err = run_probe([*argv, *password_env(monkeypatch, "wrong-horse")], capsys)
    assert code == ExitCode.AUTH_FAILED
    expected = "forbidden (403)" if answer_403 else "auth_failed (401)"
    assert err == f"probe: publication failed: {expected}\n"
    assert "publication  failed" in out
    assert "wrong-horse" not in out + err


def test_publish_without_answer_is_one_clear_line(
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port(socket.SOCK_DGRAM)
    argv = ["publish", kamailio_clean.aor("alice"), "--registrar", f"sip:127.0.0.1:{port}",
            "--timeout", "0.5", "--quiet", *password_env(monkeypatch, "irrelevant")]  # fmt: skip
    code, _, err = run_probe(argv, capsys)
    assert code == ExitCode.UNREACHABLE
    assert err == f"probe: no answer to the PUBLISH from udp:127.0.0.1:{port} within 0.5 s\n"


def test_publish_of_a_refused_tcp_connection_is_one_clear_line(
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port(socket.SOCK_STREAM)
    argv = ["publish", kamailio_clean.aor("alice"), "--registrar", f"sip:127.0.0.1:{port}",
            "--transport", "tcp", *password_env(monkeypatch, "irrelevant")]  # fmt: skip
    code, out, err = run_probe(argv, capsys)
    assert code == ExitCode.UNREACHABLE
    assert err == f"probe: cannot reach sip:127.0.0.1:{port}: Connection refused\n"
    assert out == ""


def test_note_xml_cannot_carry_is_a_usage_error_and_nothing_is_published(
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = probe_argv(kamailio_clean, "publish", "--note", "ring\x07ring")
    code, out, err = run_probe([*argv, *password_env(monkeypatch, TEST_ACCOUNTS["alice"])], capsys)
    assert code == ExitCode.USAGE
    assert err.startswith("probe: the note holds '\\x07'")
    assert "PUBLISH" not in out


# -- the other commands' failures ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "what"),
    [("query", "query"), ("unregister-all", "removal of all bindings")],
)
def test_refused_query_and_removal_print_the_failure_and_exit_3(
    command: str,
    what: str,
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = probe_argv(kamailio_clean, command, "--quiet")
    code, out, err = run_probe([*argv, *password_env(monkeypatch, "wrong-horse")], capsys)
    assert code == ExitCode.AUTH_FAILED
    assert err == (
        f"probe: {what} of sip:alice@sip.test failed: the credentials were refused (401)\n"
    )
    assert re.search(r"failed: auth_failed 401$", out, re.MULTILINE)


@pytest.mark.parametrize(
    ("command", "what"),
    [("register", "registration"), ("unregister-all", "removal of all bindings")],
)
def test_silent_server_for_register_and_removal_is_one_clear_line(
    command: str,
    what: str,
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port(socket.SOCK_DGRAM)
    argv = [command, kamailio_clean.aor("alice"), "--registrar", f"sip:127.0.0.1:{port}",
            "--timeout", "0.5", "--quiet", *password_env(monkeypatch, "irrelevant")]  # fmt: skip
    code, _, err = run_probe(argv, capsys)
    assert code == ExitCode.UNREACHABLE
    assert err == f"probe: no answer to the {what} from udp:127.0.0.1:{port} within 0.5 s\n"


def test_registrar_busy_shows_when_it_will_retry_and_exits_5(
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kamailio_clean.set_register_503(30)
    argv = probe_argv(kamailio_clean, "register", "--quiet")
    code, out, err = run_probe([*argv, *password_env(monkeypatch, TEST_ACCOUNTS["alice"])], capsys)
    assert code == ExitCode.REJECTED
    assert err == (
        "probe: registration of sip:alice@sip.test failed: the server reported an error"
        " (503 Service Unavailable)\n"
    )
    assert re.search(r"state  failed \(server_error\)  \[503 Service Unavailable; retry in 30 s\]",
                     out)  # fmt: skip


def test_unregistration_without_answer_is_one_clear_line(
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # REGISTER (401), REGISTER (200), then the removal is the third request: dropped. Over TCP
    # nothing is sent again, so the probe waits for an answer that never comes.
    kamailio_clean.set_drop_every(3)
    argv = probe_argv(kamailio_clean, "unregister", "--quiet", transport="tcp")
    argv[argv.index("--timeout") + 1] = "1"
    code, out, err = run_probe([*argv, *password_env(monkeypatch, TEST_ACCOUNTS["alice"])], capsys)
    host, port = kamailio_clean.address("tcp")
    assert code == ExitCode.UNREACHABLE
    assert err == f"probe: no answer to the unregistration from tcp:{host}:{port} within 1 s\n"
    assert "state  registered" in out


# -- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["query", "sip:"], "probe: address of record 'sip:' is not a SIP URI\n"),
        (["query", "sip.test"], "probe: sip.test names no user: give --user\n"),
        (
            ["query", "alice@sip.test", "--registrar", "http://x"],
            "probe: registrar 'http://x' is not a SIP URI\n",
        ),
        (["watch", "alice@sip.test", "bob@"], "probe: watched URI 'bob@' is not a SIP URI\n"),
    ],
)
def test_bad_addresses_are_usage_errors(
    argv: list[str],
    message: str,
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if argv[0] == "watch":
        host, port = kamailio_clean.address("udp")
        argv = [*argv, "--registrar", f"sip:{host}:{port}", "--quiet"]
    code, _, err = run_probe([*argv, *password_env(monkeypatch, "pw")], capsys)
    assert code == ExitCode.USAGE
    assert err == message


def test_unreadable_password_file_and_missing_ca_file_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing")
    code, _, err = run_probe(["query", "alice@sip.test", "--password-file", missing], capsys)
    assert code == ExitCode.USAGE
    assert err.startswith("probe: cannot read the password file: [Errno 2]")

    password = tmp_path / "password"
    password.write_text("pw\n", encoding="utf-8")
    argv = ["query", "alice@sip.test", "--password-file", str(password), "--ca-file", missing]
    code, _, err = run_probe(argv, capsys)
    assert code == ExitCode.USAGE
    assert err.startswith(f"probe: cannot use CA file {missing}:")


def test_no_password_source_and_no_terminal_is_a_usage_error() -> None:
    # Without a controlling terminal the prompt reads standard input, which is empty.
    result = subprocess.run(
        [str(PROBE), "query", "alice@sip.test"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=WAIT,
        start_new_session=True,
        check=False,
    )
    assert result.returncode == ExitCode.USAGE
    assert result.stderr.endswith(
        "probe: no password: give --password-env or --password-file when not at a terminal\n"
    )
