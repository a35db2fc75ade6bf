"""One requests.Session for every outgoing call: URL overrides, timeouts, retries, counts.

plexapi is handed this session for every PlexServer/MyPlexAccount it builds, so its
hard-coded https://plex.tv, discover and metadata URLs are rewritten here (SPEC §8:
CACHERR_PLEXTV_URL, CACHERR_DISCOVER_URL, CACHERR_METADATA_URL, CACHERR_TRAKT_URL hold an
origin that replaces the real scheme and host) and nothing global is patched.
"""

from __future__ import annotations

import email.utils
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import requests

from cacherr.sources.types import SourceStatus

log = logging.getLogger(__name__)

REAL_ORIGINS = {
    "CACHERR_PLEXTV_URL": "https://plex.tv",
    "CACHERR_DISCOVER_URL": "https://discover.provider.plex.tv",
    "CACHERR_METADATA_URL": "https://metadata.provider.plex.tv",
    "CACHERR_TRAKT_URL": "https://api.trakt.tv",
}
PLEXTV_HOSTS = ("plex.tv", "discover.provider.plex.tv", "metadata.provider.plex.tv",
                "rss.plex.tv", "clients.plex.tv")


@dataclass(frozen=True)
class RetryPolicy:
    """Retries on 429/5xx and connection errors, with exponential backoff; a 429/503's
    Retry-After is honoured up to `max_wait_seconds`. Timeouts are retried `timeout_attempts`
    times in all (a hung server should not cost attempts x timeout)."""

    attempts: int = 3
    backoff_seconds: float = 1.0
    max_wait_seconds: float = 60.0
    timeout_attempts: int = 1


class RequestFailed(Exception):
    """A request failed for good (after retries); `source` says which source."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(message)
        self.source = source


def overrides_from_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return {real origin: replacement origin} from the CACHERR_* variables that are set."""
    env = os.environ if env is None else env
    return {real: env[name].rstrip("/") for name, real in REAL_ORIGINS.items() if env.get(name)}


class SourceSession(requests.Session):
    """A Session that rewrites origins, enforces a timeout, retries and counts per source.

    `classify(url)` names the source of a (rewritten) URL: plex, plextv or trakt.
    `sleep` is injectable so tests do not wait.
    """

    def __init__(self, *, overrides: Mapping[str, str], timeout_seconds: float,
                 retry: RetryPolicy, classify: Callable[[str], str],
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__()
        self.overrides = dict(overrides)
        self.timeout_seconds = timeout_seconds
        self.retry = retry
        self.classify = classify
        self.sleep = sleep
        self.status: dict[str, SourceStatus] = {}
        self._lock = threading.Lock()

    def rewrite(self, url: str) -> str:
        for real, replacement in self.overrides.items():
            if url == real or url.startswith(real + "/") or url.startswith(real + "?"):
                return replacement + url[len(real):]
        return url

    def _record(self, source: str, *, failed: bool = False, error: str | None = None,
                counted: bool = True) -> None:
        with self._lock:
            status = self.status.setdefault(source, SourceStatus())
            if counted:
                status.requests += 1
            if failed:
                status.failures += 1
                status.last_error = error

    @property
    def request_count(self) -> int:
        return sum(s.requests for s in self.status.values())

    def request(self, method, url, *args, **kwargs):  # noqa: D401 - requests' signature
        url = self.rewrite(url)
        source = self.classify(url)
        kwargs["timeout"] = self.timeout_seconds
        attempt = 0
        timeouts = 0
        while True:
            attempt += 1
            try:
                response = super().request(method, url, *args, **kwargs)
            except requests.Timeout as error:
                timeouts += 1
                self._record(source, failed=True, error=f"timeout after {self.timeout_seconds}s")
                if timeouts >= self.retry.timeout_attempts or attempt >= self.retry.attempts:
                    raise RequestFailed(source, f"{_short(url)}: timed out after "
                                                f"{self.timeout_seconds:g}s") from error
                self.sleep(self._backoff(attempt))
                continue
            except requests.ConnectionError as error:
                self._record(source, failed=True, error="connection failed")
                if attempt >= self.retry.attempts:
                    raise RequestFailed(source, f"{_short(url)}: cannot connect "
                                                f"({type(error).__name__})") from error
                self.sleep(self._backoff(attempt))
                continue
            code = response.status_code
            if code == 429 or code >= 500:
                self._record(source, failed=True, error=f"HTTP {code}")
                if attempt >= self.retry.attempts:
                    return response  # the caller turns the status into its error
                wait = _retry_after(response) if code in (429, 503) else None
                wait = self._backoff(attempt) if wait is None else min(wait, self.retry.max_wait_seconds)
                log.info("%s answered %s; retrying in %.1fs", source, code, wait)
                self.sleep(wait)
                continue
            self._record(source)
            return response

    def _backoff(self, attempt: int) -> float:
        return min(self.retry.backoff_seconds * 2 ** (attempt - 1), self.retry.max_wait_seconds)


def _retry_after(response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _short(url: str) -> str:
    """The URL without its query (tokens never appear in logs)."""
    return url.split("?", 1)[0]
