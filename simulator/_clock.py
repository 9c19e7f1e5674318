"""The simulator's clock of record for long-lived things (refresh tokens, Key Vault secrets).

Access tokens stay on real time (they are verified with PyJWT against the real clock); what lives
for days (a refresh token's 90 days, a secret's ``exp``) follows this clock, which tests move
forward instead of waiting.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class SimClock:
    """Real time plus an offset that only grows: ``advance(days=91)`` makes 91 days pass."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0

    def time(self) -> float:
        """Seconds since the epoch, on this clock."""
        with self._lock:
            return time.time() + self._offset

    def now(self) -> datetime:
        """The current time on this clock, in UTC."""
        return datetime.fromtimestamp(self.time(), UTC)

    def advance(self, *, days: float = 0.0, hours: float = 0.0, seconds: float = 0.0) -> None:
        """Move the clock forward (never backward: what was issued stays in the past)."""
        step = days * 86400.0 + hours * 3600.0 + seconds
        if step < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += step

    @property
    def offset(self) -> float:
        """Seconds this clock is ahead of real time."""
        with self._lock:
            return self._offset
