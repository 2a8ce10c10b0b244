"""A second, hand-written presence source: PUBLISH from a bare UDP socket."""

from __future__ import annotations

import socket
import time

from custom_components.sip_profiles.sip.auth import Credentials, DigestClient
from custom_components.sip_profiles.sip.message import Response, parse_message
from tests.harness.kamailio import KamailioServer

WAIT = 10.0


def raw_publish(
    server: KamailioServer,
    user: str,
    body: str,
    *,
    event: str = "presence",
    content_type: str = "application/pidf+xml",
    etag: str | None = None,
    expires: int = 600,
) -> str | None:
    """PUBLISH ``body`` for ``user`` (blocking: run it in a thread); return its entity-tag.

    With ``etag`` the PUBLISH replaces that earlier publication (RFC 3903 modify), or removes
    it with ``expires=0``. Each call
    without one is a publication of its own, which the server shows together with the others.
    """
    if_match = f"SIP-If-Match: {etag}\r\n" if etag else ""
    digest = DigestClient([Credentials(user, server.accounts[user])])
    uri = server.aor(user)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(WAIT)
        port = sock.getsockname()[1]
        # Kamailio's SQLite store is sometimes locked by another of its workers: 500, try
        # again a little later.
        for cseq in range(1, 20):
            authorization = "".join(
                f"{name}: {value}\r\n"
                for name, value in digest.authorization_headers("PUBLISH", uri)
            )
            request = (
                f"PUBLISH {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKraw{cseq}{port};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <{uri}>;tag=raw{port}\r\nTo: <{uri}>\r\nCall-ID: raw-{port}\r\n"
                f"CSeq: {cseq} PUBLISH\r\nEvent: {event}\r\nExpires: {expires}\r\n"
                f"Content-Type: {content_type}\r\n{if_match}{authorization}"
                f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
            )
            sock.sendto(request.encode(), server.address("udp"))
            answer = parse_message(sock.recv(65535))
            assert isinstance(answer, Response)
            if answer.status == 200:
                return answer.headers.get("SIP-ETag")
            assert answer.status in (401, 500), answer.status
            if answer.status == 401:
                digest.handle_challenge(401, answer.headers.get_all("WWW-Authenticate"))
            else:
                time.sleep(0.02 * cseq)
    raise AssertionError("PUBLISH was not accepted")
