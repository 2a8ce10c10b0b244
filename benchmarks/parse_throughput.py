"""Messages per second of our SIP parser against the ``sipmessage`` package.

Run with ``python -m benchmarks.parse_throughput [rounds [trials]]`` after installing
``requirements_bench.txt``. Both parsers read the same fields of every message: the start
line, the top Via's branch, CSeq, Call-ID, the From and To tags and the Contacts.
"""

from __future__ import annotations

from collections.abc import Callable
import csv
from pathlib import Path
import statistics
import sys
import time

import sipmessage

from custom_components.sip_profiles.sip.message import Request, parse_message

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "rfc4475"

_PIDF = (
    '<?xml version="1.0" encoding="UTF-8"?>\r\n'
    '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:bob@example.com">\r\n'
    '<tuple id="t1"><status><basic>open</basic></status></tuple>\r\n'
    "</presence>\r\n"
)
_VIA = "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport=5060;received=192.0.2.10"
TYPICAL = {
    "REGISTER": (
        b"REGISTER sip:example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport\r\n"
        b"Max-Forwards: 70\r\n"
        b'From: "Alice" <sip:alice@example.com>;tag=1928301774\r\n'
        b'To: "Alice" <sip:alice@example.com>\r\n'
        b"Call-ID: a84b4c76e66710@192.0.2.10\r\n"
        b"CSeq: 314159 REGISTER\r\n"
        b"Contact: <sip:alice@192.0.2.10:5060;transport=udp>;expires=3600\r\n"
        b"User-Agent: sip_profiles/0.1\r\n"
        b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, SUBSCRIBE\r\n"
        b"Content-Length: 0\r\n\r\n"
    ),
    "401 Unauthorized": (
        "SIP/2.0 401 Unauthorized\r\n"
        f"{_VIA}\r\n"
        'From: "Alice" <sip:alice@example.com>;tag=1928301774\r\n'
        'To: "Alice" <sip:alice@example.com>;tag=37GkEhwl6\r\n'
        "Call-ID: a84b4c76e66710@192.0.2.10\r\n"
        "CSeq: 314159 REGISTER\r\n"
        'WWW-Authenticate: Digest realm="example.com", nonce="ea9c8e88df84f1cec4341ae6cbe5a359", '
        'opaque="", algorithm=MD5, qop="auth"\r\n'
        "Server: registrar\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode(),
    "200 OK (REGISTER)": (
        "SIP/2.0 200 OK\r\n"
        f"{_VIA}\r\n"
        'From: "Alice" <sip:alice@example.com>;tag=1928301774\r\n'
        'To: "Alice" <sip:alice@example.com>;tag=37GkEhwl6\r\n'
        "Call-ID: a84b4c76e66710@192.0.2.10\r\n"
        "CSeq: 314160 REGISTER\r\n"
        "Contact: <sip:alice@192.0.2.10:5060;transport=udp>;expires=3600, "
        "<sip:alice@198.51.100.7:5062;transport=tcp>;expires=1200;q=0.5\r\n"
        "Contact: <sip:alice@[2001:db8::7]:5060>;expires=600\r\n"
        "Date: Sat, 21 Nov 2026 12:00:00 GMT\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode(),
    "NOTIFY": (
        "NOTIFY sip:alice@192.0.2.10:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKnashds8\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:bob@example.com>;tag=ffd2\r\n"
        'To: "Alice" <sip:alice@example.com>;tag=xfg9\r\n'
        "Call-ID: 2010b@192.0.2.10\r\n"
        "CSeq: 7 NOTIFY\r\n"
        "Contact: <sip:bob@203.0.113.5:5060>\r\n"
        "Event: presence\r\n"
        "Subscription-State: active;expires=3599\r\n"
        "Content-Type: application/pidf+xml\r\n"
        f"Content-Length: {len(_PIDF)}\r\n\r\n{_PIDF}"
    ).encode(),
}


def corpus() -> list[tuple[str, bytes]]:
    """The typical messages and the RFC 4475 valid ones (when the corpus is there), named."""
    messages = list(TYPICAL.items())
    manifest = CORPUS / "MANIFEST.tsv"
    if manifest.exists():
        with manifest.open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        messages += [
            (row["file"], (CORPUS / row["file"]).read_bytes())
            for row in rows
            if row["class"] == "valid"
        ]
    return messages


def read_ours(data: bytes) -> tuple[object, ...]:
    """Parse with our parser and read the compared fields."""
    message = parse_message(data)
    start = message.method if isinstance(message, Request) else message.status
    contacts = message.contacts
    return (
        start,
        message.top_via.branch,
        message.cseq.number,
        message.call_id,
        message.from_.param("tag"),
        message.to.param("tag"),
        [str(contact.uri) for contact in contacts] if contacts != "*" else contacts,
    )


def read_sipmessage(data: bytes) -> tuple[object, ...]:
    """Parse with ``sipmessage`` and read the compared fields."""
    message = sipmessage.Message.parse(data)
    start = message.method if isinstance(message, sipmessage.Request) else message.code
    return (
        start,
        message.via[0].parameters.get("branch"),
        message.cseq.sequence,
        message.call_id,
        message.from_address.parameters.get("tag"),
        message.to_address.parameters.get("tag"),
        [str(contact.uri) for contact in message.contact],
    )


def accepted(
    read: Callable[[bytes], object], messages: list[tuple[str, bytes]]
) -> list[tuple[str, bytes]]:
    """The messages ``read`` handles without an error."""
    kept = []
    for name, data in messages:
        try:
            read(data)
        except Exception:  # any failure leaves the message out of the comparison
            continue
        kept.append((name, data))
    return kept


def timed(
    read: Callable[[bytes], object], messages: list[bytes], rounds: int
) -> tuple[float, float]:
    """Wall-clock and CPU seconds ``read`` takes for ``rounds`` passes over the messages."""
    wall = time.perf_counter()
    cpu = time.process_time()
    for _ in range(rounds):
        for data in messages:
            read(data)
    return time.perf_counter() - wall, time.process_time() - cpu


def race(
    readers: list[Callable[[bytes], object]], messages: list[bytes], rounds: int, trials: int
) -> list[tuple[float, float]]:
    """Median wall-clock and CPU seconds of each reader over interleaved trials, after a warm-up.

    Interleaving gives every reader the same share of whatever else the machine is doing; the
    median of many trials is steadier than the best or the mean under a varying load.
    """
    for read in readers:
        timed(read, messages, 1)
    samples: list[list[tuple[float, float]]] = [[] for _ in readers]
    for trial in range(trials):
        # Alternate which reader goes first so neither always follows the other.
        order = list(enumerate(readers))
        if trial % 2:
            order.reverse()
        for index, read in order:
            samples[index].append(timed(read, messages, rounds))
    return [
        (statistics.median(wall for wall, _ in runs), statistics.median(cpu for _, cpu in runs))
        for runs in samples
    ]


def main() -> None:
    """Print messages per second of both parsers and their ratio, overall and per message."""
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    trials = int(sys.argv[2]) if len(sys.argv) > 2 else 21
    messages = corpus()
    # Only messages both parsers read are timed, so each does the same work.
    shared = accepted(read_sipmessage, accepted(read_ours, messages))
    print(
        f"{len(shared)} of {len(messages)} messages read by both parsers; "
        f"median of {trials} interleaved trials of {rounds} rounds each"
    )
    readers: list[Callable[[bytes], object]] = [read_ours, read_sipmessage]
    data = [message for _, message in shared]
    (ours_wall, ours_cpu), (theirs_wall, theirs_cpu) = race(readers, data, rounds, trials)
    count = rounds * len(data)
    print(f"{'':24}{'wall msg/s':>12}{'CPU msg/s':>12}")
    print(f"{'sip_profiles':24}{count / ours_wall:12.0f}{count / ours_cpu:12.0f}")
    version = f"sipmessage {sipmessage.__version__}"
    print(f"{version:24}{count / theirs_wall:12.0f}{count / theirs_cpu:12.0f}")
    print(f"{'ratio':24}{theirs_wall / ours_wall:11.2f}x{theirs_cpu / ours_cpu:11.2f}x")
    print()
    print(f"{'message':24}{'ours CPU µs':>12}{'theirs CPU µs':>15}{'ratio':>8}")
    # Fewer trials per message: the breakdown shows where the time goes, the total above counts.
    per_message_trials = max(trials // 3, 3)
    per_message_rounds = rounds * 4
    for name, message in shared:
        (_, ours), (_, theirs) = race(readers, [message], per_message_rounds, per_message_trials)
        print(
            f"{name:24}{ours / per_message_rounds * 1e6:12.1f}"
            f"{theirs / per_message_rounds * 1e6:15.1f}"
            f"{theirs / ours:7.2f}x"
        )


if __name__ == "__main__":
    main()
