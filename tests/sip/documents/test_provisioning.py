"""Provisioning profiles of the RTC client API: parsing, errors, secrets and server choice."""

from __future__ import annotations

import pytest

from custom_components.sip_profiles.sip.documents import (
    DocumentError,
    ProvisionedUser,
    ProvisioningDocument,
    ProvisioningError,
    ProvisioningProblem,
    ServerRole,
    Session,
    SipServer,
    parse_provisioning,
)
from custom_components.sip_profiles.sip.target import Transport

SECRET = "s3cr3t-Pa55"

PROFILE = f"""<?xml version="1.0"?>
<provision key="{{6C8AEB1A-2F54-4B8A-9C3F-1F2C1F7A0B11}}" name="Example Telecom"
 expires="2027-01-01T00:00:00Z">
  <user uri="sip:alice@example.com" account="alice" name="Alice" password="{SECRET}"
   realm="example.com"/>
  <client name="Phone" banner="true"/>
  <provider name="Example Telecom" homepage="https://example.com/">
    <data>anything</data>
  </provider>
  <sipsrv addr="registrar.example.com:5061" protocol="TLS" auth="digest" role="registrar">
    <session party="first" type="pc2pc"/>
    <session party="first" type="im"/>
  </sipsrv>
  <sipsrv addr="proxy.example.com" protocol="udp" auth="Digest" role="proxy"/>
</provision>"""


def profile(body: str, attributes: str = 'key="k" name="n"') -> str:
    return f"<provision {attributes}>{body}</provision>"


USER = '<user uri="sip:bob@example.org"/>'


def server(addr: str, protocol: str = "UDP", role: str = "registrar") -> str:
    return f'<sipsrv addr="{addr}" protocol="{protocol}" role="{role}"/>'


def test_full_profile() -> None:
    doc = parse_provisioning(PROFILE)
    assert doc == ProvisioningDocument(
        key="{6C8AEB1A-2F54-4B8A-9C3F-1F2C1F7A0B11}",
        name="Example Telecom",
        user=ProvisionedUser(
            uri="sip:alice@example.com",
            account="alice",
            name="Alice",
            password=SECRET,
            realm="example.com",
        ),
        servers=(
            SipServer(
                host="registrar.example.com",
                port=5061,
                transport=Transport.TLS,
                role=ServerRole.REGISTRAR,
                auth="digest",
                sessions=(Session("first", "pc2pc"), Session("first", "im")),
            ),
            SipServer(
                host="proxy.example.com",
                port=None,
                transport=Transport.UDP,
                role=ServerRole.PROXY,
                auth="digest",
            ),
        ),
        expires="2027-01-01T00:00:00Z",
        client_name="Phone",
        provider_name="Example Telecom",
    )


def test_minimal_profile() -> None:
    doc = parse_provisioning(profile(USER + server("192.0.2.1")))
    assert doc.user == ProvisionedUser("sip:bob@example.org")
    assert (doc.expires, doc.client_name, doc.provider_name) == (None, None, None)
    assert doc.servers[0].auth is None


def test_password_is_in_the_model_but_never_in_repr() -> None:
    doc = parse_provisioning(PROFILE)
    assert doc.user.password == SECRET
    assert SECRET not in repr(doc)
    assert SECRET not in repr(doc.user)
    assert SECRET not in str(doc)


@pytest.mark.parametrize(
    "broken",
    [
        PROFILE.replace('role="proxy"', 'role="gateway"'),
        PROFILE.replace("</provision>", "<user/></provision>"),
        PROFILE.replace('protocol="TLS"', 'protocol="SCTP"'),
        PROFILE.replace('name="Example Telecom"\n', ""),
        PROFILE.replace("</provision>", ""),
    ],
    ids=["bad role", "second user", "bad protocol", "no name", "truncated"],
)
def test_errors_never_quote_the_password(broken: str) -> None:
    with pytest.raises(DocumentError) as raised:
        parse_provisioning(broken)
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("addr", "host", "port"),
    [
        ("sip.example.com", "sip.example.com", None),
        ("sip.example.com:5070", "sip.example.com", 5070),
        (" 192.0.2.7:5060 ", "192.0.2.7", 5060),
        ("[2001:db8::1]", "2001:db8::1", None),
        ("[2001:db8::1]:5061", "2001:db8::1", 5061),
        ("2001:db8::1", "2001:db8::1", None),
    ],
)
def test_server_addresses(addr: str, host: str, port: int | None) -> None:
    (parsed,) = parse_provisioning(profile(USER + server(addr))).servers
    assert (parsed.host, parsed.port) == (host, port)


@pytest.mark.parametrize(
    ("protocol", "transport"),
    [("UDP", Transport.UDP), ("tcp", Transport.TCP), (" Tls ", Transport.TLS)],
)
def test_protocols_in_any_case(protocol: str, transport: Transport) -> None:
    (parsed,) = parse_provisioning(profile(USER + server("h", protocol))).servers
    assert parsed.transport is transport


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '<profile key="k" name="n"/>',
            "not a provisioning profile: the root element is <profile>",
        ),
        (profile(server("h")), "the profile has no <user>"),
        (profile(USER + USER + server("h")), "more than one <user>"),
        (profile('<user account="bob"/>' + server("h")), "<user> has no 'uri'"),
        (profile('<user uri=" "/>' + server("h")), "the <user> uri is empty"),
        (profile(USER), "no <sipsrv> with role registrar or proxy"),
        (profile(USER + server("h"), 'name="n"'), "<provision> has no 'key'"),
        (profile(USER + server("h"), 'key="k"'), "<provision> has no 'name'"),
        (profile(USER + '<sipsrv protocol="UDP" role="proxy"/>'), "a <sipsrv> has no 'addr'"),
        (profile(USER + '<sipsrv addr="h" role="proxy"/>'), "<sipsrv addr='h'> has no 'protocol'"),
        (profile(USER + '<sipsrv addr="h" protocol="UDP"/>'), "<sipsrv addr='h'> has no 'role'"),
        (profile(USER + server("h", "SCTP")), "the protocol of <sipsrv addr='h'> is 'SCTP'"),
        (profile(USER + server("h", role="gateway")), "the role of <sipsrv addr='h'> is 'gateway'"),
        (profile(USER + server("h:0")), "addr 'h:0' has an invalid port"),
        (profile(USER + server("h:65536")), "has an invalid port"),
        (profile(USER + server("h:x")), "has an invalid port"),
        (profile(USER + server("h:")), "has an invalid port"),
        (profile(USER + server(":5060")), "is not host\\[:port\\]"),
        (profile(USER + server("[2001:db8::1")), "is not host\\[:port\\]"),
        (profile(USER + server("[2001:db8::1]5060")), "is not host\\[:port\\]"),
        (profile(USER + server("my host")), "is not host\\[:port\\]"),
        (
            '<!DOCTYPE provision [<!ENTITY p SYSTEM "file:///etc/passwd">]>'
            + profile('<user uri="&p;"/>' + server("h")),
            "DOCTYPE",
        ),
    ],
)
def test_invalid_profiles_name_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(DocumentError, match=message):
        parse_provisioning(text)


def test_a_namespaced_profile_is_read_by_local_names() -> None:
    text = (
        '<p:provision xmlns:p="urn:example:provisioning" key="k" name="n">'
        '<p:user uri="sip:bob@example.org"/><p:sipsrv addr="h" protocol="TCP" role="proxy"/>'
        "</p:provision>"
    )
    assert parse_provisioning(text).servers[0].transport is Transport.TCP


# --- registrar and outbound proxy --------------------------------------------------------


def test_registrar_and_a_separate_outbound_proxy() -> None:
    doc = parse_provisioning(PROFILE)
    assert doc.registrar.host == "registrar.example.com"
    assert doc.outbound_proxy is not None
    assert doc.outbound_proxy.host == "proxy.example.com"


def test_registrar_listed_after_the_proxy_is_still_the_registrar() -> None:
    doc = parse_provisioning(
        profile(USER + server("proxy.example.com", role="proxy") + server("reg.example.com"))
    )
    assert doc.registrar.host == "reg.example.com"
    assert doc.outbound_proxy is not None
    assert doc.outbound_proxy.host == "proxy.example.com"


def test_only_a_proxy_serves_as_registrar_without_outbound_proxy() -> None:
    doc = parse_provisioning(profile(USER + server("pbx.example.com", role="proxy")))
    assert doc.registrar.host == "pbx.example.com"
    assert doc.outbound_proxy is None


def test_only_a_registrar_means_no_outbound_proxy() -> None:
    doc = parse_provisioning(profile(USER + server("pbx.example.com")))
    assert doc.registrar.host == "pbx.example.com"
    assert doc.outbound_proxy is None


def test_a_proxy_at_the_registrar_address_is_not_an_outbound_proxy() -> None:
    doc = parse_provisioning(
        profile(
            USER
            + server("pbx.example.com:5060", "UDP")
            + server("pbx.example.com:5060", "TCP", "proxy")
            + server("edge.example.com:5060", "TCP", "proxy")
        )
    )
    assert doc.registrar.transport is Transport.UDP
    assert doc.outbound_proxy is not None
    assert doc.outbound_proxy.host == "edge.example.com"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("<provision key='k'", ProvisioningProblem.INVALID_XML),
        ("<profile/>", ProvisioningProblem.NOT_PROVISIONING),
        (profile(server("h")), ProvisioningProblem.MISSING_USER),
        (profile('<user account="bob"/>' + server("h")), ProvisioningProblem.MISSING_USER),
        (profile(USER), ProvisioningProblem.MISSING_REGISTRAR),
        (profile(USER + server("h:x")), ProvisioningProblem.INVALID),
    ],
    ids=["truncated", "other root", "no user", "user without uri", "no server", "bad port"],
)
def test_errors_say_which_problem_a_user_must_fix(text: str, problem: ProvisioningProblem) -> None:
    with pytest.raises(ProvisioningError) as raised:
        parse_provisioning(text)
    assert raised.value.problem is problem
