"""Diagnostics: settings without secrets, the registration and the last SIP messages, masked."""

from __future__ import annotations

from collections.abc import Callable
import json
import re

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.sip_profiles.coordinator import MESSAGE_LOG_SIZE
from tests.harness.kamailio import TEST_ACCOUNTS, KamailioServer

from .helpers import no_stale_bindings, setup_entry, wait_for  # noqa: F401 - fixture


async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    entry = make_entry(auth_user="alice")
    coordinator = await setup_entry(hass, entry)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert diagnostics["entry"]["data"]["password"] == "**REDACTED**"
    assert diagnostics["entry"]["data"]["auth_user"] == "**REDACTED**"
    assert diagnostics["entry"]["data"]["aor"] == "sip:alice@sip.test"
    assert diagnostics["state"] == "registered"
    registration = diagnostics["registration"]
    assert registration["state"] == "registered"
    assert registration["status_code"] == 200
    assert registration["expires"] == 3600
    assert registration["bindings"] == [
        {"contact": coordinator.data.status.contact, "expires": 3600, "q": None, "ours": True}
    ]
    host, port = kamailio_clean.address("udp")
    assert diagnostics["target"] == f"udp:{host}:{port}"
    assert diagnostics["local_address"][0] == "127.0.0.1"

    messages = diagnostics["messages"]
    # The registration comes first; the voicemail subscription follows it.
    assert [(m["direction"], m["text"].split("\r\n", 1)[0]) for m in messages[:4]] == [
        ("out", f"REGISTER sip:{host}:{port} SIP/2.0"),
        ("in", "SIP/2.0 401 Unauthorized"),
        ("out", f"REGISTER sip:{host}:{port} SIP/2.0"),
        ("in", "SIP/2.0 200 OK"),
    ]
    authorization = next(
        line for line in messages[2]["text"].split("\r\n") if line.startswith("Authorization:")
    )
    assert 'response="***"' in authorization
    assert 'nonce="***"' in authorization

    dumped = json.dumps(diagnostics)
    assert TEST_ACCOUNTS["alice"] not in dumped
    answers = [value for m in messages for value in re.findall(r'response="([^"]*)"', m["text"])]
    # The fields are there (the REGISTER's, the voicemail SUBSCRIBE's), their values are not.
    assert answers
    assert set(answers) == {"***"}


async def test_diagnostics_keep_the_last_messages(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    entry = make_entry()
    coordinator = await setup_entry(hass, entry)
    for _ in range(MESSAGE_LOG_SIZE // 2 + 2):
        answered = len([m for m in coordinator.messages if m.direction == "in"])
        coordinator.async_refresh_registration()
        await wait_for(
            hass,
            lambda answered=answered: (
                len([m for m in coordinator.messages if m.direction == "in"]) > answered
                or len(coordinator.messages) == MESSAGE_LOG_SIZE
            ),
        )
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert len(diagnostics["messages"]) == MESSAGE_LOG_SIZE
    assert TEST_ACCOUNTS["alice"] not in json.dumps(diagnostics)


async def test_diagnostics_of_a_stopped_profile(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    make_entry: Callable[..., MockConfigEntry],
    kamailio_clean: KamailioServer,
) -> None:
    entry = make_entry(enabled=False)
    coordinator = await setup_entry(hass, entry)
    await coordinator.async_shutdown()
    coordinator.async_set_updated_data(coordinator._snapshot())
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diagnostics["state"] == "disabled"
    assert diagnostics["target"] is None
    assert diagnostics["local_address"] is None
    assert diagnostics["registration"]["registrar"] is None
