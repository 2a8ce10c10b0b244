"""Client provisioning XML: the profile format of the Microsoft RTC client API.

A profile names the account and the SIP servers to use::

    <provision key="{...}" name="Example">
      <user uri="sip:alice@example.com" account="alice" password="..." realm="example.com"/>
      <sipsrv addr="sip.example.com:5061" protocol="TLS" auth="digest" role="registrar">
        <session party="first" type="pc2pc"/>
      </sipsrv>
      <sipsrv addr="proxy.example.com" protocol="UDP" role="proxy"/>
    </provision>

The schema requires ``key`` and ``name`` on ``<provision>``, exactly one ``<user>`` with a
``uri``, and at least one ``<sipsrv>`` with ``addr``, ``protocol`` and ``role``;
:func:`parse_provisioning` enforces that and raises :class:`ProvisioningError`, whose
``problem`` says what is wrong in terms a user can act on and whose message names the detail.
The password never appears in a ``repr`` or an error message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
import re
from xml.etree.ElementTree import Element

from ..target import Transport
from ._xml import DEFAULT_MAX_BYTES, DocumentError, enum_value, local_name, parse_xml, required

_PORT_RE = re.compile(r"[0-9]{1,5}")


class ProvisioningProblem(StrEnum):
    """What is wrong with a provisioning profile, in terms a user can act on."""

    INVALID_XML = "invalid_xml"
    NOT_PROVISIONING = "not_provisioning"
    MISSING_USER = "missing_user"
    MISSING_REGISTRAR = "missing_registrar"
    INVALID = "invalid_provisioning"


class ProvisioningError(DocumentError):
    """A provisioning profile cannot be used; ``problem`` classifies why."""

    def __init__(self, problem: ProvisioningProblem, message: str) -> None:
        """Classify the error; ``message`` names the detail."""
        super().__init__(message)
        self.problem = problem


class ServerRole(StrEnum):
    """What a ``<sipsrv>`` is for."""

    PROXY = "proxy"
    REGISTRAR = "registrar"


@dataclass(frozen=True, slots=True)
class Session:
    """A ``<session>`` a server supports: who takes part (first/third party) and the kind."""

    party: str | None
    type: str | None


@dataclass(frozen=True, slots=True)
class SipServer:
    """One ``<sipsrv>``; ``port`` is None when ``addr`` names none (use DNS or the default)."""

    host: str
    port: int | None
    transport: Transport
    role: ServerRole
    auth: str | None = None
    sessions: tuple[Session, ...] = ()


@dataclass(frozen=True, slots=True)
class ProvisionedUser:
    """The ``<user>`` of a profile: the address of record and how to authenticate."""

    uri: str
    account: str | None = None
    name: str | None = None
    password: str | None = field(default=None, repr=False)
    realm: str | None = None


@dataclass(frozen=True, slots=True)
class ProvisioningDocument:
    """A parsed provisioning profile; ``servers`` is never empty."""

    key: str
    name: str
    user: ProvisionedUser
    servers: tuple[SipServer, ...]
    expires: str | None = None
    client_name: str | None = None
    provider_name: str | None = None

    @property
    def registrar(self) -> SipServer:
        """Where REGISTER goes: the first registrar, else the first proxy (one server for both)."""
        return next(
            (server for server in self.servers if server.role is ServerRole.REGISTRAR),
            self.servers[0],
        )

    @property
    def outbound_proxy(self) -> SipServer | None:
        """The first proxy that is not the registrar itself; None to send straight there."""
        registrar = self.registrar
        for server in self.servers:
            if server.role is ServerRole.PROXY and (server.host, server.port) != (
                registrar.host,
                registrar.port,
            ):
                return server
        return None


def parse_provisioning(text: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ProvisioningDocument:
    """Parse a provisioning profile; raises :class:`ProvisioningError` when it is unusable."""
    try:
        root = parse_xml(text, max_bytes=max_bytes)
    except DocumentError as err:
        raise ProvisioningError(ProvisioningProblem.INVALID_XML, str(err)) from err
    try:
        return _parse_profile(root)
    except ProvisioningError:
        raise
    except DocumentError as err:
        raise ProvisioningError(ProvisioningProblem.INVALID, str(err)) from err


def _parse_profile(root: Element) -> ProvisioningDocument:
    if local_name(root.tag) != "provision":
        raise ProvisioningError(
            ProvisioningProblem.NOT_PROVISIONING,
            f"not a provisioning profile: the root element is <{local_name(root.tag)}>",
        )
    users = _children(root, "user")
    if not users:
        raise ProvisioningError(ProvisioningProblem.MISSING_USER, "the profile has no <user>")
    if len(users) > 1:
        raise ProvisioningError(
            ProvisioningProblem.MISSING_USER, "the profile has more than one <user>"
        )
    user = _parse_user(users[0])
    servers = tuple(_parse_server(element) for element in _children(root, "sipsrv"))
    if not servers:
        raise ProvisioningError(
            ProvisioningProblem.MISSING_REGISTRAR,
            "the profile has no <sipsrv> with role registrar or proxy",
        )
    return ProvisioningDocument(
        key=required(root, "key", "<provision>"),
        name=required(root, "name", "<provision>"),
        user=user,
        servers=servers,
        expires=root.get("expires"),
        client_name=_optional_name(root, "client"),
        provider_name=_optional_name(root, "provider"),
    )


def _children(element: Element, name: str) -> list[Element]:
    return [child for child in element if local_name(child.tag) == name]


def _optional_name(root: Element, child_name: str) -> str | None:
    children = _children(root, child_name)
    return children[0].get("name") if children else None


def _parse_user(element: Element) -> ProvisionedUser:
    uri = element.get("uri")
    if uri is None:
        raise ProvisioningError(ProvisioningProblem.MISSING_USER, "<user> has no 'uri' attribute")
    uri = uri.strip()
    if not uri:
        raise ProvisioningError(ProvisioningProblem.MISSING_USER, "the <user> uri is empty")
    return ProvisionedUser(
        uri=uri,
        account=element.get("account"),
        name=element.get("name"),
        password=element.get("password"),
        realm=element.get("realm"),
    )


def _parse_server(element: Element) -> SipServer:
    addr = required(element, "addr", "a <sipsrv>").strip()
    host, port = _split_addr(addr)
    what = f"<sipsrv addr={addr!r}>"
    auth = element.get("auth")
    return SipServer(
        host=host,
        port=port,
        transport=enum_value(
            Transport, required(element, "protocol", what), f"the protocol of {what}"
        ),
        role=enum_value(ServerRole, required(element, "role", what), f"the role of {what}"),
        auth=None if auth is None else auth.strip().lower(),
        sessions=tuple(
            Session(party=session.get("party"), type=session.get("type"))
            for session in _children(element, "session")
        ),
    )


def _split_addr(addr: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``; a bare IPv6 address has no port."""
    if addr.startswith("["):
        host, bracket, rest = addr[1:].partition("]")
        if not bracket or not host or (rest and not rest.startswith(":")):
            raise DocumentError(f"<sipsrv> addr {addr!r} is not host[:port]")
        raw_port = rest[1:] if rest else None
    elif addr.count(":") == 1:
        host, _, raw_port = addr.partition(":")
    else:
        host, raw_port = addr, None
    if not host or any(char.isspace() for char in host):
        raise DocumentError(f"<sipsrv> addr {addr!r} is not host[:port]")
    if raw_port is None:
        return host, None
    if not _PORT_RE.fullmatch(raw_port) or not 0 < int(raw_port) < 65536:
        raise DocumentError(f"<sipsrv> addr {addr!r} has an invalid port")
    return host, int(raw_port)
