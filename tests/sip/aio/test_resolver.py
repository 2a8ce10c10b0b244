"""RFC 3263 server location against a real DNS server (dnsmasq) on loopback."""

from __future__ import annotations

import asyncio
from collections import Counter
import random

import aiodns
import pytest

from custom_components.sip_profiles.sip.aio.resolver import (
    LocationError,
    _rfc2782_order,
    _Service,
    locate,
)
from custom_components.sip_profiles.sip.errors import LocalProtocolError
from custom_components.sip_profiles.sip.target import Target, Transport
from custom_components.sip_profiles.sip.uri import parse_sip_uri
from tests.harness.dnsmasq import Dnsmasq, host, naptr, srv

from .conftest import ServeDns

UDP, TCP, TLS = Transport.UDP, Transport.TCP, Transport.TLS


async def test_naptr_srv_a_chain_in_naptr_order(serve_dns: ServeDns) -> None:
    resolver = await serve_dns(
        [
            naptr("sip.test", 20, 10, "SIP+D2U", "_sip._udp.sip.test"),
            naptr("sip.test", 10, 20, "SIPS+D2T", "_sips._tcp.sip.test"),
            naptr("sip.test", 10, 10, "SIP+D2T", "_sip._tcp.sip.test"),
            # A transport we do not speak comes first and must be skipped.
            naptr("sip.test", 1, 1, "SIP+D2S", "_sip._sctp.sip.test"),
            srv("_sip._sctp.sip.test", "pbx3.sip.test", 5060),
            srv("_sip._tcp.sip.test", "pbx1.sip.test", 5060),
            srv("_sips._tcp.sip.test", "pbx1.sip.test", 5061),
            srv("_sip._udp.sip.test", "pbx2.sip.test", 5070),
            host("pbx1.sip.test", "127.0.0.1"),
            host("pbx2.sip.test", "127.0.0.2"),
            host("pbx3.sip.test", "127.0.0.3"),
        ]
    )

    targets = await locate(parse_sip_uri("sip:alice@sip.test"), resolver=resolver)

    assert targets == [
        Target(TCP, "127.0.0.1", 5060, "sip.test"),
        Target(TLS, "127.0.0.1", 5061, "sip.test"),
        Target(UDP, "127.0.0.2", 5070, "sip.test"),
    ]


async def test_sips_follows_only_sips_naptr(serve_dns: ServeDns) -> None:
    resolver = await serve_dns(
        [
            naptr("sip.test", 10, 10, "SIP+D2U", "_sip._udp.sip.test"),
            naptr("sip.test", 20, 10, "SIPS+D2T", "_sips._tcp.sip.test"),
            srv("_sip._udp.sip.test", "pbx1.sip.test", 5060),
            srv("_sips._tcp.sip.test", "pbx1.sip.test", 5061),
            host("pbx1.sip.test", "127.0.0.1"),
        ]
    )

    targets = await locate(parse_sip_uri("sips:sip.test"), resolver=resolver)

    assert targets == [Target(TLS, "127.0.0.1", 5061, "sip.test")]


async def test_without_naptr_srv_of_each_transport_udp_tcp_tls(serve_dns: ServeDns) -> None:
    resolver = await serve_dns(
        [
            srv("_sips._tcp.sip.test", "pbx1.sip.test", 5061),
            srv("_sip._tcp.sip.test", "pbx2.sip.test", 5060),
            srv("_sip._udp.sip.test", "pbx3.sip.test", 5062),
            host("pbx1.sip.test", "127.0.0.1"),
            host("pbx2.sip.test", "127.0.0.2"),
            host("pbx3.sip.test", "127.0.0.3"),
        ]
    )

    targets = await locate(parse_sip_uri("sip:sip.test"), resolver=resolver)

    assert targets == [
        Target(UDP, "127.0.0.3", 5062, "sip.test"),
        Target(TCP, "127.0.0.2", 5060, "sip.test"),
        Target(TLS, "127.0.0.1", 5061, "sip.test"),
    ]


async def test_unusable_naptr_falls_back_to_srv(serve_dns: ServeDns) -> None:
    resolver = await serve_dns(
        [
            naptr("sip.test", 10, 10, "SIP+D2S", "_sip._sctp.sip.test"),
            srv("_sip._sctp.sip.test", "pbx1.sip.test", 5060),
            srv("_sip._tcp.sip.test", "pbx2.sip.test", 5060),
            host("pbx1.sip.test", "127.0.0.1"),
            host("pbx2.sip.test", "127.0.0.2"),
        ]
    )

    targets = await locate(parse_sip_uri("sip:sip.test"), resolver=resolver)

    assert targets == [Target(TCP, "127.0.0.2", 5060, "sip.test")]


async def test_sips_without_naptr_asks_only_sips_srv(serve_dns: ServeDns) -> None:
    resolver = await serve_dns(
        [
            srv("_sip._udp.sip.test", "pbx1.sip.test", 5060),
            srv("_sips._tcp.sip.test", "pbx2.sip.test", 5071),
            host("pbx1.sip.test", "127.0.0.1"),
            host("pbx2.sip.test", "127.0.0.2"),
        ]
    )

    targets = await locate(parse_sip_uri("sips:sip.test"), resolver=resolver)

    assert targets == [Target(TLS, "127.0.0.2", 5071, "sip.test")]


async def test_no_naptr_no_srv_uses_a_on_default_port(serve_dns: ServeDns) -> None:
    resolver = await serve_dns([host("sip.test", "127.0.0.1")])

    plain = await locate(parse_sip_uri("sip:sip.test"), resolver=resolver)
    secure = await locate(parse_sip_uri("sips:sip.test"), resolver=resolver)

    assert plain == [Target(UDP, "127.0.0.1", 5060, "sip.test")]
    assert secure == [Target(TLS, "127.0.0.1", 5061, "sip.test")]


async def test_srv_priority_first_and_weights_seeded(serve_dns: ServeDns) -> None:
    resolver = await serve_dns(
        [
            srv("_sip._udp.sip.test", "low.sip.test", 5060, priority=20, weight=100),
            srv("_sip._udp.sip.test", "a.sip.test", 5060, priority=10, weight=0),
            srv("_sip._udp.sip.test", "b.sip.test", 5060, priority=10, weight=60),
            srv("_sip._udp.sip.test", "c.sip.test", 5060, priority=10, weight=40),
            srv("_sip._udp.sip.test", "top.sip.test", 5060, priority=5, weight=0),
            host("top.sip.test", "127.0.0.1"),
            host("a.sip.test", "127.0.0.2"),
            host("b.sip.test", "127.0.0.3"),
            host("c.sip.test", "127.0.0.4"),
            host("low.sip.test", "127.0.0.5"),
        ]
    )
    uri = parse_sip_uri("sip:sip.test;transport=udp")

    orders = [
        [target.host for target in await locate(uri, resolver=resolver, rng=random.Random(seed))]
        for seed in range(12)
    ]
    again = [
        [target.host for target in await locate(uri, resolver=resolver, rng=random.Random(seed))]
        for seed in range(12)
    ]

    assert orders == again
    for order in orders:
        assert order[0] == "127.0.0.1"
        assert sorted(order[1:4]) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        assert order[4] == "127.0.0.5"
    # The random choice really varies the order within one priority.
    assert len({tuple(order[1:4]) for order in orders}) > 1


def test_rfc2782_weights_decide_how_often_a_record_comes_first() -> None:
    services = [
        _Service("zero.test", 5060, 10, 0),
        _Service("heavy.test", 5060, 10, 75),
        _Service("light.test", 5060, 10, 25),
    ]
    rng = random.Random(1)

    firsts = Counter(_rfc2782_order(services, rng)[0].host for _ in range(4000))

    # Expected shares of the first place: 75/101, 25/101 and 1/101.
    assert 2800 < firsts["heavy.test"] < 3150
    assert 850 < firsts["light.test"] < 1150
    assert firsts["zero.test"] < 100


async def test_given_transport_asks_its_srv_only(serve_dns: ServeDns) -> None:
    resolver = await serve_dns(
        [
            naptr("sip.test", 10, 10, "SIP+D2U", "_sip._udp.sip.test"),
            srv("_sip._udp.sip.test", "pbx1.sip.test", 5060),
            srv("_sip._tcp.sip.test", "pbx2.sip.test", 5080),
            srv("_sips._tcp.sip.test", "pbx2.sip.test", 5081),
            host("pbx1.sip.test", "127.0.0.1"),
            host("pbx2.sip.test", "127.0.0.2"),
        ]
    )

    by_param = await locate(parse_sip_uri("sip:sip.test;transport=TCP"), resolver=resolver)
    by_argument = await locate(
        parse_sip_uri("sip:sip.test;transport=tcp"), transport=TLS, resolver=resolver
    )

    assert by_param == [Target(TCP, "127.0.0.2", 5080, "sip.test")]
    assert by_argument == [Target(TLS, "127.0.0.2", 5081, "sip.test")]


async def test_given_transport_without_srv_uses_a_on_its_port(serve_dns: ServeDns) -> None:
    resolver = await serve_dns([host("sip.test", "127.0.0.1")])

    targets = await locate(parse_sip_uri("sip:sip.test"), transport=TLS, resolver=resolver)

    assert targets == [Target(TLS, "127.0.0.1", 5061, "sip.test")]


async def test_explicit_port_skips_naptr_and_srv(serve_dns: ServeDns) -> None:
    resolver = await serve_dns(
        [
            naptr("sip.test", 10, 10, "SIP+D2T", "_sip._tcp.sip.test"),
            srv("_sip._tcp.sip.test", "pbx1.sip.test", 5060),
            srv("_sip._udp.sip.test", "pbx1.sip.test", 5060),
            host("pbx1.sip.test", "127.0.0.1"),
            host("sip.test", "127.0.0.9"),
        ]
    )

    plain = await locate(parse_sip_uri("sip:sip.test:5090"), resolver=resolver)
    tcp = await locate(parse_sip_uri("sip:sip.test:5090;transport=tcp"), resolver=resolver)
    secure = await locate(parse_sip_uri("sips:sip.test:5091"), resolver=resolver)

    assert plain == [Target(UDP, "127.0.0.9", 5090, "sip.test")]
    assert tcp == [Target(TCP, "127.0.0.9", 5090, "sip.test")]
    assert secure == [Target(TLS, "127.0.0.9", 5091, "sip.test")]


async def test_ipv4_before_ipv6(serve_dns: ServeDns) -> None:
    resolver = await serve_dns(
        [
            srv("_sip._udp.sip.test", "dual.sip.test", 5060),
            host("dual.sip.test", "::1", "127.0.0.1"),
            host("six.test", "fd00::5"),
        ]
    )

    dual = await locate(parse_sip_uri("sip:sip.test"), resolver=resolver)
    six = await locate(parse_sip_uri("sip:six.test:5070"), resolver=resolver)

    assert dual == [
        Target(UDP, "127.0.0.1", 5060, "sip.test"),
        Target(UDP, "::1", 5060, "sip.test"),
    ]
    assert six == [Target(UDP, "fd00::5", 5070, "six.test")]


async def test_unknown_name_is_a_location_error(serve_dns: ServeDns) -> None:
    resolver = await serve_dns([host("sip.test", "127.0.0.1")])

    with pytest.raises(LocationError, match=r"nobody\.test") as caught:
        await locate(parse_sip_uri("sip:nobody.test"), resolver=resolver)

    assert isinstance(caught.value, OSError)


async def test_failed_queries_end_in_a_location_error_with_the_cause(
    serve_dns: ServeDns,
) -> None:
    # The server answers only for .test and its own host records; it refuses anything else.
    resolver = await serve_dns([])

    with pytest.raises(LocationError, match="DNS failed") as caught:
        await locate(parse_sip_uri("sip:sip.example"), resolver=resolver)

    assert isinstance(caught.value.__cause__, aiodns.error.DNSError)


async def test_failed_naptr_and_srv_queries_fall_through_to_a(serve_dns: ServeDns) -> None:
    # NAPTR and SRV queries for a name outside .test are refused; its A record is answered.
    resolver = await serve_dns([host("pbx.example", "127.0.0.1")])

    targets = await locate(parse_sip_uri("sip:pbx.example"), resolver=resolver)

    assert targets == [Target(UDP, "127.0.0.1", 5060, "pbx.example")]


async def test_numeric_hosts_make_no_query(dnsmasq: Dnsmasq) -> None:
    # A server that has gone away leaves a port nobody answers on.
    await asyncio.to_thread(dnsmasq.start, [host("sip.test", "127.0.0.1")])
    dead = dnsmasq.nameserver
    await asyncio.to_thread(dnsmasq.stop)
    async with aiodns.DNSResolver(nameservers=[dead], timeout=1.0, tries=1) as resolver:
        with pytest.raises(LocationError):
            await locate(parse_sip_uri("sip:sip.test"), resolver=resolver)

        ipv4 = await locate(parse_sip_uri("sip:127.0.0.1"), resolver=resolver)
        ipv6 = await locate(parse_sip_uri("sip:[::1]:5070;transport=tcp"), resolver=resolver)
        secure = await locate(parse_sip_uri("sips:10.0.0.1"), resolver=resolver)
        given = await locate(parse_sip_uri("sip:10.0.0.1"), transport=TCP, resolver=resolver)

    assert ipv4 == [Target(UDP, "127.0.0.1", 5060)]
    assert ipv6 == [Target(TCP, "::1", 5070)]
    assert secure == [Target(TLS, "10.0.0.1", 5061)]
    assert given == [Target(TCP, "10.0.0.1", 5060)]


@pytest.mark.parametrize(
    ("uri", "transport"),
    [
        ("sips:127.0.0.1;transport=udp", None),
        ("sips:sip.test", UDP),
        ("sip:127.0.0.1;transport=sctp", None),
        ("sip:sip.test;transport", None),
    ],
)
async def test_impossible_transport_is_a_local_error(uri: str, transport: Transport | None) -> None:
    with pytest.raises(LocalProtocolError):
        await locate(parse_sip_uri(uri), transport=transport)


async def test_srv_target_dot_means_no_service(serve_dns: ServeDns) -> None:
    resolver = await serve_dns(
        [
            "srv-host=_sip._udp.sip.test",
            srv("_sip._tcp.sip.test", "pbx1.sip.test", 5060),
            host("pbx1.sip.test", "127.0.0.1"),
            host("sip.test", "127.0.0.9"),
        ]
    )

    any_transport = await locate(parse_sip_uri("sip:sip.test"), resolver=resolver)
    udp = await locate(parse_sip_uri("sip:sip.test;transport=udp"), resolver=resolver)

    assert any_transport == [Target(TCP, "127.0.0.1", 5060, "sip.test")]
    assert udp == [Target(UDP, "127.0.0.9", 5060, "sip.test")]
