"""Named points in the engine's work, and the test hook that kills the process at one.

`CACHERR_TEST_KILL_AT=NAME:N` makes the engine SIGKILL itself the Nth time it reaches
checkpoint NAME (the crash tests' deterministic kill points); `CACHERR_TEST_KILL_SIGNAL=TERM`
sends SIGTERM instead (the clean-abort test). `CACHERR_TEST_CHECKPOINTS=FILE`
appends every checkpoint reached to FILE, one per line, so a test can list them.
Neither is set in production, and then a checkpoint costs one dict update.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Mapping


class Checkpoints:
    """Count the checkpoints reached; kill or trace as the test hook asks."""

    def __init__(
        self, kill_at: str | None = None, trace_path: str | None = None, kill_signal: str = "KILL"
    ):
        self.counts: Counter[str] = Counter()
        self._kill_name: str | None = None
        self._kill_count = 0
        if kill_at:
            name, _, count = kill_at.rpartition(":")
            if not name or not count.isdigit():
                raise ValueError(f"CACHERR_TEST_KILL_AT={kill_at!r}: expected NAME:N")
            self._kill_name, self._kill_count = name, int(count)
        self._trace_path = trace_path
        self._signal = signal.Signals[f"SIG{kill_signal}"]

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Checkpoints:
        """Given an environment, return the checkpoints its test variables ask for."""
        return cls(
            environ.get("CACHERR_TEST_KILL_AT"),
            environ.get("CACHERR_TEST_CHECKPOINTS"),
            environ.get("CACHERR_TEST_KILL_SIGNAL", "KILL"),
        )

    def reached(self, name: str) -> None:
        self.counts[name] += 1
        if self._trace_path is not None:
            with open(self._trace_path, "a", encoding="utf-8") as trace:
                trace.write(f"{name}:{self.counts[name]}\n")
        if name == self._kill_name and self.counts[name] == self._kill_count:
            os.kill(os.getpid(), self._signal)
