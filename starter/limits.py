"""Brute force on invitation links: a client that tries too many bad tokens is held off."""

from __future__ import annotations

import time
from collections import defaultdict, deque


class BadTokenLimiter:
    """Bad tokens per client address in a sliding window, in this process's memory.

    A 256-bit token cannot be guessed; this keeps scanners from hammering the database and
    makes a leaked-link search loud. Per process: N API instances allow N times the limit.
    """

    def __init__(self, limit: int, window: float) -> None:
        self._limit = limit
        self._window = window
        self._misses: defaultdict[str, deque[float]] = defaultdict(deque)

    def _recent(self, client: str, now: float) -> deque[float]:
        misses = self._misses[client]
        while misses and misses[0] <= now - self._window:
            misses.popleft()
        if not misses:
            del self._misses[client]  # bounded memory: only clients with recent misses stay
        return misses

    def retry_after(self, client: str) -> int | None:
        """Seconds until the client may try again, or None if it may now."""
        now = time.monotonic()
        misses = self._recent(client, now)
        if len(misses) < self._limit:
            return None
        return max(1, int(misses[0] + self._window - now) + 1)

    def miss(self, client: str) -> None:
        self._misses[client].append(time.monotonic())
