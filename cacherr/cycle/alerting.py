"""Plex's alert stream wired to the service's rounds, and the clock of each playback.

`Alerting` owns the stream and turns each message into a wake-up of an existing job: a
playback that begins (or ends) wakes the session round at once instead of at the next
poll; a new movie or episode wakes the `recently_added` round. Bursts coalesce because
the service queues a job at most once while it waits, and the planner thread runs one
job at a time. While the stream is healthy the scheduled poll of sessions is only a
backstop (`BACKSTOP_SECONDS`); when it is not, polling every `sessions_every` takes over.

`PlaybackClock` measures, for a playback whose file was not cached, the time from its
first sign (the alert, or the poll that saw it) to that file being durable on the fast
branch (`cacherr_playback_to_cached_seconds`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from cacherr.metrics import Metrics
from cacherr.sources.alerts import AlertTracker, Message
from cacherr.sources.alertstream import AlertStream, stream_url

# With the stream up, sessions are still polled this often: a notification Plex never sent
# (or a client that never reports) cannot hide a playback for longer.
BACKSTOP_SECONDS = 300.0
# A playback's first sign is forgotten if no poll confirms it within this time, and a
# file still not cached after this long is no longer waited for.
FIRST_SIGN_SECONDS = 600.0
WAIT_FOR_CACHE_SECONDS = 6 * 3600.0
# An alert about a playback that /status/sessions does not list yet is checked again this
# soon, for at most RECHECK_WITHIN_SECONDS after the alert.
RECHECK_SECONDS = 1.0
RECHECK_WITHIN_SECONDS = 10.0


class PlaybackClock:
    """First signs of playbacks, and the files each one waits for (thread-safe)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._first_signs: dict[int, float] = {}
        self._waiting: dict[str, float] = {}

    def signed(self, rating_key: int) -> None:
        """An alert says `rating_key` began playing (the earliest sign is kept)."""
        with self._lock:
            self._first_signs.setdefault(rating_key, self.clock())

    def started(self, rating_key: int, missing_paths: Iterable[str]) -> None:
        """A poll confirmed a new playback; `missing_paths` are its files not cached yet."""
        now = self.clock()
        with self._lock:
            first = self._first_signs.pop(rating_key, now)
            for path in missing_paths:
                self._waiting.setdefault(path, first)
            self._forget_older_than(now)

    def confirm(self, live_rating_keys: Iterable[int]) -> list[int]:
        """A poll listed these items as playing: their signs are settled. Return the items
        signed in the last RECHECK_WITHIN_SECONDS that the poll did not list."""
        now = self.clock()
        with self._lock:
            for rating_key in live_rating_keys:
                self._first_signs.pop(rating_key, None)
            return [key for key, at in self._first_signs.items()
                    if now - at <= RECHECK_WITHIN_SECONDS]

    def cached(self, relative_path: str) -> float | None:
        """A file became durable on the fast branch: return the seconds since the first sign
        of the playback that waited for it, or None if none did."""
        with self._lock:
            first = self._waiting.pop(relative_path, None)
        return None if first is None else max(0.0, self.clock() - first)

    def _forget_older_than(self, now: float) -> None:
        for table, limit in ((self._first_signs, FIRST_SIGN_SECONDS),
                             (self._waiting, WAIT_FOR_CACHE_SECONDS)):
            for key in [k for k, at in table.items() if now - at > limit]:
                del table[key]


class Alerting:
    """The alert stream of `config.plex`, waking `wake_sessions(plan_stopped)` and
    `wake_added()` (called on the stream's thread; they only queue jobs)."""

    def __init__(self, config, metrics: Metrics, playbacks: PlaybackClock, *,
                 wake_sessions: Callable[[bool], None], wake_added: Callable[[], None],
                 polled_sessions: Callable[[], int], stream_factory=AlertStream) -> None:
        self.metrics = metrics
        self.playbacks = playbacks
        self.wake_sessions = wake_sessions
        self.wake_added = wake_added
        self.polled_sessions = polled_sessions
        self.tracker = AlertTracker()
        self.stream = stream_factory(
            stream_url(config.plex.url), config.plex.token, on_message=self.on_message,
            on_health=metrics.set_alerts_connected, on_connect=self.tracker.reset,
            sessions_exist=self.sessions_exist)

    def start(self) -> Alerting:
        self.metrics.set_alerts_connected(False)
        self.stream.start()
        return self

    def stop(self) -> None:
        self.stream.stop()
        self.metrics.set_alerts_connected(False)

    def covers_sessions(self) -> bool:
        """Whether the stream reports playbacks now (the scheduled poll may wait)."""
        return self.stream.healthy()

    def sessions_exist(self) -> bool:
        return self.tracker.live_sessions > 0 or self.polled_sessions() > 0

    def on_message(self, message: Message) -> None:
        """Count one message and wake the round it calls for."""
        self.metrics.record_alert(message.kind)
        wake = self.tracker.feed(message)
        for rating_key in wake.started:
            self.playbacks.signed(rating_key)
        if wake.sessions:
            self.wake_sessions(wake.stopped)
        if wake.added:
            self.wake_added()
