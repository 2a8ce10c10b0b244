"""When the user agent lets a request go: one fresh challenge answer at a time, paced starts.

Both are policies of the user agent as a whole, not of one client, so they live here once:

- :class:`ChallengeGate`: the clients of a user agent share one :class:`~.auth.DigestClient`.
  While one of them answers a fresh challenge (the probe), further challenges wait: one nonce
  is answered at a time, a second challenge is not taken for a refusal of the first answer, and
  when the probe succeeds the waiting requests go again with the nonce now held (and its next
  nonce count) instead of each answering a challenge of its own.
- :class:`StartPacer`: the starts of a profile's subscriptions are released in a small burst,
  then at a steady rate (:class:`PacingPolicy` says which and why).
"""

from __future__ import annotations

from dataclasses import dataclass

from .message import Response


class ChallengeGate[K, C]:
    """Lets one fresh answer to a 401/407 out at a time (``K`` names a transaction)."""

    def __init__(self) -> None:
        """Nothing is being probed."""
        self._probe: K | None = None
        self._probe_client: C | None = None
        self._waiting: list[tuple[C, Response]] = []

    @property
    def busy(self) -> bool:
        """Whether a fresh answer is on its way (or about to be)."""
        return self._probe is not None or self._probe_client is not None

    def admit(self, key: K | None, client: C) -> bool:
        """Whether ``client`` may answer a 401/407 of transaction ``key`` (None: a held one)."""
        if self.busy and (key is None or self._probe != key):
            return False
        self._probe_client = client
        return True

    def hold(self, client: C, challenge: Response) -> None:
        """Keep a challenge that was not admitted until the probe is answered."""
        self._waiting.append((client, challenge))

    def sent(self, key: K, client: C) -> None:
        """``client`` sent a request in transaction ``key``: its answer is the probe."""
        if client is self._probe_client:
            self._probe_client = None
            self._probe = key

    def settle(self) -> None:
        """A client that was admitted but sent nothing (it gave up) holds no probe."""
        self._probe_client = None

    def is_probe(self, key: K) -> bool:
        """Whether transaction ``key`` carries the probe."""
        return key == self._probe

    def finished(self) -> list[tuple[C, Response]]:
        """The probe was answered or failed: the challenges that waited for it, in order."""
        self._probe = None
        waiting, self._waiting = self._waiting, []
        return waiting

    def clear(self) -> None:
        """Forget the probe and everything waiting."""
        self._probe = None
        self._probe_client = None
        self._waiting.clear()


@dataclass(frozen=True, slots=True)
class PacingPolicy:
    """How fast a profile's subscriptions start: ``burst`` at once, then ``rate`` per second.

    They start only once the registration succeeded (or when there is none to wait for):
    FreePBX's responsive firewall, and fail2ban set-ups like it, allow an address they do not
    know about 10 requests a minute and ban a burst, but an address that registered is known
    and no longer limited that way. What remains is not to flood the PBX or our own event
    loop (each SUBSCRIBE brings a 200 and a NOTIFY to answer): 10 at once, then 20 a second,
    about what a desk phone with a busy-lamp field sends, keeps 10 buddies of a profile
    starting together and 200 within ten seconds.
    """

    burst: int = 10
    rate: float = 20.0


_ROUNDING = 1e-9
"""A token counted at ``next_at`` may fall short of 1.0 by a rounding error."""


class StartPacer:
    """A token bucket: ``burst`` starts at once, refilled at ``rate`` per second."""

    def __init__(self, policy: PacingPolicy) -> None:
        """Start full."""
        self._policy = policy
        self._tokens = float(policy.burst)
        self._updated: float | None = None

    def take(self, now: float) -> bool:
        """Whether a start may go at ``now`` (it then uses one token)."""
        self._refill(now)
        if self._tokens >= 1.0 - _ROUNDING:
            self._tokens = max(0.0, self._tokens - 1.0)
            return True
        return False

    def next_at(self, now: float) -> float:
        """When the next token is there."""
        self._refill(now)
        return now + max(0.0, 1.0 - self._tokens) / self._policy.rate

    def _refill(self, now: float) -> None:
        if self._updated is not None:
            gained = (now - self._updated) * self._policy.rate
            self._tokens = min(float(self._policy.burst), self._tokens + gained)
        self._updated = now
