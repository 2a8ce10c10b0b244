"""Smoke test: a real ``hass`` process with the integration, against the test Kamailio.

Runs the Home Assistant of ``SIP_PROFILES_HASS_PYTHON`` (scripts/smoke sets it to the newest
release's virtualenv made by scripts/setup-hass; without it, this interpreter's own). It adds a
profile and a buddy through the REST flow API, sees the profile registered and the buddy watched,
reloads the profile, stops Home Assistant and checks that nothing is left registered and that
nothing was logged as an error. Marked ``real_hass``: the ordinary suite leaves it out.
"""

from __future__ import annotations

from collections.abc import Iterator
import os
from pathlib import Path
import socket
import sys

import pytest

from tests.harness.hass import (
    HassClient,
    HassProcess,
    configuration_yaml,
    prepare_config,
)
from tests.harness.kamailio import KamailioServer

pytestmark = [pytest.mark.real_hass, pytest.mark.timeout(600)]

DOMAIN = "sip_profiles"
START_TIMEOUT = 300.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def hass_process(tmp_path: Path, socket_enabled: None) -> Iterator[HassProcess]:
    """A config dir and (not yet started) hass of the interpreter under test; stopped after."""
    python = Path(os.environ.get("SIP_PROFILES_HASS_PYTHON") or sys.executable)
    config = tmp_path / "config"
    port = prepare_config(
        config,
        _free_port(),
        configuration_yaml(
            "sip_profiles smoke test", logs={"custom_components.sip_profiles": "debug"}
        ),
        python=python,
    )
    process = HassProcess(config, port, python=python)
    yield process
    process.stop()


def test_profile_registers_reloads_and_unregisters_in_a_real_home_assistant(
    hass_process: HassProcess, kamailio_clean: KamailioServer
) -> None:
    server = kamailio_clean
    hass_process.start("--skip-pip")
    assert hass_process.wait_for_http(START_TIMEOUT), hass_process.log_lines("ERROR")
    client = HassClient(hass_process.base)
    client.login()
    client.wait_for(client.started, START_TIMEOUT, "Home Assistant started")
    assert DOMAIN in client.flow_handlers()

    host, port = server.address("udp")
    created = client.config_flow(
        DOMAIN,
        "manual",
        {
            "aor": server.aor("alice"),
            "password": server.accounts["alice"],
            "advanced": {"registrar": f"{host}:{port}", "transport": "udp"},
        },
    )
    assert created["type"] == "create_entry", created
    entry_id = created["result"]["entry_id"]
    buddy = client.subentry_flow(
        entry_id, "buddy", {"uri": server.aor("bob"), "name": "Bob", "watch": "presence"}
    )
    assert buddy["type"] == "create_entry", buddy

    def registered() -> bool:
        state = client.state("sensor.sip_alice_sip_test_registration")
        return (
            state is not None and state["state"] == "registered" and bool(server.bindings("alice"))
        )

    def bob_watched() -> bool:
        # available while the subscription is up (its diagnostic sensor is disabled by default)
        presence = client.state("sensor.bob_presence")
        return presence is not None and presence["state"] != "unavailable"

    client.wait_for(registered, 60, "alice registered")
    client.wait_for(bob_watched, 60, "Bob's presence watched")
    assert len(server.bindings("alice")) == 1

    assert client.reload(entry_id) == {"require_restart": False}
    client.wait_for(registered, 60, "alice registered again after the reload")
    client.wait_for(bob_watched, 60, "Bob's presence watched again after the reload")
    # the unload removed the binding of the first run: only the reloaded profile's is there
    assert len(server.bindings("alice")) == 1
    [entry] = client.entries(DOMAIN)
    assert entry["state"] == "loaded"
    # A stop while Home Assistant's own entries still start (backup, marketplace) makes them
    # log that their setup was cancelled: what this test reads is the stop of a started one.
    client.wait_for(client.settled, 60, "every config entry set up")

    hass_process.stop()
    assert server.bindings("alice") == []
    assert hass_process.log_lines("ERROR") == []
