"""Who is playing what right now: the engine's re-poll of sessions just before each
destructive step (invariant 6). One request (`/status/sessions`) per poll, plus one
batched item request when someone is transcoding (the session then names no file:
`sessions.resolve` finds the files of its item); remembered for a moment so the several
steps of one action do not each ask again. The connection to the server is kept between
polls, so a poll does not pay for connecting again."""

from __future__ import annotations

import logging
import threading
import time

from cacherr.sources.http import RetryPolicy, SourceSession, overrides_from_env
from cacherr.sources.pathmap import PathMapper
from cacherr.sources.plex import PlexAdapter, SourceError

log = logging.getLogger(__name__)

POLL_TIMEOUT_SECONDS = 10.0


class LiveSessions:
    """Given the config, answer which host paths are being played now.

    A failed poll answers with the last known sessions (none if never polled): Plex
    being unreachable means nobody is streaming from it.
    """

    def __init__(self, config, *, max_age_seconds: float = 2.0, clock=time.monotonic,
                 env=None):
        self.config = config
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        self._env = env
        self._mapper = PathMapper(config.paths)
        self._lock = threading.Lock()
        self._paths: frozenset[str] = frozenset()
        self._at: float | None = None
        self._adapter: PlexAdapter | None = None

    def host_paths(self) -> frozenset[str]:
        with self._lock:
            now = self.clock()
            if self._at is None or now - self._at >= self.max_age_seconds:
                self._paths = self._poll(self._paths)
                self._at = now
            return self._paths

    def _connect(self) -> PlexAdapter:
        from cacherr.sources.select import _classifier

        if self._adapter is None:
            plex = self.config.plex
            overrides = overrides_from_env(self._env)
            timeout = min(plex.timeout_seconds, POLL_TIMEOUT_SECONDS)
            session = SourceSession(overrides=overrides, timeout_seconds=timeout,
                                    retry=RetryPolicy(attempts=1), classify=_classifier(plex.url, overrides))
            self._adapter = PlexAdapter(plex.url, plex.token, session, timeout)
        return self._adapter

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        """Drop the connection (after a failure the next poll connects again)."""
        if self._adapter is not None:
            self._adapter.session.close()
            self._adapter = None

    def _poll(self, previous: frozenset[str]) -> frozenset[str]:
        adapter = self._connect()
        adapter.forget()  # a new look: nothing of the last poll is reused but the connection
        try:
            sessions = adapter.sessions()
        except SourceError as error:
            log.warning("sessions not re-polled (%s); using the last known", error)
            self._drop()
            return previous
        paths = set()
        for playing in sessions:
            for file in playing.item.files:
                host = self._mapper.to_host(file.plex_path)
                if host is not None:
                    paths.add(host)
        return frozenset(paths)
