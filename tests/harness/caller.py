"""A hand-written SIP endpoint on a bare UDP socket: it calls profiles and sends them NOTIFYs.

Used against the real Kamailio: the caller sends its INVITE, CANCEL and ACK to the registrar,
which forks the call to the registered contacts of the callee, as a PBX would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
import itertools

from custom_components.sip_profiles.sip.message import Request, Response, parse_message
from tests.harness.kamailio import KamailioServer

WAIT = 10.0
_SEQUENCE = itertools.count(1)


class RawPeer(asyncio.DatagramProtocol):
    """A bare UDP socket on the loop; every message it receives is queued."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[Request | Response] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.strip():
            self.messages.put_nowait(parse_message(data))

    @property
    def host(self) -> str:
        assert self.transport is not None
        return str(self.transport.get_extra_info("sockname")[0])

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, text: str, to: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(text.encode(), to)

    async def response(self, method: str, status: int) -> Response:
        """The next response to ``method`` with ``status`` (others on the way are skipped)."""
        async with asyncio.timeout(WAIT):
            while True:
                message = await self.messages.get()
                if (
                    isinstance(message, Response)
                    and message.cseq.method == method
                    and message.status == status
                ):
                    return message


@contextlib.asynccontextmanager
async def open_peer(host: str = "127.0.0.1") -> AsyncIterator[RawPeer]:
    """A raw peer on ``host`` (any loopback address) and a free port."""
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(RawPeer, local_addr=(host, 0))
    try:
        yield peer
    finally:
        transport.close()


class Call:
    """One call of the raw peer to ``callee`` through Kamailio."""

    def __init__(self, peer: RawPeer, server: KamailioServer, callee: str) -> None:
        number = next(_SEQUENCE)
        self.peer = peer
        self.server = server
        self.uri = server.aor(callee)
        self.branch = f"z9hG4bKcall{number}x{peer.port}"
        self.call_id = f"raw-call-{number}-{peer.port}"
        self.from_ = f'"Front Door" <sip:door@sip.test>;tag=door{number}'

    def _request(self, method: str, to: str, extra: str = "", body: str = "") -> str:
        port = self.peer.port
        return (
            f"{method} {self.uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={self.branch};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: {self.from_}\r\nTo: {to}\r\n"
            f"Call-ID: {self.call_id}\r\nCSeq: 1 {method}\r\n"
            f"Contact: <sip:door@127.0.0.1:{port}>\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n{body}"
        )

    def invite(self) -> None:
        sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        self.peer.send(
            self._request("INVITE", f"<{self.uri}>", "Content-Type: application/sdp\r\n", sdp),
            self.server.address("udp"),
        )

    def cancel(self, reason: str | None) -> None:
        extra = f"Reason: {reason}\r\n" if reason else ""
        self.peer.send(self._request("CANCEL", f"<{self.uri}>", extra), self.server.address("udp"))

    def ack(self, final: Response) -> None:
        to = final.headers.get("To") or ""
        self.peer.send(self._request("ACK", to), self.server.address("udp"))


def unsolicited_notify(peer: RawPeer, request_uri: str, body: bytes) -> str:
    """A message-summary NOTIFY outside any subscription, as PBXs send to registered phones."""
    return (
        f"NOTIFY {request_uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {peer.host}:{peer.port};branch=z9hG4bKmwi{next(_SEQUENCE)};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:voicemail@sip.test>;tag=vm1\r\n"
        "To: <sip:alice@sip.test>\r\n"
        f"Call-ID: mwi-{peer.port}-{next(_SEQUENCE)}\r\nCSeq: 1 NOTIFY\r\n"
        "Event: message-summary\r\nSubscription-State: active\r\n"
        "Content-Type: application/simple-message-summary\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body.decode()}"
    )
