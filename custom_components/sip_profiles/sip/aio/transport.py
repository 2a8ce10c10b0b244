"""The flows of one user agent: a shared UDP socket per address family and TCP/TLS connections.

The layer moves bytes only. Every message received is handed up with the target it came
from; the core decides what to send, when to send keep-alives and when to give up on a server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
import ipaddress
import logging
import socket
import ssl
from typing import Any

from ..errors import LocalProtocolError, RemoteProtocolError
from ..message import StreamFramer
from ..target import Target, Transport

_LOGGER = logging.getLogger(__name__)

# A CRLF keep-alive (RFC 5626 §3.5.1) carries nothing but these bytes.
_KEEPALIVE_BYTES = b"\r\n"
MAX_DATAGRAM_SIZE = 65535
MAX_DATAGRAMS_PER_TURN = 64
"""Datagrams read from one socket before the event loop serves others again."""


@dataclass(frozen=True, slots=True)
class TransportStats:
    """Counters of one transport layer since it was created.

    Messages are UDP datagrams or whole messages framed out of a TCP/TLS stream.
    """

    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    malformed_dropped: int = 0
    keepalives_seen: int = 0


@dataclass(slots=True)
class _Counters:
    """The mutable tally behind ``TransportLayer.stats``."""

    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    malformed_dropped: int = 0
    keepalives_seen: int = 0


class TransportLayer:
    """Every flow of one user agent: a UDP socket and TCP/TLS connections, reused per target.

    ``on_message(data, target)`` receives each whole message; its target is where an answer
    goes back: the sender's address for UDP, the very connection for TCP/TLS (so equal to the
    target that was connected). ``on_flow_lost(target, exc)`` reports a TCP/TLS connection
    that ended (``exc`` is None for an orderly close by the peer); reconnecting is up to the
    caller. Flows closed by ``close()`` are not reported.

    ``listen`` opens a TCP or TLS listening socket for the connections a server opens to us;
    what arrives on one is delivered like the rest, with the connection's peer as its target,
    and ``send`` to that target answers over it. Their loss is not reported: the server opens
    a new one when it needs to.
    """

    def __init__(
        self,
        *,
        on_message: Callable[[bytes, Target], None],
        on_flow_lost: Callable[[Target, Exception | None], None],
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        """Create the layer; no socket is opened before the first ``connect``."""
        self._on_message = on_message
        self._on_flow_lost = on_flow_lost
        self._ssl_context = ssl_context
        self._connect_timeout = connect_timeout
        self._counters = _Counters()
        # UDP sockets by (address family, bound to loopback).
        self._datagrams: dict[tuple[socket.AddressFamily, bool], _DatagramFlow] = {}
        self._streams: dict[Target, _StreamFlow] = {}
        self._connecting: dict[Target, asyncio.Task[_StreamFlow]] = {}
        self._listeners: dict[tuple[Transport, str], asyncio.Server] = {}
        self._accepted: dict[Target, _StreamFlow] = {}
        self._closed = False

    @property
    def stats(self) -> TransportStats:
        """A snapshot of the counters."""
        counters = self._counters
        return TransportStats(
            messages_in=counters.messages_in,
            messages_out=counters.messages_out,
            bytes_in=counters.bytes_in,
            bytes_out=counters.bytes_out,
            malformed_dropped=counters.malformed_dropped,
            keepalives_seen=counters.keepalives_seen,
        )

    async def connect(self, target: Target) -> tuple[str, int]:
        """Ensure a flow to ``target`` and return its local (host, port) for Via and Contact.

        UDP shares one socket per address family (bound to the loopback address for a loopback
        target, else to the wildcard one); TCP and TLS open a connection or reuse the open one.
        TLS checks the certificate against ``target.server_name`` when set, else the address.
        ``target.host`` must be an IP address (names are resolved by ``locate``).

        Raises OSError, ssl.SSLError or TimeoutError (after ``connect_timeout``) when the
        flow cannot be opened, and LocalProtocolError when the layer is closed, the host is not
        an IP address or TLS is asked for without an SSL context.
        """
        if self._closed:
            raise LocalProtocolError("the transport layer is closed")
        address = _ip_address(target.host)
        if target.transport is Transport.UDP:
            flow = self._datagram_flow(address)
            return flow.local_address(target)
        if target.transport is Transport.TLS and self._ssl_context is None:
            raise LocalProtocolError(f"TLS to {target} needs an SSL context")
        stream = self._streams.get(target)
        if stream is None:
            task = self._connecting.get(target)
            if task is None or task.done():
                task = asyncio.get_running_loop().create_task(self._open_stream(target))
                self._connecting[target] = task
                task.add_done_callback(self._forget_connecting)
            # Several callers may wait for one connection; one of them giving up must not
            # cancel it for the others.
            try:
                stream = await asyncio.shield(task)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if task.cancelled() and not (current and current.cancelling()):
                    raise LocalProtocolError("the transport layer was closed") from None
                raise
        return stream.local_address

    async def listen(
        self, transport: Transport, host: str, ssl_context: ssl.SSLContext | None = None
    ) -> tuple[str, int]:
        """Ensure a socket on ``host`` that accepts ``transport`` connections; return its address.

        One per transport and host, on a port the system picks. TLS needs the server-side
        ``ssl_context``. Raises OSError when the socket cannot be opened, and LocalProtocolError
        when the layer is closed or the transport is not TCP or TLS (or TLS has no context).
        """
        if self._closed:
            raise LocalProtocolError("the transport layer is closed")
        if not transport.reliable or (transport is Transport.TLS and ssl_context is None):
            raise LocalProtocolError(f"cannot listen for {transport.value} without a context")
        key = (transport, str(_ip_address(host)))
        server = self._listeners.get(key)
        if server is None:
            server = await self._open_listener(transport, host, ssl_context)
            # A concurrent listen may have opened one meanwhile; keep one.
            kept = self._listeners.setdefault(key, server)
            if kept is not server:
                server.close()
            server = kept
        bound_host, port = server.sockets[0].getsockname()[:2]
        return bound_host, port

    async def _open_listener(
        self, transport: Transport, host: str, ssl_context: ssl.SSLContext | None
    ) -> asyncio.Server:
        server = await asyncio.get_running_loop().create_server(
            lambda: _AcceptedFlow(
                transport, self._counters, self._deliver, self._stream_ended, self._accept
            ),
            host,
            0,
            ssl=ssl_context,
            ssl_handshake_timeout=self._connect_timeout if ssl_context else None,
            ssl_shutdown_timeout=self._connect_timeout if ssl_context else None,
        )
        if self._closed:
            server.close()
            raise LocalProtocolError("the transport layer is closed")
        return server

    def send(self, target: Target, data: bytes) -> None:
        """Send ``data`` over the flow to ``target``.

        UDP goes out of the socket of the target's address family. A TCP/TLS target without an
        open connection is reported through ``on_flow_lost`` (soon, not from within this call).
        Raises LocalProtocolError when the layer is closed or no UDP socket can reach the target.
        """
        if self._closed:
            raise LocalProtocolError("the transport layer is closed")
        if target.transport is Transport.UDP:
            self._datagram_for(target).send(target, data)
        else:
            stream = self._streams.get(target) or self._accepted.get(target)
            if stream is None:
                lost = ConnectionError(f"no connection to {target}")
                asyncio.get_running_loop().call_soon(self._on_flow_lost, target, lost)
                return
            stream.send(data)
        self._counters.messages_out += 1
        self._counters.bytes_out += len(data)

    async def close(self) -> None:
        """Close every flow and wait until they are closed; closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        for task in self._connecting.values():
            task.cancel()
        listeners = list(self._listeners.values())
        self._listeners.clear()
        for server in listeners:
            server.close()
        datagrams = list(self._datagrams.values())
        streams = [*self._streams.values(), *self._accepted.values()]
        self._datagrams.clear()
        self._streams.clear()
        self._accepted.clear()
        flows: list[_DatagramFlow | _StreamFlow] = [*datagrams, *streams]
        for flow in flows:
            flow.close()
        for server in listeners:
            # Also the connections still in their TLS handshake, which no flow holds yet.
            server.close_clients()
        closing: list[Awaitable[object]] = [*self._connecting.values()]
        closing += (flow.closed for flow in flows)
        closing += (server.wait_closed() for server in listeners)
        try:
            async with asyncio.timeout(self._connect_timeout):
                await asyncio.gather(*closing, return_exceptions=True)
        except TimeoutError:
            # A peer that never answers the TLS close_notify must not hold us up.
            for stream in streams:
                stream.abort()
            for server in listeners:
                server.abort_clients()
            await asyncio.gather(*closing, return_exceptions=True)

    def _datagram_flow(
        self, address: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> _DatagramFlow:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        key = (family, address.is_loopback)
        flow = self._datagrams.get(key)
        if flow is None:
            if family == socket.AF_INET6:
                bind_host = "::1" if address.is_loopback else "::"
            else:
                bind_host = "127.0.0.1" if address.is_loopback else "0.0.0.0"  # noqa: S104
            flow = _DatagramFlow.open(family, bind_host, self._counters, self._deliver)
            self._datagrams[key] = flow
        return flow

    def _datagram_for(self, target: Target) -> _DatagramFlow:
        address = _ip_address(target.host)
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        flow = self._datagrams.get((family, address.is_loopback))
        if flow is None:
            # A sender may reach us on the other socket of its family (a loopback peer
            # writing to the wildcard socket); answer from that one.
            flow = self._datagrams.get((family, not address.is_loopback))
        if flow is None:
            raise LocalProtocolError(f"no UDP socket for {target}; connect() it first")
        return flow

    def _forget_connecting(self, task: asyncio.Task[_StreamFlow]) -> None:
        for target, connecting in self._connecting.items():
            if connecting is task:
                del self._connecting[target]
                return

    async def _open_stream(self, target: Target) -> _StreamFlow:
        loop = asyncio.get_running_loop()
        tls = self._ssl_context if target.transport is Transport.TLS else None
        async with asyncio.timeout(self._connect_timeout):
            _, stream = await loop.create_connection(
                lambda: _StreamFlow(target, self._counters, self._deliver, self._stream_ended),
                target.host,
                target.port,
                ssl=tls,
                server_hostname=(target.server_name or target.host) if tls else None,
                ssl_shutdown_timeout=self._connect_timeout if tls else None,
            )
        if stream.closed.done():
            # The peer hung up before we got here; nobody would report that later.
            raise ConnectionError(f"{target} closed the connection at once")
        self._streams[target] = stream
        return stream

    def _deliver(self, data: bytes, source: Target) -> None:
        self._counters.messages_in += 1
        self._on_message(data, source)

    def _accept(self, stream: _StreamFlow) -> None:
        if self._closed:
            stream.abort()
            return
        previous = self._accepted.get(stream.target)
        self._accepted[stream.target] = stream
        if previous is not None:
            previous.close()

    def _stream_ended(self, stream: _StreamFlow, exc: Exception | None) -> None:
        # Only the connection currently registered for the target is reported: one closed
        # by close() (or never registered) ends silently, and so does one a peer opened.
        if self._streams.get(stream.target) is stream:
            del self._streams[stream.target]
            self._on_flow_lost(stream.target, exc)
        elif self._accepted.get(stream.target) is stream:
            del self._accepted[stream.target]


def _ip_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        raise LocalProtocolError(f"target host {host!r} is not an IP address") from None


class _DatagramFlow:
    """A shared UDP socket, read until it is empty whenever it is readable.

    asyncio's datagram transport reads one datagram per turn of the event loop. A burst of
    NOTIFYs queued on one socket would then wait a turn each, and the turns of a busy Home
    Assistant are long: their answers would leave after the server's retransmission timer.
    """

    def __init__(
        self,
        sock: socket.socket,
        counters: _Counters,
        deliver: Callable[[bytes, Target], None],
    ) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._counters = counters
        self._deliver = deliver
        # Datagrams mostly come from one peer: its Target is made once, not per datagram.
        self._last_source: tuple[tuple[str | Any, int], Target] | None = None
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self._loop.add_reader(sock.fileno(), self._read_ready)

    @classmethod
    def open(
        cls,
        family: socket.AddressFamily,
        bind_host: str,
        counters: _Counters,
        deliver: Callable[[bytes, Target], None],
    ) -> _DatagramFlow:
        """A socket bound to a free port of ``bind_host``, read from now on."""
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((bind_host, 0))
        except OSError:
            sock.close()
            raise
        return cls(sock, counters, deliver)

    def _read_ready(self) -> None:
        for _ in range(MAX_DATAGRAMS_PER_TURN):
            try:
                data, addr = self._sock.recvfrom(MAX_DATAGRAM_SIZE)
            except BlockingIOError, InterruptedError:
                return
            except OSError as exc:
                # ICMP errors name no flow; the core's timers notice the silence and fail over.
                _LOGGER.debug("UDP error: %s", exc)
                return
            self._received(data, addr)

    def _received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        counters = self._counters
        counters.bytes_in += len(data)
        if not data:
            counters.malformed_dropped += 1
        elif data[0] in _KEEPALIVE_BYTES and not data.strip(_KEEPALIVE_BYTES):
            counters.keepalives_seen += 1
        else:
            last = self._last_source
            if last is not None and last[0] == addr:
                source = last[1]
            else:
                # IPv6 addresses come as (host, port, flowinfo, scope_id).
                source = Target(Transport.UDP, str(addr[0]), int(addr[1]))
                self._last_source = (addr, source)
            self._deliver(data, source)

    def local_address(self, target: Target) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        if ipaddress.ip_address(host).is_unspecified:
            host = _route_source(target)
        return host, port

    def send(self, target: Target, data: bytes) -> None:
        try:
            self._sock.sendto(data, (target.host, target.port))
        except OSError as exc:
            # A full send buffer or an unreachable network loses the datagram, as the network
            # itself may: the core's retransmissions and timers cover both.
            _LOGGER.debug("UDP send to %s failed: %s", target, exc)

    def close(self) -> None:
        if self.closed.done():
            return
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self.closed.set_result(None)


def _route_source(target: Target) -> str:
    """The local address the kernel would send from to reach ``target``.

    Connecting a UDP socket only picks a route; no packet is sent and no name is resolved.
    """
    family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((target.host, target.port))
        host: str = probe.getsockname()[0]
    return host


class _StreamFlow(asyncio.Protocol):
    """One TCP or TLS connection, framing the stream into messages."""

    def __init__(
        self,
        target: Target,
        counters: _Counters,
        deliver: Callable[[bytes, Target], None],
        ended: Callable[[_StreamFlow, Exception | None], None],
    ) -> None:
        self.target = target
        self._counters = counters
        self._deliver = deliver
        self._ended = ended
        self._framer = StreamFramer()
        self._transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def local_address(self) -> tuple[str, int]:
        assert self._transport is not None
        host, port = self._transport.get_extra_info("sockname")[:2]
        return host, port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        counters = self._counters
        counters.bytes_in += len(data)
        framer = self._framer
        keepalives = framer.keepalives
        framer.feed(data)
        try:
            while (message := framer.next_message()) is not None:
                self._deliver(message, self.target)
        except RemoteProtocolError as exc:
            # Where the next message starts is unknown: guessing would read body octets as a
            # start line, so the connection goes and whoever opened it opens a new one. The
            # messages before the break were delivered.
            counters.malformed_dropped += 1
            _LOGGER.debug("closing %s: %s", self.target, exc)
            assert self._transport is not None
            self._transport.abort()
            self._ended(self, exc)
        finally:
            counters.keepalives_seen += framer.keepalives - keepalives

    def eof_received(self) -> bool:
        # Returning False closes our side too: SIP has no use for half-open connections.
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(self, exc)
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)

    def close(self) -> None:
        assert self._transport is not None
        self._transport.close()

    def abort(self) -> None:
        assert self._transport is not None
        self._transport.abort()


class _AcceptedFlow(_StreamFlow):
    """A TCP or TLS connection a peer opened to one of our listening sockets."""

    def __init__(
        self,
        transport: Transport,
        counters: _Counters,
        deliver: Callable[[bytes, Target], None],
        ended: Callable[[_StreamFlow, Exception | None], None],
        accept: Callable[[_StreamFlow], None],
    ) -> None:
        # The peer is known once connected; until then the target names no one.
        super().__init__(Target(transport, "", 0), counters, deliver, ended)
        self._accept = accept

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        host, port = transport.get_extra_info("peername")[:2]
        self.target = Target(self.target.transport, str(host), int(port))
        self._accept(self)
