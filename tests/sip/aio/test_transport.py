"""The transport layer against real UDP, TCP and TLS peers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from dataclasses import dataclass, field
import socket
import ssl
from typing import Any

import pytest

from custom_components.sip_profiles.sip.aio.tls import (
    client_ssl_context,
    self_signed_server_context,
)
from custom_components.sip_profiles.sip.aio.transport import TransportLayer
from custom_components.sip_profiles.sip.errors import LocalProtocolError, RemoteProtocolError
from custom_components.sip_profiles.sip.target import Target, Transport
from tests.harness.certs import TlsFiles
from tests.sip.test_stream_framing import KAMAILIO_NOTIFY_EMPTY, KAMAILIO_NOTIFY_PIDF

pytestmark = pytest.mark.usefixtures("socket_enabled")

OPTIONS = b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n"
NOTIFY = b"NOTIFY sip:y SIP/2.0\r\nContent-Length: 5\r\n\r\nhello"
BOUND = 3.0


class Recorder:
    """The callbacks of a transport layer, queued for the test to await."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[bytes, Target]] = asyncio.Queue()
        self.losses: asyncio.Queue[tuple[Target, Exception | None]] = asyncio.Queue()

    def on_message(self, data: bytes, target: Target) -> None:
        self.messages.put_nowait((data, target))

    def on_flow_lost(self, target: Target, exc: Exception | None) -> None:
        self.losses.put_nowait((target, exc))

    async def message(self) -> tuple[bytes, Target]:
        return await asyncio.wait_for(self.messages.get(), BOUND)

    async def loss(self) -> tuple[Target, Exception | None]:
        return await asyncio.wait_for(self.losses.get(), BOUND)


MakeLayer = Callable[..., tuple[TransportLayer, Recorder]]


@pytest.fixture
async def make_layer() -> AsyncIterator[MakeLayer]:
    """Create transport layers with recorders; every one is closed after the test."""
    layers: list[TransportLayer] = []

    def make(**options: Any) -> tuple[TransportLayer, Recorder]:
        recorder = Recorder()
        layer = TransportLayer(
            on_message=recorder.on_message, on_flow_lost=recorder.on_flow_lost, **options
        )
        layers.append(layer)
        return layer, recorder

    yield make
    for layer in layers:
        await layer.close()


class _Echo(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)


@pytest.fixture
async def udp_echo() -> AsyncIterator[int]:
    """The port of a UDP echo server on 127.0.0.1."""
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        _Echo, local_addr=("127.0.0.1", 0)
    )
    yield transport.get_extra_info("sockname")[1]
    transport.close()


@dataclass
class StreamPeer:
    """A TCP (or TLS) server; each accepted connection is queued for the test."""

    port: int = 0
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(
        default_factory=asyncio.Queue
    )
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(self.accepted.get(), BOUND)


StartPeer = Callable[..., Awaitable[StreamPeer]]


@pytest.fixture
async def start_peer() -> AsyncIterator[StartPeer]:
    """Start stream servers on 127.0.0.1 (TLS when given an SSL context); closed after."""
    servers: list[tuple[asyncio.Server, StreamPeer]] = []

    async def start(ssl_context: ssl.SSLContext | None = None) -> StreamPeer:
        peer = StreamPeer()

        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer.writers.append(writer)
            peer.accepted.put_nowait((reader, writer))

        server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=ssl_context)
        peer.port = server.sockets[0].getsockname()[1]
        servers.append((server, peer))
        return peer

    yield start
    for server, peer in servers:
        server.close()
        for writer in peer.writers:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
        await server.wait_closed()


@pytest.fixture
def server_tls(tls_files: TlsFiles) -> ssl.SSLContext:
    """The server side of TLS: the certificate for 127.0.0.1, localhost and sip.test."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files.cert_file, tls_files.key_file)
    return context


async def tcp_flow(
    make_layer: MakeLayer, start_peer: StartPeer
) -> tuple[TransportLayer, Recorder, Target, asyncio.StreamWriter]:
    """A layer connected over TCP to a new peer, and the peer's writer of that connection."""
    peer = await start_peer()
    layer, recorder = make_layer()
    target = Target(Transport.TCP, "127.0.0.1", peer.port)
    await layer.connect(target)
    _, writer = await peer.connection()
    return layer, recorder, target, writer


async def _client_tls(**options: Any) -> ssl.SSLContext:
    # Loading trust anchors reads files: off the event loop, as documented.
    return await asyncio.to_thread(lambda: client_ssl_context(**options))


# UDP


async def test_udp_round_trip(make_layer: MakeLayer, udp_echo: int) -> None:
    layer, recorder = make_layer()
    target = Target(Transport.UDP, "127.0.0.1", udp_echo)

    host, port = await layer.connect(target)
    layer.send(target, OPTIONS)

    assert host == "127.0.0.1"
    assert port not in (0, udp_echo)
    assert await recorder.message() == (OPTIONS, target)
    stats = layer.stats
    assert (stats.messages_out, stats.messages_in) == (1, 1)
    assert stats.bytes_out == stats.bytes_in == len(OPTIONS)


async def test_udp_socket_is_shared_by_targets(make_layer: MakeLayer, udp_echo: int) -> None:
    layer, _ = make_layer()

    first = await layer.connect(Target(Transport.UDP, "127.0.0.1", udp_echo))
    second = await layer.connect(Target(Transport.UDP, "127.0.0.1", udp_echo + 1))

    assert first == second


async def test_udp_crlf_keepalives_are_counted_not_delivered(
    make_layer: MakeLayer, udp_echo: int
) -> None:
    layer, recorder = make_layer()
    target = Target(Transport.UDP, "127.0.0.1", udp_echo)
    await layer.connect(target)

    layer.send(target, b"\r\n\r\n")
    layer.send(target, OPTIONS)

    # Datagrams on loopback arrive in order: the keep-alive has been seen by now.
    assert await recorder.message() == (OPTIONS, target)
    assert recorder.messages.empty()
    assert layer.stats.keepalives_seen == 1
    assert layer.stats.messages_in == 1


async def test_udp_datagram_from_any_source_is_delivered(
    make_layer: MakeLayer, udp_echo: int
) -> None:
    layer, recorder = make_layer()
    _, local_port = await layer.connect(Target(Transport.UDP, "127.0.0.1", udp_echo))
    stranger, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=("127.0.0.1", local_port)
    )
    echo = Target(Transport.UDP, "127.0.0.1", udp_echo)
    try:
        stranger_target = Target(Transport.UDP, "127.0.0.1", stranger.get_extra_info("sockname")[1])
        # Alternating sources: each datagram names the peer it came from.
        for _ in range(2):
            stranger.sendto(NOTIFY)
            assert await recorder.message() == (NOTIFY, stranger_target)
            layer.send(echo, OPTIONS)
            assert await recorder.message() == (OPTIONS, echo)
        # Leading CRLFs before a message do not make it a keep-alive.
        stranger.sendto(b"\r\n" + NOTIFY)
        assert await recorder.message() == (b"\r\n" + NOTIFY, stranger_target)
    finally:
        stranger.close()


async def test_udp_datagrams_queued_on_the_socket_are_read_in_one_turn(
    make_layer: MakeLayer, udp_echo: int
) -> None:
    layer, recorder = make_layer()
    _, local_port = await layer.connect(Target(Transport.UDP, "127.0.0.1", udp_echo))
    burst = 10
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for _ in range(burst):
            # Non-blocking on loopback: each datagram is in our socket's queue on return.
            sender.sendto(NOTIFY, ("127.0.0.1", local_port))
    # Each turn of the loop polls the sockets once; the first that finds ours readable
    # delivers everything it holds (a burst of NOTIFYs is answered at once, not a turn each).
    for _ in range(3):
        await asyncio.sleep(0)
        if recorder.messages.qsize():
            break
    assert recorder.messages.qsize() == burst


async def test_udp_over_ipv6_loopback(make_layer: MakeLayer) -> None:
    loop = asyncio.get_running_loop()
    echo, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("::1", 0))
    try:
        layer, recorder = make_layer()
        target = Target(Transport.UDP, "::1", echo.get_extra_info("sockname")[1])

        host, _ = await layer.connect(target)
        layer.send(target, OPTIONS)

        assert host == "::1"
        assert await recorder.message() == (OPTIONS, target)
    finally:
        echo.close()


async def test_udp_send_without_socket_is_a_local_error(make_layer: MakeLayer) -> None:
    layer, _ = make_layer()

    with pytest.raises(LocalProtocolError):
        layer.send(Target(Transport.UDP, "127.0.0.1", 5060), OPTIONS)

    assert layer.stats.messages_out == 0


# TCP


async def test_tcp_round_trip_over_one_connection(
    make_layer: MakeLayer, start_peer: StartPeer
) -> None:
    peer = await start_peer()
    layer, recorder = make_layer()
    target = Target(Transport.TCP, "127.0.0.1", peer.port)

    local = await layer.connect(target)
    layer.send(target, OPTIONS)
    reader, writer = await peer.connection()
    received = await asyncio.wait_for(reader.readexactly(len(OPTIONS)), BOUND)
    writer.write(NOTIFY)

    assert local == writer.get_extra_info("peername")[:2]
    assert received == OPTIONS
    # What arrives on the connection names it, so that answers go back over it.
    assert await recorder.message() == (NOTIFY, target)


async def test_tcp_two_messages_in_one_segment(
    make_layer: MakeLayer, start_peer: StartPeer
) -> None:
    _, recorder, target, writer = await tcp_flow(make_layer, start_peer)

    writer.write(NOTIFY + OPTIONS)

    assert await recorder.message() == (NOTIFY, target)
    assert await recorder.message() == (OPTIONS, target)


async def test_tcp_one_message_in_three_segments(
    make_layer: MakeLayer, start_peer: StartPeer
) -> None:
    layer, recorder, target, writer = await tcp_flow(make_layer, start_peer)

    for part in (NOTIFY[:10], NOTIFY[10:-3], NOTIFY[-3:]):
        writer.write(part)
        await writer.drain()

    assert await recorder.message() == (NOTIFY, target)
    assert layer.stats.messages_in == 1


async def test_tcp_connection_is_reused(make_layer: MakeLayer, start_peer: StartPeer) -> None:
    peer = await start_peer()
    layer, _ = make_layer()
    target = Target(Transport.TCP, "127.0.0.1", peer.port)

    together = await asyncio.gather(layer.connect(target), layer.connect(target))
    layer.send(target, OPTIONS)
    again = await layer.connect(target)
    layer.send(target, NOTIFY)
    reader, _ = await peer.connection()
    received = await asyncio.wait_for(reader.readexactly(len(OPTIONS + NOTIFY)), BOUND)

    assert together[0] == together[1] == again
    assert received == OPTIONS + NOTIFY
    assert peer.accepted.empty()


async def test_tcp_keepalive_pong_is_counted(make_layer: MakeLayer, start_peer: StartPeer) -> None:
    layer, recorder, target, writer = await tcp_flow(make_layer, start_peer)

    writer.write(b"\r\n" + OPTIONS)

    assert await recorder.message() == (OPTIONS, target)
    assert layer.stats.keepalives_seen == 1


async def test_tcp_notify_as_kamailio_writes_it_keeps_the_connection(
    make_layer: MakeLayer, start_peer: StartPeer
) -> None:
    layer, recorder, target, writer = await tcp_flow(make_layer, start_peer)

    writer.write(KAMAILIO_NOTIFY_PIDF + KAMAILIO_NOTIFY_EMPTY[:100])
    writer.write(KAMAILIO_NOTIFY_EMPTY[100:])

    assert await recorder.message() == (KAMAILIO_NOTIFY_PIDF, target)
    assert await recorder.message() == (KAMAILIO_NOTIFY_EMPTY, target)
    assert recorder.losses.empty()
    assert layer.stats.malformed_dropped == 0


async def test_tcp_server_close_reports_flow_lost(
    make_layer: MakeLayer, start_peer: StartPeer
) -> None:
    peer = await start_peer()
    layer, recorder = make_layer()
    target = Target(Transport.TCP, "127.0.0.1", peer.port)
    await layer.connect(target)
    _, writer = await peer.connection()

    writer.close()

    assert await recorder.loss() == (target, None)
    # The flow is gone: sending reports it lost again instead of writing into nothing.
    layer.send(target, OPTIONS)
    lost, exc = await recorder.loss()
    assert lost == target
    assert isinstance(exc, ConnectionError)
    # The next connect opens a fresh connection.
    await layer.connect(target)
    assert await peer.connection()


async def test_tcp_unframeable_stream_closes_the_connection(
    make_layer: MakeLayer, start_peer: StartPeer
) -> None:
    peer = await start_peer()
    layer, recorder = make_layer()
    target = Target(Transport.TCP, "127.0.0.1", peer.port)
    await layer.connect(target)
    reader, writer = await peer.connection()

    writer.write(OPTIONS + b"OPTIONS sip:x SIP/2.0\r\n\r\n" + OPTIONS)

    assert await recorder.message() == (OPTIONS, target)
    lost, exc = await recorder.loss()
    assert lost == target
    assert isinstance(exc, RemoteProtocolError)
    assert layer.stats.malformed_dropped == 1
    assert recorder.messages.empty()
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(), BOUND) == b""


async def test_tcp_send_without_connection_reports_flow_lost(make_layer: MakeLayer) -> None:
    layer, recorder = make_layer()
    target = Target(Transport.TCP, "127.0.0.1", 5060)

    layer.send(target, OPTIONS)

    lost, exc = await recorder.loss()
    assert lost == target
    assert isinstance(exc, ConnectionError)
    assert layer.stats.messages_out == 0


async def test_tcp_connect_refused(make_layer: MakeLayer, start_peer: StartPeer) -> None:
    # A port nobody listens on any more.
    peer = await start_peer()
    server, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    closed_port = server.get_extra_info("sockname")[1]
    server.close()
    layer, _ = make_layer()

    with pytest.raises(ConnectionRefusedError):
        await layer.connect(Target(Transport.TCP, "127.0.0.1", closed_port))
    # A failed connect leaves nothing behind: the next one to a live peer works.
    await layer.connect(Target(Transport.TCP, "127.0.0.1", peer.port))


async def test_connect_needs_an_ip_address(make_layer: MakeLayer) -> None:
    layer, _ = make_layer()

    with pytest.raises(LocalProtocolError):
        await layer.connect(Target(Transport.TCP, "localhost", 5060))
    with pytest.raises(LocalProtocolError):
        await layer.connect(Target(Transport.UDP, "sip.test", 5060))


async def test_close_is_idempotent_and_final(
    make_layer: MakeLayer, start_peer: StartPeer, udp_echo: int
) -> None:
    peer = await start_peer()
    layer, recorder = make_layer()
    target = Target(Transport.TCP, "127.0.0.1", peer.port)
    await layer.connect(target)
    await layer.connect(Target(Transport.UDP, "127.0.0.1", udp_echo))
    reader, _ = await peer.connection()

    await layer.close()
    await layer.close()

    assert await asyncio.wait_for(reader.read(), BOUND) == b""
    # A deliberate close is not a lost flow.
    assert recorder.losses.empty()
    with pytest.raises(LocalProtocolError):
        layer.send(target, OPTIONS)
    with pytest.raises(LocalProtocolError):
        await layer.connect(target)


# TLS


async def test_tls_with_ca_file_round_trip(
    make_layer: MakeLayer, start_peer: StartPeer, server_tls: ssl.SSLContext, tls_files: TlsFiles
) -> None:
    peer = await start_peer(server_tls)
    layer, recorder = make_layer(ssl_context=await _client_tls(ca_file=str(tls_files.ca_file)))
    target = Target(Transport.TLS, "127.0.0.1", peer.port, server_name="sip.test")

    await layer.connect(target)
    layer.send(target, OPTIONS)
    reader, writer = await peer.connection()
    received = await asyncio.wait_for(reader.readexactly(len(OPTIONS)), BOUND)
    writer.write(NOTIFY)

    assert received == OPTIONS
    assert await recorder.message() == (NOTIFY, target)


async def test_tls_checks_the_ip_without_server_name(
    make_layer: MakeLayer, start_peer: StartPeer, server_tls: ssl.SSLContext, tls_files: TlsFiles
) -> None:
    peer = await start_peer(server_tls)
    layer, _ = make_layer(ssl_context=await _client_tls(ca_file=str(tls_files.ca_file)))

    await layer.connect(Target(Transport.TLS, "127.0.0.1", peer.port))

    assert await peer.connection()


async def test_tls_untrusted_certificate_is_refused(
    make_layer: MakeLayer, start_peer: StartPeer, server_tls: ssl.SSLContext
) -> None:
    peer = await start_peer(server_tls)
    layer, _ = make_layer(ssl_context=await _client_tls())

    with pytest.raises(ssl.SSLCertVerificationError, match=r"self-signed|unable to get local"):
        await layer.connect(Target(Transport.TLS, "127.0.0.1", peer.port, "sip.test"))


async def test_tls_hostname_mismatch_is_refused(
    make_layer: MakeLayer, start_peer: StartPeer, server_tls: ssl.SSLContext, tls_files: TlsFiles
) -> None:
    peer = await start_peer(server_tls)
    layer, _ = make_layer(ssl_context=await _client_tls(ca_file=str(tls_files.ca_file)))

    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        await layer.connect(Target(Transport.TLS, "127.0.0.1", peer.port, "other.test"))


async def test_tls_without_verification_accepts_any_certificate(
    make_layer: MakeLayer, start_peer: StartPeer, server_tls: ssl.SSLContext
) -> None:
    peer = await start_peer(server_tls)
    layer, recorder = make_layer(ssl_context=await _client_tls(verify=False))
    target = Target(Transport.TLS, "127.0.0.1", peer.port, "other.test")

    await layer.connect(target)
    _, writer = await peer.connection()
    writer.write(OPTIONS)

    assert await recorder.message() == (OPTIONS, target)


async def test_tls_needs_an_ssl_context(make_layer: MakeLayer) -> None:
    layer, _ = make_layer()

    with pytest.raises(LocalProtocolError):
        await layer.connect(Target(Transport.TLS, "127.0.0.1", 5061))


async def test_tls_handshake_is_bounded(make_layer: MakeLayer, start_peer: StartPeer) -> None:
    # A plain TCP server never answers the TLS hello.
    peer = await start_peer()
    layer, _ = make_layer(ssl_context=await _client_tls(verify=False), connect_timeout=0.3)

    with pytest.raises(TimeoutError):
        await layer.connect(Target(Transport.TLS, "127.0.0.1", peer.port))


async def test_close_ends_a_pending_connect(make_layer: MakeLayer, start_peer: StartPeer) -> None:
    # A plain TCP server never answers the TLS hello, so the connect stays pending.
    peer = await start_peer()
    layer, recorder = make_layer(ssl_context=await _client_tls(verify=False))
    connecting = asyncio.create_task(layer.connect(Target(Transport.TLS, "127.0.0.1", peer.port)))
    await peer.connection()

    await asyncio.wait_for(layer.close(), BOUND)

    with pytest.raises(LocalProtocolError):
        await asyncio.wait_for(connecting, BOUND)
    assert recorder.losses.empty()


# Listening for connections a server opens to us


async def _open_to(
    port: int, ssl_context: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    connection = asyncio.open_connection("127.0.0.1", port, ssl=ssl_context)
    return await asyncio.wait_for(connection, BOUND)


async def test_tcp_listener_delivers_requests_and_answers_go_back_on_the_connection(
    make_layer: MakeLayer,
) -> None:
    layer, recorder = make_layer()
    host, port = await layer.listen(Transport.TCP, "127.0.0.1")
    reader, writer = await _open_to(port)
    local_port = writer.get_extra_info("sockname")[1]

    writer.write(KAMAILIO_NOTIFY_PIDF[:50])
    writer.write(KAMAILIO_NOTIFY_PIDF[50:])
    data, source = await recorder.message()
    layer.send(source, OPTIONS)
    answer = await asyncio.wait_for(reader.readexactly(len(OPTIONS)), BOUND)
    writer.close()

    assert host == "127.0.0.1"
    assert await layer.listen(Transport.TCP, "127.0.0.1") == (host, port)
    assert data == KAMAILIO_NOTIFY_PIDF
    assert source == Target(Transport.TCP, "127.0.0.1", local_port)
    assert answer == OPTIONS
    # A connection the server opened is the server's to reopen: its end is not a lost flow.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(recorder.losses.get(), 0.2)
    layer.send(source, OPTIONS)
    lost, exc = await recorder.loss()
    assert lost == source
    assert isinstance(exc, ConnectionError)


async def test_tls_listener_serves_a_self_signed_certificate(make_layer: MakeLayer) -> None:
    server_context = await asyncio.to_thread(self_signed_server_context)
    layer, recorder = make_layer()
    _, port = await layer.listen(Transport.TLS, "127.0.0.1", server_context)
    # What a SIP server does when it opens a connection to a user agent: no verification.
    _, writer = await _open_to(port, await _client_tls(verify=False))

    writer.write(KAMAILIO_NOTIFY_EMPTY)

    data, source = await recorder.message()
    assert (data, source.transport) == (KAMAILIO_NOTIFY_EMPTY, Transport.TLS)
    assert await asyncio.to_thread(self_signed_server_context) is server_context
    certificate = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    assert certificate


async def test_listening_needs_a_stream_transport_and_tls_a_context(
    make_layer: MakeLayer,
) -> None:
    layer, _ = make_layer()
    for transport in (Transport.UDP, Transport.TLS):
        with pytest.raises(LocalProtocolError):
            await layer.listen(transport, "127.0.0.1")


async def test_close_ends_the_listener_and_its_connections(make_layer: MakeLayer) -> None:
    layer, _ = make_layer()
    _, port = await layer.listen(Transport.TCP, "127.0.0.1")
    reader, _ = await _open_to(port)

    await layer.close()

    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(), BOUND) == b""
    with pytest.raises(OSError, match="Connect call failed"):
        await _open_to(port)
    with pytest.raises(LocalProtocolError):
        await layer.listen(Transport.TCP, "127.0.0.1")
