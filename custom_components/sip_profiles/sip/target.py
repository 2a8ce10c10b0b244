"""Where a SIP message travels: a transport and a resolved address."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Transport(StrEnum):
    """A SIP transport protocol; the value is the lower-case name used in settings."""

    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"

    @property
    def reliable(self) -> bool:
        """Whether the transport retransmits by itself (no SIP retransmission timers needed)."""
        return self is not Transport.UDP

    @property
    def via_name(self) -> str:
        """The transport token of a Via header (``SIP/2.0/UDP``)."""
        return self.value.upper()

    @property
    def default_port(self) -> int:
        """The port used when a URI names none (RFC 3261 §19.1.2)."""
        return 5061 if self is Transport.TLS else 5060


@dataclass(frozen=True, slots=True)
class Target:
    """A resolved next hop: transport, IP address and port.

    ``server_name`` is the host name the target was resolved from; TLS checks the server's
    certificate against it (SNI), and it is None for numeric hosts.
    """

    transport: Transport
    host: str
    port: int
    server_name: str | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport.value}:{host}:{self.port}"


class TargetList:
    """The next hops server location found (RFC 3263), in order, and which one is in use."""

    def __init__(self, targets: Sequence[Target]) -> None:
        """Use the first of ``targets``."""
        self._targets = list(targets)
        self._index = 0

    @property
    def current(self) -> Target:
        """Where requests go now."""
        return self._targets[self._index]

    def advance(self) -> bool:
        """Move to the next target; False (staying) when this is the last."""
        if self._index + 1 < len(self._targets):
            self._index += 1
            return True
        return False

    def rewind(self) -> bool:
        """Go back to the first target; False when there is only one."""
        self._index = 0
        return len(self._targets) > 1
