"""Pytest fixtures for the real Kamailio (imported by tests/conftest.py).

- ``kamailio``: one server per test session and xdist worker; skips when Kamailio is missing.
- ``kamailio_clean``: the same server for one test, with faults off, test accounts restored,
  no bindings left from earlier tests, and sockets to loopback allowed (it requests
  ``socket_enabled``); a test that talks to ``kamailio`` directly must request
  ``socket_enabled`` itself.
A failing test that used either gets the tail of the server's log in its report.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
import contextlib
import socket

import pytest

from tests.harness.kamailio import (
    TEST_ACCOUNTS,
    KamailioServer,
    KamailioUnavailable,
)


@contextlib.contextmanager
def _real_sockets() -> Iterator[None]:
    """Let the harness itself use sockets while pytest-socket blocks them for tests."""
    try:
        import pytest_socket  # noqa: PLC0415 - only present with the test stack
    except ImportError:
        yield
        return
    saved = socket.socket
    socket.socket = pytest_socket._true_socket  # type: ignore[misc]
    try:
        yield
    finally:
        socket.socket = saved  # type: ignore[misc]


@pytest.fixture(scope="session")
def kamailio() -> Generator[KamailioServer]:
    """A running Kamailio for this session (per xdist worker)."""
    try:
        server = KamailioServer()
    except KamailioUnavailable as err:
        pytest.skip(f"real SIP server unavailable: {err}")
    with _real_sockets():
        server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def kamailio_clean(kamailio: KamailioServer, socket_enabled: None) -> KamailioServer:
    """The session's Kamailio with faults off and the test accounts as they started."""
    if not kamailio.running:
        kamailio.start()
    kamailio.reset_faults()
    for user in set(kamailio.accounts) - set(TEST_ACCOUNTS):
        kamailio.remove_account(user)
    for user, password in TEST_ACCOUNTS.items():
        if kamailio.accounts.get(user) != password:
            kamailio.set_password(user, password)
        kamailio.remove_bindings(user)
    # Presence servers merge every live publication of an account; start from none.
    kamailio.clear_publications()
    return kamailio


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the tail of the Kamailio log to the report of a failed test that used it."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for name in ("kamailio_clean", "kamailio"):
            server = funcargs.get(name)
            if isinstance(server, KamailioServer):
                report.sections.append(
                    (f"Kamailio log (last lines of {server.log_file})", server.log_tail(80))
                )
                break
    return report
