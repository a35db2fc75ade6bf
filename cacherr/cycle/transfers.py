"""Transfers run from a queue, apart from planning: a newer full plan replaces what has not
started, a partial plan (the session watcher's) goes first without dropping the rest, and
a long copy never blocks the planner, the watcher, reloads or the HTTP server.

An explicit eviction (`cacherr evict`, `POST /api/evict`) is a request job: it cancels the
queued caches it concerns (all of them for `--all`), goes ahead of everything, runs once
the transfer in progress has finished, and hands its outcome back to whoever waits for
it. A plan made before such a cancellation does not bring those caches back.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cacherr.cycle.locate import Located
from cacherr.planner import PlannedAction


@dataclass(frozen=True)
class Transfer:
    action: PlannedAction
    located: Located | None


@dataclass(eq=False)
class EvictJob:
    """An explicit eviction: ledger paths (or all), a hold, and its outcome once done."""

    paths: tuple[str, ...] = ()
    all: bool = False
    hold_seconds: float | None = None
    outcome: dict[str, Any] | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def finish(self, outcome: dict[str, Any]) -> None:
        self.outcome = outcome
        self.done.set()


Item = Transfer | EvictJob


class TransferQueue:
    """A thread-safe queue of transfers with replace semantics, and request jobs first."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._requests: deque[EvictJob] = deque()
        self._pending: deque[Transfer] = deque()
        self._current: Item | None = None
        self._closed = False
        self._all_cancelled_at = -math.inf
        self._cancelled_at: dict[str, float] = {}

    def replace(self, transfers: Iterable[Transfer], planned_at: float | None = None) -> None:
        """A full plan (made at `planned_at`): everything not started yet is replaced."""
        with self._lock:
            self._pending = deque(self._fresh(transfers, planned_at))
            self._lock.notify_all()

    def put_first(self, transfers: Iterable[Transfer], planned_at: float | None = None) -> None:
        """A partial plan or an explicit request: ahead of the rest, replacing duplicates."""
        with self._lock:
            first = self._fresh(transfers, planned_at)
            paths = {t.action.relative_path for t in first}
            rest = [t for t in self._pending if t.action.relative_path not in paths]
            self._pending = deque(first + rest)
            self._lock.notify_all()

    def cancel_caches(self, paths: Iterable[str] | None, at: float) -> list[str]:
        """Drop the queued caches and adoptions of `paths` (None: all of them); plans made
        before `at` will not queue them again. Return the paths dropped."""
        with self._lock:
            if paths is None:
                self._all_cancelled_at = at
                wanted = None
            else:
                wanted = set(paths)
                for path in wanted:
                    self._cancelled_at[path] = at
            dropped = [t.action.relative_path for t in self._pending
                       if t.action.kind != "evict"
                       and (wanted is None or t.action.relative_path in wanted)]
            self._pending = deque(t for t in self._pending
                                  if t.action.relative_path not in dropped
                                  or t.action.kind == "evict")
            return dropped

    def put_request(self, job: EvictJob) -> None:
        """An explicit eviction: before every transfer not started yet."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the transfer queue is closed")
            self._requests.append(job)
            self._lock.notify_all()

    def _fresh(self, transfers: Iterable[Transfer], planned_at: float | None) -> list[Transfer]:
        current = self._current.action.relative_path \
            if isinstance(self._current, Transfer) else None
        result = []
        for transfer in transfers:
            path = transfer.action.relative_path
            if path == current:
                continue
            if transfer.action.kind != "evict" and planned_at is not None and \
                    planned_at <= max(self._all_cancelled_at,
                                      self._cancelled_at.get(path, -math.inf)):
                continue  # planned before an explicit eviction of it
            result.append(transfer)
        return result

    def take(self, timeout_seconds: float | None = None) -> Item | None:
        """The next request job or transfer (now the current one), or None on timeout or
        close."""
        with self._lock:
            if not self._requests and not self._pending and not self._closed:
                self._lock.wait(timeout_seconds)
            if self._closed:
                return None
            if self._requests:
                self._current = self._requests.popleft()
            elif self._pending:
                self._current = self._pending.popleft()
            else:
                return None
            return self._current

    def wait_for_request(self, timeout_seconds: float) -> bool:
        """Wait until an explicit request is queued, the queue closes, or `timeout_seconds`
        pass; return True if a request is waiting (a held transfer must not delay it)."""
        deadline = time.monotonic() + timeout_seconds
        with self._lock:
            while not self._requests and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return bool(self._requests)

    def pending_counts(self) -> dict[str, int]:
        """Transfers not started yet, by direction (to_cache, to_slow)."""
        with self._lock:
            to_slow = sum(1 for t in self._pending if t.action.kind == "evict")
            return {"to_cache": len(self._pending) - to_slow, "to_slow": to_slow}

    def current(self) -> Item | None:
        with self._lock:
            return self._current

    def finished(self) -> None:
        with self._lock:
            self._current = None
            self._lock.notify_all()

    def idle(self) -> bool:
        with self._lock:
            return self._current is None and not self._pending and not self._requests

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._pending.clear()
            self._requests.clear()
            self._lock.notify_all()
