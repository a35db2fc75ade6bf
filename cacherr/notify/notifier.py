"""Notifications: pure renderers from cacherr's events to messages, and an Apprise sender.

`Notifier.send` only sends the events listed in `notify.events`, never raises, and never
makes its caller wait: messages go through a bounded queue to one worker thread, which
calls Apprise (whose plugins time out on their own sockets, 4 s by default; the
`unraid://` script is given 30 s). When the queue is full the message is dropped and
counted as a failure, so a dead receiver costs the service loop nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import apprise

import cacherr.notify.schemes as schemes
from cacherr.config.model import NotifyConfig
from cacherr.config.units import format_bytes
from cacherr.logs import redact
from cacherr.metrics import EVENTS, Metrics

log = logging.getLogger(__name__)

INFO = "info"
SUCCESS = "success"
WARNING = "warning"
FAILURE = "failure"

QUEUE_SIZE = 32


@dataclass(frozen=True)
class Message:
    """One notification: the event it is for, and what it says."""

    event: str
    title: str
    body: str
    notify_type: str = INFO  # info | success | warning | failure


@dataclass(frozen=True)
class CycleSummary:
    """What a full cycle did, for the `summary` event."""

    cached_files: int = 0
    cached_bytes: int = 0
    adopted_files: int = 0
    evicted_files: int = 0
    evicted_bytes: int = 0
    skipped_by_reason: Mapping[str, int] = field(default_factory=dict)
    failed_files: int = 0
    dry_run: bool = False

    @property
    def moved_anything(self) -> bool:
        return bool(self.cached_files or self.adopted_files or self.evicted_files)


# -- renderers (pure) ------------------------------------------------------------------


def render_summary(summary: CycleSummary) -> Message | None:
    """Given a cycle's summary, return its message, or None if nothing was cached or evicted."""
    if not summary.moved_anything:
        return None
    lines = [f"Cached {summary.cached_files} file(s), {format_bytes(summary.cached_bytes)}."]
    if summary.adopted_files:
        lines.append(f"Adopted {summary.adopted_files} file(s) already on the cache.")
    lines.append(f"Evicted {summary.evicted_files} file(s), "
                 f"{format_bytes(summary.evicted_bytes)}.")
    skipped = {reason: count for reason, count in summary.skipped_by_reason.items() if count}
    if skipped:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(skipped.items()))
        lines.append(f"Skipped {sum(skipped.values())} ({reasons}).")
    if summary.failed_files:
        lines.append(f"Failed {summary.failed_files}; see the log.")
    title = "cacherr: cycle summary" + (" (dry run)" if summary.dry_run else "")
    return Message("summary", title, "\n".join(lines),
                   WARNING if summary.failed_files else SUCCESS)


def render_error(what: str, detail: str = "") -> Message:
    """Given what failed (e.g. "cycle failed") and why, return the `error` message."""
    return Message("error", f"cacherr: {what}", detail or what, FAILURE)


def render_cache_full(used_bytes: int, budget_bytes: int, waiting_files: int = 0,
                      waiting_bytes: int = 0) -> Message:
    """Given the cache's use and budget and what is waiting for room, return `cache_full`."""
    body = f"The cache holds {format_bytes(used_bytes)} of its {format_bytes(budget_bytes)} budget."
    if waiting_files:
        body += (f"\n{waiting_files} wanted file(s), {format_bytes(waiting_bytes)}, "
                 "wait for room.")
    return Message("cache_full", "cacherr: cache full", body, WARNING)


def render_source_down(source: str, error: str | None = None) -> Message:
    """Given a source (plex, plextv, trakt) that failed, return `source_down`."""
    body = f"{source} is not answering" + (f": {error}" if error else ".")
    body += "\nNothing it selected is evicted while it is down (up to source_failure_grace)."
    return Message("source_down", f"cacherr: {source} is down", body, WARNING)


def render_source_recovered(source: str, down_seconds: float | None = None) -> Message:
    """Given a source that answers again (and for how long it was down), return the message."""
    body = f"{source} answers again"
    if down_seconds is not None:
        body += f" after {_duration(down_seconds)}"
    return Message("source_recovered", f"cacherr: {source} recovered", body + ".", SUCCESS)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


# -- the sender ------------------------------------------------------------------------


class Notifier:
    """Sends cacherr's events to the Apprise URLs of `notify.urls` (see the module doc)."""

    def __init__(self, config: NotifyConfig, metrics: Metrics | None = None, *,
                 queue_size: int = QUEUE_SIZE, clock=time.time) -> None:
        """Given `notify` from the rules file and the metrics to count in, set up Apprise.

        URLs Apprise cannot use are logged (redacted) and left out.
        """
        self.config = config
        self.metrics = metrics
        self._clock = clock
        schemes.script_path = config.unraid_notify_script
        self._apprise = apprise.Apprise(asset=apprise.AppriseAsset(app_id="cacherr",
                                                                   app_desc="cacherr"))
        for number, url in enumerate(config.urls, start=1):
            if not self._apprise.add(url):
                # Only the scheme: a URL Apprise cannot parse may hold a token anywhere.
                scheme = url.partition("://")[0] if "://" in url else "?"
                log.warning("notification URL %d (%s://...) left out: Apprise cannot use it",
                            number, redact(scheme)[:20])
        self._queue: queue.Queue[Message | None] = queue.Queue(maxsize=queue_size)
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._source_down_since: dict[str, float | None] = {}  # None: known up
        self._cache_full: bool | None = None

    @property
    def service_count(self) -> int:
        return len(self._apprise)

    def wants(self, event: str) -> bool:
        """True if `event` is configured and there is somewhere to send it."""
        return event in self.config.events and len(self._apprise) > 0

    def send(self, event: str, title: str, body: str, notify_type: str = INFO) -> bool:
        """Queue a notification; return True if queued. Never raises, never blocks."""
        return self.send_message(Message(event, title, body, notify_type))

    def send_message(self, message: Message) -> bool:
        """Queue `message` if its event is wanted; return True if queued."""
        try:
            if message.event not in EVENTS:
                log.warning("not a notification event: %r", message.event)
                return False
            if not self.wants(message.event):
                return False
            self._ensure_worker()
            try:
                self._queue.put_nowait(message)
            except queue.Full:
                log.warning("notification %s dropped: %d are still waiting to be sent",
                            message.event, self._queue.maxsize)
                self._count(message.event, ok=False)
                return False
            return True
        except Exception:
            log.exception("notification %s could not be queued", message.event)
            return False

    # -- events ----------------------------------------------------------------------

    def summary(self, summary: CycleSummary) -> bool:
        """Send the cycle summary, if the cycle cached or evicted something."""
        message = render_summary(summary)
        return message is not None and self.send_message(message)

    def transfers_done(self, report, *, dry_run: bool = False) -> None:
        """Given a cycle's `cycle.execute.Report`, send `summary` if it cached or evicted
        something and `error` if transfers failed (an aborted transfer is not a failure)."""
        self.summary(CycleSummary(
            cached_files=report.cached_files, cached_bytes=report.cached_bytes,
            adopted_files=report.adopted_files, evicted_files=report.evicted_files,
            evicted_bytes=report.evicted_bytes, skipped_by_reason=dict(report.skipped),
            failed_files=len(report.failures), dry_run=dry_run))
        if report.failures:
            self.error(f"{len(report.failures)} transfer(s) failed",
                       "\n".join(f"{path}: {reason}" for _, reason, path in report.failures[:10]))

    def error(self, what: str, detail: str = "") -> bool:
        """Send an `error` event."""
        return self.send_message(render_error(what, detail))

    def cache_state(self, full: bool, used_bytes: int, budget_bytes: int,
                    waiting_files: int = 0, waiting_bytes: int = 0) -> bool:
        """Given whether the cache is full now, send `cache_full` when it becomes full.

        While it stays full nothing more is sent; once it has room again, the next time
        it fills is sent again.
        """
        with self._state_lock:
            became_full = full and self._cache_full is not True
            self._cache_full = full
        if not became_full:
            return False
        return self.send_message(render_cache_full(used_bytes, budget_bytes, waiting_files,
                                                   waiting_bytes))

    def plan_made(self, plan) -> bool:
        """Given a cycle's `planner.Plan`, send `cache_full` when wanted files start waiting
        for room (see cache_state)."""
        waiting = [action for action in plan.actions
                   if action.kind == "skip" and action.reason == "no_space"]
        return self.cache_state(bool(waiting), plan.used_bytes, plan.budget_bytes,
                                len(waiting), sum(action.size_bytes for action in waiting))

    def source_state(self, source: str, up: bool, error: str | None = None) -> bool:
        """Given a source's state now, send `source_down` / `source_recovered` on a change.

        A source first seen up sends nothing; first seen down sends `source_down`.
        """
        now = self._clock()
        with self._state_lock:
            known = source in self._source_down_since
            down_since = self._source_down_since.get(source)
            if up:
                self._source_down_since[source] = None
                changed = known and down_since is not None
            else:
                changed = not known or down_since is None
                if changed:
                    self._source_down_since[source] = now
        if not changed:
            return False
        if up:
            return self.send_message(render_source_recovered(source, now - down_since))
        return self.send_message(render_source_down(source, error))

    # -- the worker ------------------------------------------------------------------

    def flush(self, timeout_seconds: float = 30.0) -> bool:
        """Wait until every queued message was handled; return False on timeout."""
        deadline = time.monotonic() + timeout_seconds
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def close(self, timeout_seconds: float = 5.0) -> None:
        """Send what is queued (within the timeout), then stop the worker."""
        with self._worker_lock:
            worker = self._worker
            self._worker = None
        if worker is None:
            return
        try:
            self._queue.put(None, timeout=timeout_seconds)
        except queue.Full:
            return  # the daemon worker dies with the process
        worker.join(timeout_seconds)

    def _ensure_worker(self) -> None:
        with self._worker_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="cacherr-notify",
                                                daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while True:
            message = self._queue.get()
            try:
                if message is None:
                    return
                self._deliver(message)
            finally:
                self._queue.task_done()

    def _deliver(self, message: Message) -> None:
        ok = False
        try:
            result = self._apprise.notify(title=redact(message.title), body=redact(message.body),
                                          notify_type=message.notify_type)
            # Apprise 2.x returns an AppriseResult: falsy unless every service succeeded.
            ok = bool(result)
            if ok:
                log.info("notification %s sent to %d service(s)", message.event,
                         len(self._apprise))
            else:
                failed = [redact(str(getattr(item, "url", "?")))
                          for item in getattr(result, "results", ())
                          if not item]
                status = getattr(getattr(result, "status", None), "name", str(result))
                log.warning("notification %s not sent (%s): %d of %d service(s) failed%s",
                            message.event, status, len(failed) or len(self._apprise),
                            len(self._apprise), (": " + ", ".join(failed)) if failed else "")
        except Exception as error:
            log.warning("notification %s failed: %s", message.event, redact(str(error)))
        self._count(message.event, ok)

    def _count(self, event: str, ok: bool) -> None:
        if self.metrics is not None:
            self.metrics.record_notification(event, ok)
