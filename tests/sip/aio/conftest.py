"""Fixtures of the asyncio layer tests: a real DNS server and throw-away TLS files."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path

import aiodns
import pytest

from tests.harness.certs import TlsFiles, make_tls_files
from tests.harness.dnsmasq import DNSMASQ, Dnsmasq

ServeDns = Callable[[Iterable[str]], Awaitable[aiodns.DNSResolver]]


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[Dnsmasq]:
    """A dnsmasq to start with a test's records; skipped when dnsmasq is not installed."""
    if DNSMASQ is None:
        pytest.skip("dnsmasq is not installed (Debian package dnsmasq-base)")
    with Dnsmasq(tmp_path) as server:
        yield server


@pytest.fixture
async def serve_dns(dnsmasq: Dnsmasq) -> AsyncIterator[ServeDns]:
    """Serve records and return a resolver that asks only that server."""
    resolvers: list[aiodns.DNSResolver] = []

    async def serve(records: Iterable[str]) -> aiodns.DNSResolver:
        await asyncio.to_thread(dnsmasq.start, list(records))
        resolver = aiodns.DNSResolver(nameservers=[dnsmasq.nameserver], timeout=2.0, tries=1)
        resolvers.append(resolver)
        return resolver

    yield serve
    for resolver in resolvers:
        await resolver.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A private CA and a server certificate for 127.0.0.1, localhost and sip.test."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))
