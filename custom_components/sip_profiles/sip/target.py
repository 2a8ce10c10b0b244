"""Where a SIP message travels: a transport, a resolved address, and our flow to it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from .uri import SipUri


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


class Flow:
    """A user agent's flow: which target it goes to, its local end, its keep-alives.

    The targets are the next hops server location found (RFC 3263), in order.
    """

    def __init__(self, targets: Sequence[Target], keepalive_interval: float | None) -> None:
        """No flow yet; the first of ``targets`` is the one to open."""
        self._targets = list(targets)
        self._index = 0
        self.local: tuple[str, int] | None = None
        """The local end of the flow, or None while there is none."""
        self.listening: tuple[str, int] | None = None
        """Where connections of the flow's transport are accepted, if anywhere."""
        self.keepalive_at: float | None = None
        self.failover_pending = False
        """A flow to the next target was asked for after the last one failed."""
        self._keepalive_interval = keepalive_interval
        self._was_lost = False

    @property
    def target(self) -> Target:
        """Where requests go now."""
        return self._targets[self._index]

    def includes_host(self, host: str) -> bool:
        """Whether ``host`` is one of the targets (our registrar or outbound proxy)."""
        return any(target.host == host for target in self._targets)

    def up(
        self, local: tuple[str, int], now: float, *, listening: tuple[str, int] | None = None
    ) -> bool:
        """The flow exists; returns whether it replaces one that was lost."""
        self.local = local
        self.listening = listening
        if self._keepalive_interval:
            self.keepalive_at = now + self._keepalive_interval
        was_lost, self._was_lost = self._was_lost, False
        return was_lost

    def drop(self, *, lost: bool) -> None:
        """The flow is gone (``lost``: it broke, rather than was left for another target)."""
        self.local = None
        self.keepalive_at = None
        self._was_lost = self._was_lost or lost

    def keepalive_due(self, now: float) -> bool:
        """Whether a keep-alive is to be sent at ``now`` (the next one is then scheduled)."""
        if self.keepalive_at is None or now < self.keepalive_at or self.local is None:
            return False
        self.keepalive_at = now + (self._keepalive_interval or 0.0)
        return True

    def fail_over(self, *, unreachable: bool) -> bool:
        """The registration failed: whether to open a flow to another target.

        An ``unreachable`` target is left for the next one of the list, once; otherwise the
        list starts again from its first target.
        """
        if unreachable and self._index + 1 < len(self._targets):
            self._index += 1
            self.failover_pending = True
        else:
            self._index = 0
            if len(self._targets) < 2:
                return False
        self.drop(lost=False)
        return True

    def contact(self, user: str | None, address: tuple[str, int] | None = None) -> SipUri:
        """Our Contact at ``address`` (where we listen, else the flow's local end, by default)."""
        host, port = address or self.listening or self.local or ("", 0)
        transport = self.target.transport
        params = () if transport is Transport.UDP else (("transport", transport.value),)
        return SipUri("sip", host, user=user, port=port, params=params)
