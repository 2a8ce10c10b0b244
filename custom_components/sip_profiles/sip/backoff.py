"""Capped exponential backoff with jitter, shared by every retrying state machine."""

from __future__ import annotations

from dataclasses import dataclass
import random


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Delays of ``base * 2**n`` seconds, capped at ``cap``, each scaled by a random factor.

    The random factor in ``[jitter, 1.0]`` spreads the retries of many clients that failed
    together (a registrar restart), so they do not return in one burst.
    """

    base: float = 30.0
    cap: float = 1800.0
    jitter: float = 0.5


_JITTER = random.Random()
"""The jitter of every backoff not given its own generator: a ``random.Random`` holds 2.5 KB of
state, too much to keep one per retrying client when a Home Assistant runs hundreds of them."""


class Backoff:
    """Counts consecutive failures and answers how long to wait before the next try."""

    def __init__(
        self, policy: BackoffPolicy | None = None, rng: random.Random | None = None
    ) -> None:
        """Start with no failures; ``rng`` makes the jitter reproducible in tests."""
        self.policy = policy or BackoffPolicy()
        self._rng = rng or _JITTER
        self.failures = 0

    def next_delay(self) -> float:
        """Record one more failure and return the delay before the next attempt."""
        exponent = min(self.failures, 32)
        self.failures += 1
        ceiling = min(self.policy.base * (1 << exponent), self.policy.cap)
        return ceiling * self._rng.uniform(self.policy.jitter, 1.0)

    def reset(self) -> None:
        """Forget the failures after a success."""
        self.failures = 0
