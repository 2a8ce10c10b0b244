"""The command-line probe against the real Kamailio.

Short commands run in-process through ``main(argv)``; a registration that must stay up while
the test looks at the registrar runs the probe as a program with ``--hold`` and ends it with
Ctrl-C (SIGINT), as a user would.
"""

from __future__ import annotations

from collections.abc import Iterator
import os
from pathlib import Path
import queue
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from custom_components.sip_profiles.sip.aio.probe import ExitCode, main
from tests.harness.kamailio import TEST_ACCOUNTS, KamailioServer

WAIT = 15.0
PASSWORD_VARIABLE = "SIP_PROBE_TEST_PASSWORD"
ROOT = Path(__file__).resolve().parents[2]
PROBE = ROOT / "scripts" / "probe"


def probe_argv(
    server: KamailioServer, command: str, *extra: str, user: str = "alice", transport: str = "udp"
) -> list[str]:
    host, port = server.address(transport)
    return [
        command,
        server.aor(user),
        "--registrar",
        f"sip:{host}:{port}",
        "--transport",
        transport,
        "--timeout",
        "5",
        *extra,
    ]


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def run_probe(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class ProbeProgram:
    """The probe as a program, its output read line by line until ``end()`` sends SIGINT."""

    def __init__(self, argv: list[str], password: str) -> None:
        env = {**os.environ, PASSWORD_VARIABLE: password}
        self.process = subprocess.Popen(
            [str(PROBE), *argv, "--password-env", PASSWORD_VARIABLE],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_line(self, pattern: str) -> str:
        """The next line matching ``pattern``; fails after WAIT seconds or at the end."""
        deadline = time.monotonic() + WAIT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.output.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"the probe never printed {pattern!r}:\n{''.join(self.output)}")

    def end(self) -> tuple[int, str, str]:
        """Ctrl-C; the exit status, everything printed and the error output."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=WAIT)
        assert self.process.stderr is not None
        err = self.process.stderr.read()
        self._reader.join(WAIT)
        while (line := self.lines.get_nowait()) is not None:
            self.output.append(line)
        return self.process.returncode, "".join(self.output), err


@pytest.fixture
def hold(kamailio_clean: KamailioServer) -> Iterator[ProbeProgram]:
    """alice registered by a probe holding the binding; ended (and unregistered) at teardown."""
    held = ProbeProgram(
        probe_argv(kamailio_clean, "register", "--hold", "120", user="alice"),
        TEST_ACCOUNTS["alice"],
    )
    try:
        held.wait_for_line(r"state  registered ")
        yield held
    finally:
        if held.process.poll() is None:
            held.end()


def test_register_holds_the_binding_and_ctrl_c_removes_it(
    hold: ProbeProgram, kamailio_clean: KamailioServer
) -> None:
    (binding,) = kamailio_clean.bindings("alice")
    assert binding.expires > 500  # the probe asks for 600 s by default
    assert "holding the registration" in hold.wait_for_line("holding")

    code, out, err = hold.end()

    assert code == ExitCode.OK, err
    assert kamailio_clean.bindings("alice") == []
    assert "state  unregistered  [200 OK]" in out
    assert TEST_ACCOUNTS["alice"] not in out + err


def test_register_then_unregister_prints_states_and_masked_messages(
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_VARIABLE, TEST_ACCOUNTS["alice"])
    code, out, err = run_probe(
        probe_argv(kamailio_clean, "register", "--password-env", PASSWORD_VARIABLE), capsys
    )
    assert code == ExitCode.OK, err
    states = re.findall(r"state  (\w+)", out)
    assert states == ["registering", "registered", "unregistering", "unregistered"]
    assert re.search(r"state  registered  \[200 OK; expires 600 s; refresh in 540 s\]", out)
    assert "401 Unauthorized" in out
    authorization = re.search(r"^Authorization: (.*)$", out, re.MULTILINE)
    assert authorization is not None
    assert 'response="***"' in authorization.group(1)
    assert 'nonce="***"' in authorization.group(1)
    assert TEST_ACCOUNTS["alice"] not in out + err
    assert kamailio_clean.bindings("alice") == []


def test_quiet_prints_states_but_no_messages(
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_VARIABLE, TEST_ACCOUNTS["alice"])
    argv = probe_argv(kamailio_clean, "unregister", "--password-env", PASSWORD_VARIABLE, "--quiet")
    code, out, _ = run_probe(argv, capsys)
    assert code == ExitCode.OK
    assert "state  unregistered" in out
    assert "REGISTER sip:" not in out


@pytest.mark.parametrize("answer_403", [False, True])
def test_wrong_password_exits_with_the_auth_code_and_never_shows_it(
    answer_403: bool,
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kamailio_clean.set_auth_403(answer_403)
    wrong = "wrong-horse-battery"
    monkeypatch.setenv(PASSWORD_VARIABLE, wrong)
    code, out, err = run_probe(
        probe_argv(kamailio_clean, "register", "--password-env", PASSWORD_VARIABLE), capsys
    )
    assert code == ExitCode.AUTH_FAILED
    expected = "403 Forbidden" if answer_403 else "401 Unauthorized"
    assert err == f"probe: registration of sip:alice@sip.test failed: {_reason(answer_403)}" + (
        f" ({expected})\n"
    )
    assert wrong not in out + err
    assert kamailio_clean.bindings("alice") == []


def _reason(answer_403: bool) -> str:
    if answer_403:
        return "forbidden (wrong password, user name or realm?)"
    return "the credentials were refused"


@pytest.mark.parametrize("right", [True, False])
def test_password_file_is_read_and_never_shown(
    right: bool,
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    password = TEST_ACCOUNTS["bob"] if right else "not-bobs-password"
    password_file = tmp_path / "password"
    password_file.write_text(password + "\n", encoding="utf-8")
    argv = probe_argv(kamailio_clean, "register", "--password-file", str(password_file), user="bob")
    code, out, err = run_probe(argv, capsys)
    assert code == (ExitCode.OK if right else ExitCode.AUTH_FAILED)
    assert password not in out + err


def test_query_lists_the_bindings_of_another_client(
    hold: ProbeProgram,
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (held,) = kamailio_clean.bindings("alice")
    monkeypatch.setenv(PASSWORD_VARIABLE, TEST_ACCOUNTS["alice"])
    argv = probe_argv(kamailio_clean, "query", "--password-env", PASSWORD_VARIABLE)
    code, out, err = run_probe(argv, capsys)
    assert code == ExitCode.OK, err
    assert "1 binding(s)" in out
    assert re.search(rf"^    {re.escape(held.contact)}  \(expires in \d+ s\)$", out, re.MULTILINE)
    assert len(kamailio_clean.bindings("alice")) == 1


def test_unregister_all_removes_another_clients_binding_and_counts_it(
    hold: ProbeProgram,
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert len(kamailio_clean.bindings("alice")) == 1
    monkeypatch.setenv(PASSWORD_VARIABLE, TEST_ACCOUNTS["alice"])
    argv = probe_argv(kamailio_clean, "unregister-all", "--password-env", PASSWORD_VARIABLE)
    code, out, err = run_probe(argv, capsys)
    assert code == ExitCode.OK, err
    assert "removed 1 binding(s)" in out
    assert "Contact: *" in out
    assert kamailio_clean.bindings("alice") == []


def test_refused_tcp_connection_is_one_clear_line(
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_VARIABLE, "irrelevant")
    port = free_port(socket.SOCK_STREAM)
    argv = ["register", kamailio_clean.aor("alice"), "--registrar", f"sip:127.0.0.1:{port}",
            "--transport", "tcp", "--password-env", PASSWORD_VARIABLE]  # fmt: skip
    code, out, err = run_probe(argv, capsys)
    assert code == ExitCode.UNREACHABLE
    assert err == f"probe: cannot reach sip:127.0.0.1:{port}: Connection refused\n"
    assert out == ""


def test_silent_udp_port_times_out_with_one_clear_line(
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_VARIABLE, "irrelevant")
    port = free_port(socket.SOCK_DGRAM)
    argv = ["query", kamailio_clean.aor("alice"), "--registrar", f"sip:127.0.0.1:{port}",
            "--password-env", PASSWORD_VARIABLE, "--timeout", "0.5"]  # fmt: skip
    code, _, err = run_probe(argv, capsys)
    assert code == ExitCode.UNREACHABLE
    assert err == f"probe: no answer to the query from udp:127.0.0.1:{port} within 0.5 s\n"


def test_dns_failure_is_one_clear_line(
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_VARIABLE, "irrelevant")
    nameserver = f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
    argv = ["query", kamailio_clean.aor("alice"), "--dns", nameserver,
            "--password-env", PASSWORD_VARIABLE, "--timeout", "3"]  # fmt: skip
    code, _, err = run_probe(argv, capsys)
    assert code == ExitCode.UNREACHABLE
    assert err.startswith("probe: DNS NAPTR lookup of sip.test failed")
    assert err.count("\n") == 1


def test_untrusted_tls_certificate_is_one_clear_line_and_ca_file_fixes_it(
    kamailio_clean: KamailioServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_VARIABLE, TEST_ACCOUNTS["alice"])
    argv = probe_argv(kamailio_clean, "query", "--password-env", PASSWORD_VARIABLE,
                      transport="tls")  # fmt: skip
    code, _, err = run_probe(argv, capsys)
    assert code == ExitCode.UNREACHABLE
    assert "is not trusted" in err
    assert "--ca-file" in err
    assert err.count("\n") == 1

    code, out, err = run_probe([*argv, "--ca-file", str(kamailio_clean.ca_file)], capsys)
    assert code == ExitCode.OK, err
    assert "0 binding(s)" in out


def test_password_is_not_accepted_as_an_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["register", "sip:alice@sip.test", "--password", "secret"])
    assert exit_info.value.code == ExitCode.USAGE
    assert "unrecognized arguments" in capsys.readouterr().err


def test_unset_password_variable_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_VARIABLE, raising=False)
    code = main(["query", "sip:alice@sip.test", "--password-env", PASSWORD_VARIABLE])
    assert code == ExitCode.USAGE
    assert (
        capsys.readouterr().err == f"probe: environment variable {PASSWORD_VARIABLE} is not set\n"
    )
