"""What `/health` reports: a `HealthState` the service loop updates and the server reads.

Failing (HTTP 503) means only that the loop's heartbeat is stale or the state directory
is not writable: the two conditions a restart could fix. Everything else that is wrong
(a source down, a failed cycle, a guard whose inputs are not visible, untracked files, a
rejected reload) is `degraded`, with details, and answers 200 (SPEC §6).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cacherr import __version__

OK = "ok"
DEGRADED = "degraded"
FAILING = "failing"

GUARD_STATES = ("running", "not_running", "unknown")
# Untracked paths listed in the report; the count is always complete.
UNTRACKED_LISTED = 20


@dataclass(frozen=True)
class SourceHealth:
    up: bool
    since: float  # Unix time of the last change of state
    error: str | None = None


@dataclass(frozen=True)
class CycleHealth:
    started: float
    finished: float
    ok: bool
    error: str | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)  # plain JSON values only


class HealthState:
    """Thread-safe health facts, set by the service loop, read by `/health`.

    `stale_after_seconds`: a heartbeat older than this is failing; the loop should beat
    at least three times within it. Until the first heartbeat the start time counts, so
    a service that never gets its loop going fails after the same delay.
    """

    def __init__(self, state_dir: str | Path, *, stale_after_seconds: float = 180.0,
                 version: str = __version__, clock=time.time) -> None:
        self.state_dir = Path(state_dir)
        self.version = version
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._stale_after_seconds = stale_after_seconds
        self._heartbeat: float | None = None
        self._state_dir_error: str | None = None
        self._sources: dict[str, SourceHealth] = {}
        self._last_cycle: CycleHealth | None = None
        self._guards: dict[str, str] = {}
        self._untracked: tuple[str, ...] = ()
        self._config_error: str | None = None
        self._waiting_for_rules: str | None = None
        self._worker_alive: Callable[[], bool] | None = None
        self._waiting_actions: tuple[str, ...] = ()

    # -- updates from the loop --------------------------------------------------------

    def heartbeat(self, at: float | None = None) -> None:
        """Record that the loop is alive."""
        with self._lock:
            self._heartbeat = self._clock() if at is None else at

    def set_stale_after(self, seconds: float) -> None:
        """Set how old a heartbeat may get before `/health` is failing."""
        with self._lock:
            self._stale_after_seconds = seconds

    def set_source(self, source: str, up: bool, error: str | None = None) -> None:
        """Record whether a source answered; `since` moves only when up/down changes."""
        now = self._clock()
        with self._lock:
            previous = self._sources.get(source)
            since = previous.since if previous is not None and previous.up == up else now
            self._sources[source] = SourceHealth(up=up, since=since,
                                                 error=None if up else error)

    def forget_sources_except(self, sources: Iterable[str]) -> None:
        """Drop the sources a reloaded rules file no longer uses."""
        keep = set(sources)
        with self._lock:
            self._sources = {name: value for name, value in self._sources.items()
                             if name in keep}

    def record_cycle(self, started: float, finished: float, ok: bool, *,
                     error: str | None = None, summary: Mapping[str, Any] | None = None) -> None:
        """Record the outcome of the last full cycle."""
        with self._lock:
            self._last_cycle = CycleHealth(started=started, finished=finished, ok=ok,
                                           error=error, summary=dict(summary or {}))

    def set_guard(self, name: str, state: str) -> None:
        """Record a guard (mover, parity_check): running, not_running, or unknown."""
        if state not in GUARD_STATES:
            raise ValueError(f"guard state {state!r} is not one of {', '.join(GUARD_STATES)}")
        with self._lock:
            self._guards[name] = state

    def watch_worker(self, is_alive: Callable[[], bool]) -> None:
        """Report `degraded` whenever `is_alive()` (the transfer worker's) is False."""
        with self._lock:
            self._worker_alive = is_alive

    def set_waiting_actions(self, actions: Iterable[str]) -> None:
        """Record the interrupted actions that wait for a disk or pool to be mounted again
        (each as 'path: why')."""
        with self._lock:
            self._waiting_actions = tuple(sorted(actions))

    def waiting_actions(self) -> tuple[str, ...]:
        """The interrupted actions recorded as waiting for a disk or pool."""
        with self._lock:
            return self._waiting_actions

    def set_untracked(self, paths: Iterable[str]) -> None:
        """Record the cached files that were untracked because they changed under cacherr."""
        with self._lock:
            self._untracked = tuple(sorted(paths))

    def set_config_reload(self, ok: bool, error: str | None = None) -> None:
        """Record whether the last reload of the rules file succeeded."""
        with self._lock:
            self._config_error = None if ok else (error or "the rules file was rejected")

    def set_waiting_for_rules(self, problems: str | None) -> None:
        """Record that no valid rules file is loaded yet, and why (`run --wait-for-rules`)."""
        with self._lock:
            self._waiting_for_rules = problems

    def set_state_dir_error(self, error: str | None) -> None:
        """Record that writing to the state directory failed (None: it works again)."""
        with self._lock:
            self._state_dir_error = error

    # -- the report ------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """Return the `/health` body: {"status": ok|degraded|failing, ...details}.

        Quick by design: one `statvfs` and one `access` on the state directory, no I/O on
        media, no network.
        """
        now = self._clock()
        with self._lock:
            heartbeat = self._heartbeat
            stale_after = self._stale_after_seconds
            sources = dict(self._sources)
            last_cycle = self._last_cycle
            guards = dict(self._guards)
            untracked = self._untracked
            config_error = self._config_error
            waiting_for_rules = self._waiting_for_rules
            waiting_actions = self._waiting_actions
            reported_state_dir_error = self._state_dir_error
            worker_alive = self._worker_alive
        failing: list[str] = []
        degraded: list[str] = []

        beat_age = now - (heartbeat if heartbeat is not None else self._started)
        if beat_age > stale_after:
            failing.append(f"the service loop's heartbeat is {beat_age:.0f}s old "
                           f"(stale after {stale_after:.0f}s)")
        state_dir_error = reported_state_dir_error or _state_dir_problem(self.state_dir)
        if state_dir_error:
            failing.append(f"state directory: {state_dir_error}")

        for name, source in sorted(sources.items()):
            if not source.up:
                degraded.append(f"source {name} is down" +
                                (f": {source.error}" if source.error else ""))
        if last_cycle is not None and not last_cycle.ok:
            degraded.append("the last cycle failed" +
                            (f": {last_cycle.error}" if last_cycle.error else ""))
        for name, state in sorted(guards.items()):
            if state == "unknown":
                degraded.append(f"guard {name} is unknown (its inputs are not visible here)")
        if untracked:
            degraded.append(f"{len(untracked)} cached file(s) changed and were untracked")
        if config_error:
            degraded.append(f"reload rejected, old rules kept: {config_error}")
        if waiting_for_rules:
            degraded.append(f"idle, waiting for a valid rules file: {waiting_for_rules}")
        if waiting_actions:
            degraded.append(f"{len(waiting_actions)} interrupted action(s) wait for a disk or "
                            "pool to be mounted again")
        worker_down = worker_alive is not None and not worker_alive()
        if worker_down:
            degraded.append("the transfer worker is not running: nothing is cached or evicted")

        status = FAILING if failing else DEGRADED if degraded else OK
        return {
            "status": status,
            "problems": failing + degraded,
            "version": self.version,
            "pid": os.getpid(),
            "uptime_seconds": round(now - self._started, 3),
            "heartbeat": {
                "last": heartbeat,
                "age_seconds": round(beat_age, 3),
                "stale_after_seconds": stale_after,
            },
            "state_dir": {"path": str(self.state_dir), "writable": not state_dir_error,
                          "error": state_dir_error},
            "sources": {name: asdict(source) for name, source in sorted(sources.items())},
            "last_cycle": asdict(last_cycle) if last_cycle is not None else None,
            "guards": guards,
            "untracked": {"count": len(untracked), "paths": list(untracked[:UNTRACKED_LISTED])},
            "waiting_actions": {"count": len(waiting_actions),
                                "actions": list(waiting_actions[:UNTRACKED_LISTED])},
            "config": {"last_reload_ok": config_error is None, "error": config_error,
                       "waiting_for_rules": waiting_for_rules},
            "transfer_worker": {"alive": None if worker_alive is None else not worker_down},
        }


def _state_dir_problem(path: Path) -> str | None:
    """Return why `path` cannot take writes (missing, read-only mount, no permission), or None."""
    try:
        if not path.is_dir():
            return f"{path} is not a directory"
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return f"{path} is on a read-only file system"
    except OSError as error:
        return f"{path}: {error.strerror or error}"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{path} is not writable by this user"
    return None
