"""The config flow against the real Kamailio: every way in, every form error, every way out."""

from __future__ import annotations

from collections.abc import Callable
import socket
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import (
    SOURCE_USER,
    ConfigEntryDisabler,
    ConfigEntryState,
    ConfigFlowResult,
)
from homeassistant.const import CONF_PASSWORD
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData, section
from homeassistant.helpers import config_validation as cv
import probatio as vol
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sip_profiles import profile
from custom_components.sip_profiles.config_flow import (
    CONF_DOCUMENT,
    SECTION_ADVANCED,
    profile_unique_id,
)
from custom_components.sip_profiles.const import (
    CONF_AOR,
    CONF_AUTH_USER,
    CONF_EXPIRES,
    CONF_KEEPALIVE,
    CONF_MASTER,
    CONF_OUTBOUND_PROXY,
    CONF_PUBLISH_PRESENCE,
    CONF_REALM,
    CONF_REGISTRAR,
    CONF_TRANSPORT,
    CONF_VERIFY_TLS,
    DEFAULT_KEEPALIVE,
    DOMAIN,
)
from tests.harness.kamailio import TEST_ACCOUNTS, KamailioServer

from .helpers import wait_for

ProfileData = Callable[..., dict[str, Any]]
MakeEntry = Callable[..., MockConfigEntry]


# --------------------------------------------------------------------------- helpers


def closed_port(kind: socket.SocketKind) -> int:
    """A loopback port nobody listens on (bound once, then released)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server(kamailio: KamailioServer, transport: str = "udp") -> str:
    host, port = kamailio.address(transport)
    return f"{host}:{port}"


def user_input(
    aor: str,
    password: str,
    *,
    registrar: str | None = None,
    transport: str = "udp",
    verify_tls: bool = True,
    **advanced: Any,
) -> dict[str, Any]:
    """What the user form sends: address and password, the rest in the advanced section."""
    fields: dict[str, Any] = {CONF_TRANSPORT: transport, CONF_VERIFY_TLS: verify_tls, **advanced}
    if registrar is not None:
        fields[CONF_REGISTRAR] = registrar
    return {CONF_AOR: aor, CONF_PASSWORD: password, SECTION_ADVANCED: fields}


def alice_input(kamailio: KamailioServer, **changes: Any) -> dict[str, Any]:
    """Alice's working profile over UDP, with changes."""
    values: dict[str, Any] = {
        "aor": kamailio.aor("alice"),
        "password": TEST_ACCOUNTS["alice"],
        "registrar": server(kamailio),
    }
    values.update(changes)
    return user_input(values.pop("aor"), values.pop("password"), **values)


def suggested(schema: vol.Schema | None) -> dict[str, Any]:
    """The suggested values of a form's schema, sections nested."""
    assert schema is not None
    values: dict[str, Any] = {}
    for key, value in schema.schema.items():
        if isinstance(value, section):
            values[str(key)] = suggested(value.schema)
        elif isinstance(key, vol.Marker) and key.description:
            values[str(key)] = key.description.get("suggested_value")
    return values


def advanced_fields(result: ConfigFlowResult) -> set[str]:
    schema = result["data_schema"]
    assert schema is not None
    advanced = schema.schema[SECTION_ADVANCED]
    assert isinstance(advanced, section)
    return {str(key) for key in advanced.schema.schema}


async def start_manual(hass: HomeAssistant) -> ConfigFlowResult:
    """Open the flow and pick the user form from the menu."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["manual", "provisioning"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "manual"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "manual"
    assert result["errors"] == {}
    return result


async def start_provisioning(hass: HomeAssistant) -> ConfigFlowResult:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "provisioning"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "provisioning"
    return result


def provisioning_xml(
    user: str | None = (
        '<user uri="sip:alice@sip.test" account="alice" password="alice-secret" realm="sip.test"/>'
    ),
    servers: str = "",
    root: str = "provision",
) -> str:
    return (
        f'<?xml version="1.0"?>\n<{root} key="{{7E4A}}" name="Test provider">\n'
        f"{user or ''}\n{servers}\n</{root}>\n"
    )


def sipsrv(addr: str, protocol: str = "UDP", role: str = "registrar") -> str:
    return (
        f'<sipsrv addr="{addr}" protocol="{protocol}" auth="digest" role="{role}">'
        '<session party="first" type="pc2pc"/></sipsrv>'
    )


async def settle(hass: HomeAssistant) -> None:
    """Let scheduled reloads finish before looking at the entry or the registrar."""
    await hass.async_block_till_done()


# --------------------------------------------------------------------------- the user form


async def test_user_form_creates_entry(hass: HomeAssistant, kamailio_clean: KamailioServer) -> None:
    """A working profile becomes an entry with flat data, its expiry in the options."""
    result = await start_manual(hass)
    assert CONF_MASTER not in advanced_fields(result)  # no other profile to depend on

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        alice_input(
            kamailio_clean, aor="alice@sip.test", auth_user="alice", realm="sip.test", expires=600
        ),
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "sip:alice@sip.test"
    assert result["data"] == {
        CONF_AOR: "sip:alice@sip.test",
        CONF_PASSWORD: "alice-secret",
        CONF_AUTH_USER: "alice",
        CONF_REALM: "sip.test",
        CONF_REGISTRAR: server(kamailio_clean),
        CONF_OUTBOUND_PROXY: "",
        CONF_TRANSPORT: "udp",
        CONF_VERIFY_TLS: True,
    }
    assert result["options"] == {CONF_EXPIRES: 600, CONF_KEEPALIVE: DEFAULT_KEEPALIVE}
    entry = result["result"]
    assert entry.unique_id == f"sip:alice@sip.test|{server(kamailio_clean)}"
    assert hass.config_entries.async_entries(DOMAIN) == [entry]
    await settle(hass)


async def test_check_removes_its_binding(
    hass: HomeAssistant, kamailio_clean: KamailioServer, make_entry: MakeEntry
) -> None:
    """The live check registers and unregisters again: no binding is left behind.

    The new profile depends on a master profile that is disabled (so never set up), so
    setting up the created entry does not register it either: whatever binding exists came
    from the check.
    """
    kamailio_clean.remove_bindings("alice")  # whatever an earlier test left behind
    bob = make_entry("bob")
    master = MockConfigEntry(
        domain=DOMAIN,
        title=bob.title,
        unique_id=bob.unique_id,
        data=dict(bob.data),
        disabled_by=ConfigEntryDisabler.USER,
    )
    master.add_to_hass(hass)
    result = await start_manual(hass)
    assert CONF_MASTER in advanced_fields(result)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], alice_input(kamailio_clean, master=master.entry_id)
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_MASTER] == master.entry_id
    await settle(hass)
    assert result["result"].state is ConfigEntryState.LOADED
    assert master.state is ConfigEntryState.NOT_LOADED
    assert kamailio_clean.bindings("alice") == []


async def test_registrar_located_from_the_address(
    hass: HomeAssistant, kamailio_clean: KamailioServer
) -> None:
    """Without a registrar the address's own host and port are used (RFC 3263, auto transport)."""
    host, port = kamailio_clean.address("udp")
    result = await start_manual(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        user_input(f"sip:alice@{host}:{port}", TEST_ACCOUNTS["alice"], transport="auto"),
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_REGISTRAR] == ""
    assert result["data"][CONF_TRANSPORT] == "auto"
    assert result["result"].unique_id == f"sip:alice@{host}:{port}|"
    await settle(hass)


async def test_tls_without_verification(
    hass: HomeAssistant, kamailio_clean: KamailioServer
) -> None:
    """TLS to a server with a private CA works once verification is turned off."""
    result = await start_manual(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        alice_input(
            kamailio_clean,
            registrar=server(kamailio_clean, "tls"),
            transport="tls",
            verify_tls=False,
        ),
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_TRANSPORT] == "tls"
    assert result["data"][CONF_VERIFY_TLS] is False
    await settle(hass)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        pytest.param({"password": "wrong"}, "invalid_auth", id="wrong-password"),
        pytest.param({"aor": "sip:nobody@sip.test"}, "unknown_account", id="unknown-user"),
        pytest.param(
            {"auth_user": "bob", "password": TEST_ACCOUNTS["bob"]},
            "forbidden",
            id="credentials-of-another-account",
        ),
        pytest.param({"transport": "tls", "tls": True}, "tls_untrusted", id="untrusted-tls"),
        pytest.param(
            {"transport": "tcp", "closed": socket.SOCK_STREAM}, "cannot_connect", id="closed-tcp"
        ),
        pytest.param({"registrar": "127.0.0.1:99999"}, "invalid_address", id="bad-registrar"),
        pytest.param({"outbound_proxy": "proxy host"}, "invalid_address", id="bad-proxy"),
    ],
)
async def test_user_form_errors(
    hass: HomeAssistant,
    kamailio_clean: KamailioServer,
    changes: dict[str, Any],
    error: str,
) -> None:
    """Each way the check fails is a translated form error; the user's input stays in the form."""
    if changes.pop("tls", False):
        changes["registrar"] = server(kamailio_clean, "tls")
    if kind := changes.pop("closed", None):
        changes["registrar"] = f"127.0.0.1:{closed_port(kind)}"
    result = await start_manual(hass)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], alice_input(kamailio_clean, **changes)
    )

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "manual"
    assert result["errors"] == {"base": error}
    assert suggested(result["data_schema"])[CONF_AOR] == changes.get(
        "aor", kamailio_clean.aor("alice")
    )
    assert hass.config_entries.async_entries(DOMAIN) == []


async def test_forbidden_by_server(hass: HomeAssistant, kamailio_clean: KamailioServer) -> None:
    """A server answering a wrong password with 403 shows forbidden."""
    kamailio_clean.set_auth_403(True)
    result = await start_manual(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], alice_input(kamailio_clean, password="wrong")
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "forbidden"}
    # The error names what to check and quotes the server's own answer.
    assert result["description_placeholders"]["server_answer"] == "403 Forbidden"


async def test_invalid_address(hass: HomeAssistant, kamailio_clean: KamailioServer) -> None:
    """An address of record without a user part is refused before anything is sent."""
    result = await start_manual(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], alice_input(kamailio_clean, aor="sip:sip.test")
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_AOR: "invalid_address"}


async def test_timeout(
    hass: HomeAssistant, kamailio_clean: KamailioServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody answering over UDP is a timeout.

    The check's wait (10 s) and its unregistration wait (3 s) are shortened so the test does
    not sit through them.
    """
    monkeypatch.setattr(profile, "SETUP_TIMEOUT", 1.0)
    monkeypatch.setattr(profile, "SHUTDOWN_TIMEOUT", 0.5)
    result = await start_manual(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        alice_input(kamailio_clean, registrar=f"127.0.0.1:{closed_port(socket.SOCK_DGRAM)}"),
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "timeout"}


async def test_error_then_success(hass: HomeAssistant, kamailio_clean: KamailioServer) -> None:
    """After an error the same form can be sent again, corrected."""
    result = await start_manual(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], alice_input(kamailio_clean, password="wrong")
    )
    assert result["errors"] == {"base": "invalid_auth"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], alice_input(kamailio_clean)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_PASSWORD] == "alice-secret"
    await settle(hass)


async def test_duplicate_aborts(
    hass: HomeAssistant, kamailio_clean: KamailioServer, make_entry: MakeEntry
) -> None:
    """The same address and registrar, however written, is already configured."""
    make_entry("alice").add_to_hass(hass)
    result = await start_manual(hass)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        alice_input(
            kamailio_clean,
            aor="alice@SIP.TEST",
            registrar=f"sip:{server(kamailio_clean)};transport=tcp",
            transport="tcp",
        ),
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_expires_range(hass: HomeAssistant, kamailio_clean: KamailioServer) -> None:
    """The form takes 60 to 86400 seconds (a translated error else); the smallest works."""
    result = await start_manual(hass)
    assert result["description_placeholders"] == {
        "min_expires": "60",
        "max_expires": "86400",
        "server_answer": "",
    }
    for expires in (30, 86401):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], alice_input(kamailio_clean, expires=expires)
        )
        assert result["errors"] == {"base": "expires_out_of_range"}
        assert suggested(result["data_schema"])[SECTION_ADVANCED][CONF_EXPIRES] == expires
    assert hass.config_entries.async_entries(DOMAIN) == []

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], alice_input(kamailio_clean, expires=60)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["options"][CONF_EXPIRES] == 60
    await settle(hass)


async def test_check_adopts_longer_server_minimum(
    hass: HomeAssistant, kamailio_clean: KamailioServer, profile_data: ProfileData
) -> None:
    """The check the flow runs follows a server that wants a longer expiry (423 Min-Expires).

    The forms never ask for less than 60 s, Kamailio's minimum; a stored 30 (an entry made
    elsewhere) still proves live, with the server's 60.
    """
    status = await profile.async_check_profile(hass, profile_data(), {CONF_EXPIRES: 30})
    assert status.expires == 60
    assert kamailio_clean.bindings("alice") == []


# --------------------------------------------------------------------------- provisioning


async def test_provisioning_complete_document(
    hass: HomeAssistant, kamailio_clean: KamailioServer
) -> None:
    """A complete document is proven live and created without another form.

    Registrar from role=registrar, outbound proxy from role=proxy (the REGISTER for sip.test
    goes through it), transport from the first hop's protocol, auth user from account.
    """
    result = await start_provisioning(hass)
    document = provisioning_xml(
        servers=sipsrv("sip.test") + sipsrv(server(kamailio_clean, "tcp"), "TCP", "proxy")
    ).replace('<provision key="{7E4A}"', '<provision key="{7E4A}" expires="1200"')

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_DOCUMENT: document}
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "sip:alice@sip.test"
    assert result["data"] == {
        CONF_AOR: "sip:alice@sip.test",
        CONF_PASSWORD: "alice-secret",
        CONF_AUTH_USER: "alice",
        CONF_REALM: "sip.test",
        CONF_REGISTRAR: "sip.test",
        CONF_OUTBOUND_PROXY: server(kamailio_clean, "tcp"),
        CONF_TRANSPORT: "tcp",
        CONF_VERIFY_TLS: True,
    }
    assert result["options"][CONF_EXPIRES] == 1200
    assert result["result"].unique_id == profile_unique_id("sip:alice@sip.test", "sip.test")
    await settle(hass)


async def test_provisioning_expires_that_is_no_number_falls_back_to_the_default(
    hass: HomeAssistant, kamailio_clean: KamailioServer
) -> None:
    """A document's ``expires`` that is not a number is ignored, not an error."""
    result = await start_provisioning(hass)
    document = provisioning_xml(servers=sipsrv(server(kamailio_clean))).replace(
        '<provision key="{7E4A}"', '<provision key="{7E4A}" expires="soon"'
    )

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_DOCUMENT: document}
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["options"][CONF_EXPIRES] == 3600
    await settle(hass)


async def test_an_unexpected_error_while_checking_is_shown_as_unknown(
    hass: HomeAssistant, kamailio_clean: KamailioServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A failure nobody foresaw becomes the form error ``unknown`` and is logged, not raised.

    Nothing in the SIP stack is known to raise one, so the check itself is made to.
    """
    result = await start_manual(hass)
    with patch(
        "custom_components.sip_profiles.config_flow.async_check_profile",
        side_effect=RuntimeError("boom"),
    ):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], alice_input(kamailio_clean)
        )

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "unknown"}
    assert "Unexpected error while checking profile" in caplog.text


async def test_provisioning_without_password_opens_the_form(
    hass: HomeAssistant, kamailio_clean: KamailioServer
) -> None:
    """A document without a password fills the user form for review; sending it creates."""
    result = await start_provisioning(hass)
    document = provisioning_xml(
        user='<user uri="sip:alice@sip.test" account="alice"/>',
        servers=sipsrv(server(kamailio_clean)),
    )

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_DOCUMENT: document}
    )

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "manual"
    assert result["errors"] == {}
    values = suggested(result["data_schema"])
    assert values[CONF_AOR] == "sip:alice@sip.test"
    assert CONF_PASSWORD not in values  # nothing to suggest
    assert values[SECTION_ADVANCED][CONF_REGISTRAR] == server(kamailio_clean)
    assert values[SECTION_ADVANCED][CONF_AUTH_USER] == "alice"
    assert values[SECTION_ADVANCED][CONF_TRANSPORT] == "udp"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], alice_input(kamailio_clean, auth_user="alice")
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_REGISTRAR] == server(kamailio_clean)
    await settle(hass)


async def test_provisioning_that_fails_its_check(
    hass: HomeAssistant, kamailio_clean: KamailioServer
) -> None:
    """A document whose password is refused opens the filled-in user form with the error."""
    result = await start_provisioning(hass)
    document = provisioning_xml(
        user='<user uri="sip:alice@sip.test" account="alice" password="old"/>',
        servers=sipsrv(server(kamailio_clean)),
    )

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_DOCUMENT: document}
    )

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "manual"
    assert result["errors"] == {"base": "invalid_auth"}
    values = suggested(result["data_schema"])
    assert values[CONF_AOR] == "sip:alice@sip.test"
    assert values[SECTION_ADVANCED][CONF_REGISTRAR] == server(kamailio_clean)
    assert hass.config_entries.async_entries(DOMAIN) == []


@pytest.mark.parametrize(
    ("document", "error"),
    [
        pytest.param(
            "<provision key='1' name='x'><user uri='sip:a@b'>", "invalid_xml", id="bad-xml"
        ),
        pytest.param("not xml at all", "invalid_xml", id="not-xml"),
        pytest.param(
            provisioning_xml(servers=sipsrv("sip.test"), root="profile"),
            "not_provisioning",
            id="wrong-root",
        ),
        pytest.param(
            provisioning_xml(user=None, servers=sipsrv("sip.test")), "missing_user", id="no-user"
        ),
        pytest.param(
            provisioning_xml(user='<user account="alice"/>', servers=sipsrv("sip.test")),
            "missing_user",
            id="user-without-uri",
        ),
        pytest.param(provisioning_xml(), "missing_registrar", id="no-server"),
        pytest.param(
            provisioning_xml(servers=sipsrv("sip.test", protocol="SCTP")),
            "invalid_provisioning",
            id="unknown-protocol",
        ),
    ],
)
async def test_provisioning_errors(
    hass: HomeAssistant, kamailio_clean: KamailioServer, document: str, error: str
) -> None:
    """Unreadable or incomplete documents are form errors on the document step."""
    result = await start_provisioning(hass)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_DOCUMENT: document}
    )

    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "provisioning"
    assert result["errors"] == {"base": error}


async def test_provisioning_duplicate_aborts(
    hass: HomeAssistant, kamailio_clean: KamailioServer, make_entry: MakeEntry
) -> None:
    make_entry("alice").add_to_hass(hass)
    result = await start_provisioning(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_DOCUMENT: provisioning_xml(servers=sipsrv(server(kamailio_clean)))}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


# --------------------------------------------------------------------------- reauthentication


async def test_reauth(
    hass: HomeAssistant, kamailio_clean: KamailioServer, make_entry: MakeEntry
) -> None:
    """A changed password: a wrong one changes nothing, the right one updates and reloads."""
    entry = make_entry("alice")
    entry.add_to_hass(hass)
    kamailio_clean.set_password("alice", "new")

    result = await entry.start_reauth_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reauth_confirm"
    assert result["description_placeholders"]["aor"] == "sip:alice@sip.test"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PASSWORD: "still-wrong"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    assert entry.data[CONF_PASSWORD] == "alice-secret"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PASSWORD: "new", CONF_AUTH_USER: "alice"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_PASSWORD] == "new"
    assert entry.data[CONF_AUTH_USER] == "alice"
    await settle(hass)
    assert entry.state is ConfigEntryState.LOADED  # reloaded with the new password


async def test_reauth_forbidden(
    hass: HomeAssistant, kamailio_clean: KamailioServer, make_entry: MakeEntry
) -> None:
    """Another account's credentials for this address are refused, and nothing changes."""
    entry = make_entry("alice")
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PASSWORD: TEST_ACCOUNTS["bob"], CONF_AUTH_USER: "bob"}
    )

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "forbidden"}
    assert entry.data == make_entry("alice").data


# --------------------------------------------------------------------------- reconfiguration


async def test_reconfigure(
    hass: HomeAssistant, kamailio_clean: KamailioServer, make_entry: MakeEntry
) -> None:
    """Moving to TLS: refused while the private CA is verified, saved once it is not."""
    entry = make_entry("alice")
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    assert suggested(result["data_schema"])[CONF_REGISTRAR] == server(kamailio_clean)

    tls = {
        CONF_AOR: "sip:alice@sip.test",
        CONF_REGISTRAR: server(kamailio_clean, "tls"),
        CONF_TRANSPORT: "tls",
        CONF_VERIFY_TLS: True,
        CONF_AUTH_USER: "alice",
        CONF_REALM: "sip.test",
    }
    result = await hass.config_entries.flow.async_configure(result["flow_id"], tls)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "tls_untrusted"}
    assert entry.data[CONF_TRANSPORT] == "udp"

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**tls, CONF_VERIFY_TLS: False}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data == {
        CONF_AOR: "sip:alice@sip.test",
        CONF_PASSWORD: "alice-secret",
        CONF_AUTH_USER: "alice",
        CONF_REALM: "sip.test",
        CONF_REGISTRAR: server(kamailio_clean, "tls"),
        CONF_OUTBOUND_PROXY: "",
        CONF_TRANSPORT: "tls",
        CONF_VERIFY_TLS: False,
    }
    assert entry.unique_id == f"sip:alice@sip.test|{server(kamailio_clean, 'tls')}"
    await settle(hass)


async def test_reconfigure_other_address_aborts(
    hass: HomeAssistant, kamailio_clean: KamailioServer, make_entry: MakeEntry
) -> None:
    entry = make_entry("alice")
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_AOR: "sip:bob@sip.test",
            CONF_REGISTRAR: server(kamailio_clean),
            CONF_TRANSPORT: "udp",
            CONF_VERIFY_TLS: True,
        },
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "unique_id_mismatch"
    assert entry.data[CONF_AOR] == "sip:alice@sip.test"


async def test_reconfigure_onto_another_profile_aborts(
    hass: HomeAssistant, kamailio_clean: KamailioServer, make_entry: MakeEntry
) -> None:
    """Alice over UDP moved to the registrar of her TLS profile would duplicate it."""
    entry = make_entry("alice")
    entry.add_to_hass(hass)
    make_entry("alice", "tls").add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_AOR: "sip:alice@sip.test",
            CONF_REGISTRAR: server(kamailio_clean, "tls"),
            CONF_TRANSPORT: "tls",
            CONF_VERIFY_TLS: False,
        },
    )

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reconfigure_errors(
    hass: HomeAssistant, kamailio_clean: KamailioServer, make_entry: MakeEntry
) -> None:
    entry = make_entry("alice")
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    base = {CONF_AOR: "sip:alice@sip.test", CONF_TRANSPORT: "tcp", CONF_VERIFY_TLS: True}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**base, CONF_AOR: "sip:"}
    )
    assert result["errors"] == {CONF_AOR: "invalid_address"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**base, CONF_REGISTRAR: "127.0.0.1:0x50"}
    )
    assert result["errors"] == {"base": "invalid_address"}

    closed = closed_port(socket.SOCK_STREAM)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**base, CONF_REGISTRAR: f"127.0.0.1:{closed}"}
    )
    assert result["errors"] == {"base": "cannot_connect"}
    assert suggested(result["data_schema"])[CONF_REGISTRAR] == f"127.0.0.1:{closed}"
    assert entry.data == make_entry("alice").data

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**base, CONF_REGISTRAR: server(kamailio_clean, "tcp")}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_TRANSPORT] == "tcp"
    assert entry.unique_id == f"sip:alice@sip.test|{server(kamailio_clean, 'tcp')}"
    await settle(hass)


# --------------------------------------------------------------------------- options


async def test_options(
    hass: HomeAssistant, kamailio_clean: KamailioServer, make_entry: MakeEntry
) -> None:
    """Expiry and keep-alive are stored as options; out-of-range values are refused."""
    entry = make_entry("alice")
    entry.add_to_hass(hass)

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    assert suggested(result["data_schema"]) == {
        CONF_EXPIRES: 3600,
        CONF_KEEPALIVE: DEFAULT_KEEPALIVE,
    }
    assert result["description_placeholders"] == {"min_expires": "60", "max_expires": "86400"}
    for expires in (59, 86401, 30.0):
        with pytest.raises(InvalidData) as err:
            await hass.config_entries.options.async_configure(
                result["flow_id"], {CONF_EXPIRES: expires, CONF_KEEPALIVE: 0}
            )
        # The frontend shows a field's error through the translation of this key.
        assert err.value.schema_errors == {CONF_EXPIRES: "expires_out_of_range"}
    with pytest.raises(InvalidData):
        await hass.config_entries.options.async_configure(
            result["flow_id"], {CONF_EXPIRES: 600, CONF_KEEPALIVE: -1}
        )

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_EXPIRES: 600, CONF_KEEPALIVE: 0}
    )

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {CONF_EXPIRES: 600, CONF_KEEPALIVE: 0}


async def test_options_publish_presence_is_stored_only_when_on(
    hass: HomeAssistant, kamailio_clean: KamailioServer, make_entry: MakeEntry
) -> None:
    """Publishing is an opt-in option: stored when on, shown as on next time."""
    entry = make_entry("alice")
    entry.add_to_hass(hass)

    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_EXPIRES: 600, CONF_KEEPALIVE: 30, CONF_PUBLISH_PRESENCE: True}
    )
    assert entry.options == {CONF_EXPIRES: 600, CONF_KEEPALIVE: 30, CONF_PUBLISH_PRESENCE: True}

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert suggested(result["data_schema"])[CONF_PUBLISH_PRESENCE] is True


async def test_options_reload_the_profile(
    hass: HomeAssistant, kamailio_clean: KamailioServer, make_entry: MakeEntry
) -> None:
    """Saving changed options restarts the running profile with them."""
    kamailio_clean.remove_bindings("alice")  # whatever an earlier test left behind
    entry = make_entry("alice")
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await settle(hass)
    before = entry.runtime_data

    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_EXPIRES: 120, CONF_KEEPALIVE: 15}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await settle(hass)

    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data is not before
    assert entry.runtime_data.settings_at_setup[1] == {CONF_EXPIRES: 120, CONF_KEEPALIVE: 15}
    [binding] = kamailio_clean.bindings("alice")
    assert 100 < binding.expires <= 120


async def test_reauth_of_running_profile(
    hass: HomeAssistant,
    kamailio_clean: KamailioServer,
    make_entry: MakeEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Reauthenticating a running profile restarts it with the new password."""
    entry = make_entry("alice")
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await settle(hass)
    before = entry.runtime_data
    kamailio_clean.set_password("alice", "new")

    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PASSWORD: "new"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await settle(hass)

    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data is not before
    assert entry.runtime_data.data.state == "registered"
    # The update listener reloads the running profile; the flow does not reload it behind it.
    assert "should use it for scheduling a reload" not in caplog.text


EVENT = "event.sip_alice_sip_test_registration_event"


async def _locked_out(
    hass: HomeAssistant, kamailio: KamailioServer, entry: MockConfigEntry
) -> None:
    """Alice's running profile sees its password refused: failed, ``auth_failed``, reauth."""
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await settle(hass)
    kamailio.set_password("alice", "locked")
    entry.runtime_data.async_refresh_registration()
    await wait_for(hass, lambda: entry.runtime_data.data.state == "failed")
    assert hass.states.get(EVENT).attributes["event_type"] == "auth_failed"


@pytest.mark.parametrize(
    "password",
    [
        pytest.param(TEST_ACCOUNTS["alice"], id="same-password-after-unlock"),
        pytest.param("new", id="new-password"),
    ],
)
async def test_reauth_recovers_the_profile(
    hass: HomeAssistant, kamailio_clean: KamailioServer, make_entry: MakeEntry, password: str
) -> None:
    """Whether the password changed or not, reauthentication registers again, then recovered."""
    entry = make_entry("alice", auth_user="")  # as the flow stores it: the same data again
    await _locked_out(hass, kamailio_clean, entry)
    kamailio_clean.set_password("alice", password)
    [flow] = hass.config_entries.flow.async_progress_by_handler(DOMAIN)

    result = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_PASSWORD: password}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    await wait_for(
        hass,
        lambda: (
            entry.state is ConfigEntryState.LOADED and entry.runtime_data.data.state == "registered"
        ),
    )
    assert hass.states.get(EVENT).attributes["event_type"] == "recovered"
    contact = entry.runtime_data.data.status.contact
    assert contact in [binding.contact for binding in kamailio_clean.bindings("alice")]


async def test_outage_survives_a_reload_once(
    hass: HomeAssistant, kamailio_clean: KamailioServer, make_entry: MakeEntry
) -> None:
    """A reload during an outage neither repeats its problem nor forgets its recovery."""
    entry = make_entry("alice")
    await _locked_out(hass, kamailio_clean, entry)
    problem_at = hass.states.get(EVENT).state
    assert await hass.config_entries.async_reload(entry.entry_id) is False  # still refused
    await settle(hass)
    kamailio_clean.set_password("alice", TEST_ACCOUNTS["alice"])
    assert await hass.config_entries.async_reload(entry.entry_id)
    await settle(hass)
    recovered = hass.states.get(EVENT)
    assert recovered.attributes["event_type"] == "recovered"
    assert recovered.state != problem_at

    assert await hass.config_entries.async_reload(entry.entry_id)
    await settle(hass)
    assert hass.states.get(EVENT).state == recovered.state  # nothing fired again


async def test_forms_serialize_for_the_frontend(
    hass: HomeAssistant, kamailio_clean: KamailioServer, make_entry: MakeEntry
) -> None:
    """The forms convert to the frontend's field list: a collapsed section, translated select."""
    master = make_entry("bob")
    master.add_to_hass(hass)
    result = await start_manual(hass)
    assert result["data_schema"] is not None

    field_list: list[dict[str, Any]] = vol.to_field_list(
        result["data_schema"], custom_serializer=cv.custom_serializer
    )  # type: ignore[assignment]
    fields = {field["name"]: field for field in field_list}

    assert fields[CONF_PASSWORD]["selector"] == {
        "text": {"type": "password", "multiline": False, "multiple": False}
    }
    advanced = fields[SECTION_ADVANCED]
    assert advanced["type"] == "expandable"
    assert advanced["expanded"] is False
    inner = {field["name"]: field for field in advanced["schema"]}
    assert inner[CONF_TRANSPORT]["selector"]["select"]["translation_key"] == CONF_TRANSPORT
    assert inner[CONF_TRANSPORT]["default"] == "auto"
    assert inner[CONF_EXPIRES]["selector"]["number"]["unit_of_measurement"] == "s"
    assert inner[CONF_MASTER]["selector"]["select"]["options"] == [
        {"value": master.entry_id, "label": master.title}
    ]

    for flow in (
        await start_provisioning(hass),
        await master.start_reconfigure_flow(hass),
        await master.start_reauth_flow(hass),
        await hass.config_entries.options.async_init(master.entry_id),
    ):
        assert flow["type"] is FlowResultType.FORM
        assert vol.to_field_list(flow["data_schema"], custom_serializer=cv.custom_serializer)
