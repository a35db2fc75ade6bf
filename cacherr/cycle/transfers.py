"""Transfers run from a queue, apart from planning: a newer full plan replaces what has not
started, a partial plan (the session watcher's) goes first without dropping the rest, and
a long copy never blocks the planner, the watcher, reloads or the HTTP server."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from cacherr.cycle.locate import Located
from cacherr.planner import PlannedAction


@dataclass(frozen=True)
class Transfer:
    action: PlannedAction
    located: Located | None


class TransferQueue:
    """A thread-safe queue of transfers with replace semantics."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._pending: deque[Transfer] = deque()
        self._current: Transfer | None = None
        self._closed = False

    def replace(self, transfers: Iterable[Transfer]) -> None:
        """A full plan: everything not started yet is replaced."""
        with self._lock:
            self._pending = deque(self._without_current(transfers))
            self._lock.notify_all()

    def put_first(self, transfers: Iterable[Transfer]) -> None:
        """A partial plan or an explicit request: ahead of the rest, replacing duplicates."""
        with self._lock:
            first = list(self._without_current(transfers))
            paths = {t.action.relative_path for t in first}
            rest = [t for t in self._pending if t.action.relative_path not in paths]
            self._pending = deque(first + rest)
            self._lock.notify_all()

    def _without_current(self, transfers: Iterable[Transfer]) -> list[Transfer]:
        current = self._current.action.relative_path if self._current else None
        return [t for t in transfers if t.action.relative_path != current]

    def take(self, timeout_seconds: float | None = None) -> Transfer | None:
        """The next transfer (now the current one), or None on timeout or close."""
        with self._lock:
            if not self._pending and not self._closed:
                self._lock.wait(timeout_seconds)
            if self._closed or not self._pending:
                return None
            self._current = self._pending.popleft()
            return self._current

    def finished(self) -> None:
        with self._lock:
            self._current = None
            self._lock.notify_all()

    def idle(self) -> bool:
        with self._lock:
            return self._current is None and not self._pending

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._pending.clear()
            self._lock.notify_all()
