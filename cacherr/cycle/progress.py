"""Progress of long transfers: a bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from cacherr.config.units import format_bytes

log = logging.getLogger(__name__)


class Progress:
    """The engine's `progress(done, total)` callback, told which file is moving by `start`.

    On a terminal it redraws one line; otherwise it logs at most every `every_seconds`
    (and at the end), so logs stay readable.
    """

    def __init__(self, stream: TextIO = sys.stderr, *, every_seconds: float = 10.0,
                 clock=time.monotonic):
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.every_seconds = every_seconds
        self.clock = clock
        self.name = ""
        self._started = self._last = 0.0

    def start(self, name: str) -> None:
        self.name = name
        self._started = self._last = self.clock()

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        finished = total > 0 and done >= total
        if self.tty:
            self._draw(done, total, now, finished)
        elif finished or now - self._last >= self.every_seconds:
            self._last = now
            percent = 100 * done / total if total else 100
            log.info("copying %s: %.0f%% of %s", self.name, percent, format_bytes(total))

    def _draw(self, done: int, total: int, now: float, finished: bool) -> None:
        width = 30
        fraction = done / total if total else 1.0
        filled = int(width * fraction)
        elapsed = max(now - self._started, 1e-6)
        rate = format_bytes(done / elapsed) + "/s"
        name = self.name if len(self.name) <= 40 else "…" + self.name[-39:]
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%} "
                          f"{rate:>12} {name}\x1b[K")
        if finished:
            self.stream.write("\n")
        self.stream.flush()
