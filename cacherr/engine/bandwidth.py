"""`cache.bandwidth`: one byte budget per second shared by every transfer.

A token bucket: each chunk takes its size from the bucket, and the copying thread sleeps
until the bucket has refilled enough. Pass `limiter` as the engine's `throttle` hook (one
limiter shared by all engines, so concurrent transfers share the budget).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class BandwidthLimiter:
    """Given bytes per second (and, for tests, a clock and a sleep), pace the calls."""

    def __init__(
        self,
        bytes_per_second: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if bytes_per_second <= 0:
            raise ValueError("bandwidth must be a positive number of bytes per second")
        self.rate = bytes_per_second
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        # Allow one second's worth at once, so a chunk larger than the rate still passes.
        self._capacity = float(bytes_per_second)
        self._tokens = self._capacity
        self._stamp = clock()

    def __call__(self, size_bytes: int) -> None:
        """Take `size_bytes` from the budget, sleeping as long as that needs."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= size_bytes
            wait_seconds = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait_seconds > 0:
            self._sleep(wait_seconds)
