"""Locating SIP servers through DNS (RFC 3263 §4, client side).

``locate`` turns a SIP URI into the ordered list of targets to try: the caller sends to the
first and moves to the next on a timeout, a transport error or a 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
import ipaddress
import random

import aiodns
from aiodns.error import ARES_ECONNREFUSED, ARES_ENODATA, ARES_ENOTFOUND, DNSError
from pycares import (
    AAAARecordData,
    ARecordData,
    NAPTRRecordData,
    SRVRecordData,
)

from ..errors import LocalProtocolError
from ..target import Target, Transport
from ..uri import SipUri

# NAPTR services (RFC 3263 §4.1) of the transports we speak.
_NAPTR_SERVICES = {
    "SIP+D2U": Transport.UDP,
    "SIP+D2T": Transport.TCP,
    "SIPS+D2T": Transport.TLS,
}
_SRV_PREFIXES = {
    Transport.UDP: "_sip._udp.",
    Transport.TCP: "_sip._tcp.",
    Transport.TLS: "_sips._tcp.",
}
# Without NAPTR records a sip URI tries every transport's SRV name, UDP first because every
# SIP server supports it (RFC 3261 §18), then TCP, then TLS; a sips URI tries TLS only.
_SIP_SRV_ORDER = (Transport.UDP, Transport.TCP, Transport.TLS)
# Answers that mean "no such records" rather than "DNS did not answer".
_NO_RECORDS = frozenset({ARES_ENODATA, ARES_ENOTFOUND})
# Nobody listens where the name servers should be: every further query would fail alike.
_NO_SERVER = frozenset({ARES_ECONNREFUSED})


class LocationError(OSError):
    """No server could be located for a SIP URI.

    The name has no usable NAPTR, SRV, A or AAAA records, or DNS itself failed (the
    failure is then the ``__cause__``). It is an OSError, like ``socket.gaierror``, so that
    callers handling unreachable servers handle it too.
    """


@dataclass(frozen=True, slots=True)
class _Service:
    """One SRV record: where a transport is offered, with its RFC 2782 ordering keys."""

    host: str
    port: int
    priority: int
    weight: int


async def locate(
    uri: SipUri,
    *,
    transport: Transport | None = None,
    resolver: aiodns.DNSResolver | None = None,
    rng: random.Random | None = None,
) -> list[Target]:
    """Return the targets for ``uri`` in the order to try them (RFC 3263 §4).

    ``transport`` (from the profile) takes precedence over the URI's ``;transport=``. A sips
    URI uses TLS only. A numeric host needs no DNS; an explicit port means A/AAAA only; a
    known transport means its SRV records (then A/AAAA on its default port); otherwise NAPTR,
    then SRV for each transport, then A/AAAA on the default port of UDP (TLS for sips). SRV
    records are ordered by priority, and by RFC 2782 weighted random choice (``rng``,
    seedable for tests) within one priority. Every target carries the URI's host name as
    ``server_name``: a TLS server must prove the domain of the URI (RFC 5922 §4), not the
    name an SRV record happened to point to. IPv4 addresses of a host come before its IPv6
    ones.

    Without ``resolver`` a resolver on the system's name servers is created for this call.
    Raises LocationError when nothing is found, and LocalProtocolError when the URI asks for
    a transport we cannot use (``;transport=sctp``, or UDP for sips).
    """
    wanted = transport if transport is not None else _uri_transport(uri)
    secure = uri.scheme == "sips"
    if secure and wanted is not None:
        if wanted is Transport.UDP:
            raise LocalProtocolError(f"a sips URI cannot be reached over UDP: {uri.host}")
        wanted = Transport.TLS
    if _is_ip_literal(uri.host):
        chosen = wanted or _default_transport(secure=secure)
        return [Target(chosen, uri.host, uri.port or chosen.default_port)]
    if resolver is not None:
        return await _Lookup(resolver, rng or random.Random()).run(uri, wanted)
    own_resolver = aiodns.DNSResolver()
    try:
        return await _Lookup(own_resolver, rng or random.Random()).run(uri, wanted)
    finally:
        await own_resolver.close()


def _default_transport(*, secure: bool) -> Transport:
    """The transport of a URI that names none (RFC 3263 §4.1): TLS for sips, else UDP."""
    return Transport.TLS if secure else Transport.UDP


def _uri_transport(uri: SipUri) -> Transport | None:
    """The transport named by the URI's ``;transport=`` parameter, if any."""
    name = uri.param("transport")
    if name is None:
        return None
    try:
        return Transport(name.lower())
    except ValueError:
        raise LocalProtocolError(f"unsupported transport {name!r} in {uri.host}") from None


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Lookup:
    """The queries of one ``locate`` call."""

    def __init__(self, resolver: aiodns.DNSResolver, rng: random.Random) -> None:
        self._resolver = resolver
        self._rng = rng
        self._failure: DNSError | None = None

    async def run(self, uri: SipUri, transport: Transport | None) -> list[Target]:
        domain = uri.host
        secure = uri.scheme == "sips"
        if uri.port is not None:
            chosen = transport or _default_transport(secure=secure)
            targets = await self._addresses(chosen, domain, uri.port, domain)
        elif transport is not None:
            targets = await self._srv(transport, domain, domain)
            if not targets:
                targets = await self._addresses(transport, domain, transport.default_port, domain)
        else:
            targets = await self._naptr(domain, secure=secure)
            if not targets:
                targets = await self._srv_each(domain, secure=secure)
            if not targets:
                chosen = _default_transport(secure=secure)
                targets = await self._addresses(chosen, domain, chosen.default_port, domain)
        if not targets:
            failure = f" (DNS failed: {self._failure.args})" if self._failure else ""
            raise LocationError(f"no SIP server found for {domain}{failure}") from self._failure
        return list(dict.fromkeys(targets))

    async def _naptr(self, domain: str, *, secure: bool) -> list[Target]:
        records = [
            record
            for record in await self._query(domain, "NAPTR", NAPTRRecordData)
            if record.flags.lower() == "s"
            and _NAPTR_SERVICES.get(record.service.upper()) is not None
            and (not secure or record.service.upper() == "SIPS+D2T")
        ]
        records.sort(key=lambda record: (record.order, record.preference))
        targets: list[Target] = []
        for record in records:
            transport = _NAPTR_SERVICES[record.service.upper()]
            targets += await self._services(transport, record.replacement, domain)
        return targets

    async def _srv_each(self, domain: str, *, secure: bool) -> list[Target]:
        transports = (Transport.TLS,) if secure else _SIP_SRV_ORDER
        found = await asyncio.gather(
            *(self._srv(transport, domain, domain) for transport in transports)
        )
        return [target for targets in found for target in targets]

    async def _srv(self, transport: Transport, domain: str, server_name: str) -> list[Target]:
        return await self._services(transport, _SRV_PREFIXES[transport] + domain, server_name)

    async def _services(self, transport: Transport, name: str, server_name: str) -> list[Target]:
        """The addresses of the SRV records at ``name``, in RFC 2782 order."""
        records = await self._query(name, "SRV", SRVRecordData)
        # A record with target "." says the service is not offered there: it yields no
        # target, and the name is then treated like one without SRV records.
        services = [
            _Service(record.target.rstrip("."), record.port, record.priority, record.weight)
            for record in records
            if record.target.rstrip(".")
        ]
        found = await asyncio.gather(
            *(
                self._addresses(transport, service.host, service.port, server_name)
                for service in _rfc2782_order(services, self._rng)
            )
        )
        return [target for targets in found for target in targets]

    async def _addresses(
        self, transport: Transport, host: str, port: int, server_name: str
    ) -> list[Target]:
        ipv4, ipv6 = await asyncio.gather(
            self._query(host, "A", ARecordData), self._query(host, "AAAA", AAAARecordData)
        )
        addresses = [record.addr for record in ipv4] + [record.addr for record in ipv6]
        return [Target(transport, address, port, server_name) for address in addresses]

    async def _query[R](self, name: str, qtype: str, data_type: type[R]) -> list[R]:
        """The answers of type ``data_type``; none when the name or the records do not exist.

        Other failures count as no answer too, remembered for the final error: some home
        routers time out or fail on NAPTR or AAAA queries yet answer the rest.
        """
        try:
            result = await self._resolver.query_dns(name, qtype)
        except DNSError as exc:
            code = exc.args[0] if exc.args else None
            if code in _NO_SERVER:
                raise LocationError(f"DNS {qtype} lookup of {name} failed: {exc.args}") from exc
            if code not in _NO_RECORDS:
                self._failure = exc
            return []
        # Answers can also hold the CNAME records that led to the data.
        return [record.data for record in result.answer if isinstance(record.data, data_type)]


def _rfc2782_order(services: Sequence[_Service], rng: random.Random) -> list[_Service]:
    """Order SRV records by ascending priority, by weighted random choice within a priority."""
    ordered: list[_Service] = []
    for priority in sorted({service.priority for service in services}):
        # Zero-weight records go first so that they are chosen only rarely (RFC 2782); the
        # names then fix the order servers rotate their answers in, so a seed decides all.
        remaining = sorted(
            (service for service in services if service.priority == priority),
            key=lambda service: (service.weight != 0, service.host, service.port),
        )
        while remaining:
            pick = rng.randint(0, sum(service.weight for service in remaining))
            running = 0
            for index, service in enumerate(remaining):
                running += service.weight
                if running >= pick:
                    ordered.append(remaining.pop(index))
                    break
    return ordered
