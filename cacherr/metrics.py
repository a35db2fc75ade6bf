"""The metric catalogue: every metric cacherr exports (SPEC §7), and the `Metrics` the loop updates.

All names, types, help texts and label sets live in `CATALOGUE`, so tests, the Grafana
dashboard and the alert rules can be checked against one list. Labels only take values
from the bounded sets below (a rule name is the one set the user controls); every label
set is initialised to 0 so series exist before the first event. `_created` series are off.

Each service (and each test) gets its own registry from `create_registry()`; the default
process, platform and GC collectors are registered on it too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from cacherr import __version__

# `_created` series double the counters and mean nothing on a dashboard.
disable_created_metrics()

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

DIRECTIONS = ("to_cache", "to_slow")
ROLES = ("fast", "slow")
SOURCES = ("plex", "plextv", "trakt")
MOVE_FAILURE_REASONS = (
    "enospc", "source_changed", "verify_failed", "permission", "vanished", "io_error",
    "other",
)
# `aborted`: a clean stop (SIGTERM) stopped the transfer in progress; not a failure.
SKIP_REASONS = (
    "no_space", "too_large", "hardlinked", "in_session", "mover_running", "parity_check",
    "owner", "unmapped", "held", "deferred", "aborted", "name", "other",
)
EVENTS = ("summary", "error", "cache_full", "source_down", "source_recovered")
JOBS = ("cycle", "sessions", "added", "reload")
# Kinds of message on Plex's alert stream; the rest (status, progress, ...) count as "other".
ALERT_TYPES = ("playing", "timeline", "activity", "other")

# Cycles range from an idle second to hours of copying; the default web buckets stop at 10 s.
RUN_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)
# A playback's file reaches the fast branch within a second through the alert stream, within
# sessions_every by polling, or much later when a transfer has to wait.
PLAYBACK_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)

# Bounded label values by label name; `rule` comes from the rules file (`init_rules`).
LABEL_VALUES: dict[str, tuple[str, ...]] = {
    "direction": DIRECTIONS,
    "role": ROLES,
    "source": SOURCES,
    "event": EVENTS,
    "job": JOBS,
    "type": ALERT_TYPES,
}
REASONS_BY_METRIC = {
    "cacherr_move_failures_total": MOVE_FAILURE_REASONS,
    "cacherr_moves_skipped_total": SKIP_REASONS,
}


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric: its full exposed name, type, help text and label names."""

    name: str
    kind: str  # counter | gauge | histogram | info
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = RUN_DURATION_BUCKETS  # histograms only


CATALOGUE: tuple[MetricSpec, ...] = (
    MetricSpec("cacherr_build_info", "info", "cacherr build information; always 1.",
               ("version",)),
    MetricSpec("cacherr_config_last_reload_successful", "gauge",
               "1 if the last load or reload of the rules file succeeded, else 0."),
    MetricSpec("cacherr_config_last_reload_success_timestamp_seconds", "gauge",
               "Unix time of the last successful load or reload of the rules file."),
    MetricSpec("cacherr_runs_total", "counter", "Full cycles started."),
    MetricSpec("cacherr_run_failures_total", "counter",
               "Full cycles that failed (a source or an action failed)."),
    MetricSpec("cacherr_last_run_timestamp_seconds", "gauge",
               "Unix time the last full cycle ended, successful or not."),
    MetricSpec("cacherr_last_success_timestamp_seconds", "gauge",
               "Unix time the last successful full cycle ended."),
    MetricSpec("cacherr_run_duration_seconds", "histogram", "Duration of full cycles."),
    MetricSpec("cacherr_next_run_timestamp_seconds", "gauge",
               "Unix time the next full cycle is scheduled for."),
    MetricSpec("cacherr_schedule_interval_seconds", "gauge",
               "Configured time between full cycles (schedule.every)."),
    MetricSpec("cacherr_scheduler_heartbeat_timestamp_seconds", "gauge",
               "Unix time of the service loop's last heartbeat."),
    MetricSpec("cacherr_job_failures_total", "counter",
               "Scheduled jobs that raised instead of finishing.", ("job",)),
    MetricSpec("cacherr_files_moved_total", "counter", "Files moved, by direction.",
               ("direction",)),
    MetricSpec("cacherr_moved_bytes_total", "counter", "Bytes moved, by direction.",
               ("direction",)),
    MetricSpec("cacherr_move_failures_total", "counter", "Moves that failed, by cause.",
               ("direction", "reason")),
    MetricSpec("cacherr_moves_skipped_total", "counter",
               "Wanted moves that were not made, by reason.", ("reason",)),
    MetricSpec("cacherr_planned_moves", "gauge",
               "Moves in the current plan that are not done yet, by direction.",
               ("direction",)),
    MetricSpec("cacherr_cached_files", "gauge", "Files cacherr holds on the fast branch, by rule.",
               ("rule",)),
    MetricSpec("cacherr_cached_bytes", "gauge", "Bytes cacherr holds on the fast branch, by rule.",
               ("rule",)),
    MetricSpec("cacherr_cache_budget_bytes", "gauge",
               "Bytes cacherr may fill on the fast branch (max_size and min_free applied)."),
    MetricSpec("cacherr_filesystem_size_bytes", "gauge", "Size of the file systems, by role.",
               ("role",)),
    MetricSpec("cacherr_filesystem_avail_bytes", "gauge",
               "Bytes available to cacherr on the file systems, by role.", ("role",)),
    MetricSpec("cacherr_source_up", "gauge",
               "1 if the source answered in its last use, else 0.", ("source",)),
    MetricSpec("cacherr_source_request_failures_total", "counter",
               "Failed requests to a source.", ("source",)),
    MetricSpec("cacherr_source_skipped_elements_total", "counter",
               "Elements of a source's answers that could not be read and were skipped "
               "(each is logged at debug).", ("source",)),
    MetricSpec("cacherr_active_sessions", "gauge", "Live Plex playback sessions."),
    MetricSpec("cacherr_notifications_total", "counter", "Notifications attempted, by event.",
               ("event",)),
    MetricSpec("cacherr_notification_failures_total", "counter",
               "Notifications that failed or were dropped, by event.", ("event",)),
    MetricSpec("cacherr_recovered_actions_total", "counter",
               "Unfinished actions completed or rolled back by crash recovery."),
    MetricSpec("cacherr_playback_starts_total", "counter", "Playbacks seen starting."),
    MetricSpec("cacherr_playback_cache_hits_total", "counter",
               "Playbacks whose file was already on the fast branch when they started."),
    MetricSpec("cacherr_alerts_connected", "gauge",
               "1 while Plex's alert stream is connected and delivering, else 0 (sessions "
               "are polled meanwhile). Absent when plex.alerts is false."),
    MetricSpec("cacherr_alerts_received_total", "counter",
               "Messages received on Plex's alert stream, by type.", ("type",)),
    MetricSpec("cacherr_playback_to_cached_seconds", "histogram",
               "From the first sign of a playback whose file was not cached (an alert or a "
               "poll) to that file being durable on the fast branch.",
               buckets=PLAYBACK_BUCKETS),
)

CATALOGUE_NAMES = frozenset(spec.name for spec in CATALOGUE)


def create_registry() -> CollectorRegistry:
    """Return a new registry with the process, platform and GC collectors on it."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def _build(spec: MetricSpec, registry: CollectorRegistry):
    """Given a catalogue entry, return its prometheus_client metric on `registry`."""
    if spec.kind == "counter":
        return Counter(spec.name.removesuffix("_total"), spec.help, spec.labels,
                       registry=registry)
    if spec.kind == "gauge":
        return Gauge(spec.name, spec.help, spec.labels, registry=registry)
    if spec.kind == "histogram":
        return Histogram(spec.name, spec.help, spec.labels, buckets=spec.buckets,
                         registry=registry)
    if spec.kind == "info":
        return Info(spec.name.removesuffix("_info"), spec.help, registry=registry)
    raise ValueError(f"unknown metric kind {spec.kind!r} for {spec.name}")


def _bounded(value: str, allowed: tuple[str, ...]) -> str:
    """Map a value outside a bounded label set to "other" (or raise if there is no "other")."""
    if value in allowed:
        return value
    if "other" in allowed:
        return "other"
    raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")


class Metrics:
    """The catalogue's metrics on one registry, with the updates the service loop makes.

    Every method is cheap and thread-safe (prometheus_client locks each value). Label
    values outside their bounded set raise ValueError, except reasons, which become "other".
    """

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 version: str = __version__, rule_names: Iterable[str] = (),
                 sources: Iterable[str] = SOURCES) -> None:
        """Create every metric on `registry` (a new one if None).

        A Metrics exists only once a valid rules file is loaded, so the config-reload gauge
        starts at 1. `rule_names` and `sources` are the rules file's rules and the sources
        it uses (see `init_rules`, `init_sources`).
        """
        self.registry = registry if registry is not None else create_registry()
        self._metric = {spec.name: _build(spec, self.registry) for spec in CATALOGUE}
        self._lock = threading.Lock()
        self._rules: set[str] = set()
        self._sources: set[str] = set()
        self._alerts_enabled = True
        self._metric["cacherr_build_info"].info({"version": version})
        self._initialise_label_sets()
        self.init_rules(rule_names)
        self.init_sources(sources)
        self.record_config_reload(True)

    def _initialise_label_sets(self) -> None:
        for spec in CATALOGUE:
            if not spec.labels or spec.kind == "info" or "rule" in spec.labels:
                continue
            if spec.name == "cacherr_source_up":
                continue  # init_sources: 0 would say "down" for a source nobody uses
            metric = self._metric[spec.name]
            if "reason" in spec.labels:
                for direction in (DIRECTIONS if "direction" in spec.labels else (None,)):
                    for reason in REASONS_BY_METRIC[spec.name]:
                        labels = {"reason": reason}
                        if direction is not None:
                            labels["direction"] = direction
                        metric.labels(**labels)
                continue
            (label,) = spec.labels
            for value in LABEL_VALUES[label]:
                metric.labels(value)

    def __getitem__(self, name: str):
        """Return the prometheus_client metric called `name` (for tests and the dashboard)."""
        return self._metric[name]

    def exposition(self) -> bytes:
        """Return the registry in the Prometheus text format (CONTENT_TYPE)."""
        return generate_latest(self.registry)

    # -- configuration ----------------------------------------------------------------

    def init_rules(self, names: Iterable[str]) -> None:
        """Given the rule names of the (re)loaded rules file, give each a 0 series; drop the rest."""
        wanted = set(names)
        with self._lock:
            for metric_name in ("cacherr_cached_files", "cacherr_cached_bytes"):
                metric = self._metric[metric_name]
                for gone in self._rules - wanted:
                    metric.remove(gone)
                for name in wanted - self._rules:
                    metric.labels(name).set(0)
            self._rules = wanted

    def init_sources(self, names: Iterable[str]) -> None:
        """Given the sources the rules file uses, give each a `source_up` series at 0; drop the rest.

        A source nobody uses (trakt without trakt.client_id) has no `source_up` series, so
        the SourceDown alert cannot fire for it.
        """
        wanted = {_bounded(name, SOURCES) for name in names}
        with self._lock:
            metric = self._metric["cacherr_source_up"]
            for gone in self._sources - wanted:
                metric.remove(gone)
            for name in wanted - self._sources:
                metric.labels(name).set(0)
            self._sources = wanted

    def init_alerts(self, enabled: bool) -> None:
        """Given whether the alert stream is used (plex.alerts), expose `alerts_connected` or not.

        Without the stream there is no series, so the AlertStreamDown alert cannot fire.
        """
        metric = self._metric["cacherr_alerts_connected"]
        with self._lock:
            if enabled and not self._alerts_enabled:
                self.registry.register(metric)
            elif not enabled and self._alerts_enabled:
                self.registry.unregister(metric)
                metric.set(0)
            self._alerts_enabled = enabled

    def record_config_reload(self, ok: bool, at: float | None = None) -> None:
        """Record a load or reload of the rules file (SIGHUP with a broken file: ok=False)."""
        self._metric["cacherr_config_last_reload_successful"].set(1 if ok else 0)
        if ok:
            self._metric["cacherr_config_last_reload_success_timestamp_seconds"].set(
                time.time() if at is None else at)

    def set_schedule(self, every_seconds: float, next_run_at: float | None = None) -> None:
        """Record the configured cycle interval and, if known, when the next cycle runs."""
        self._metric["cacherr_schedule_interval_seconds"].set(every_seconds)
        if next_run_at is not None:
            self.set_next_run(next_run_at)

    def set_budget(self, budget_bytes: int) -> None:
        """Record how many bytes cacherr may fill on the fast branch."""
        self._metric["cacherr_cache_budget_bytes"].set(budget_bytes)

    # -- the loop and its cycles ------------------------------------------------------

    def heartbeat(self, at: float | None = None) -> None:
        """Record that the service loop is alive (call at least once a minute)."""
        self._metric["cacherr_scheduler_heartbeat_timestamp_seconds"].set(
            time.time() if at is None else at)

    def set_next_run(self, at: float) -> None:
        """Record the Unix time of the next full cycle."""
        self._metric["cacherr_next_run_timestamp_seconds"].set(at)

    def record_run(self, started: float, duration_seconds: float, ok: bool) -> None:
        """Given a finished full cycle's start time, duration and outcome, count it."""
        ended = started + duration_seconds
        self._metric["cacherr_runs_total"].inc()
        if not ok:
            self._metric["cacherr_run_failures_total"].inc()
        self._metric["cacherr_run_duration_seconds"].observe(duration_seconds)
        self._metric["cacherr_last_run_timestamp_seconds"].set(ended)
        if ok:
            self._metric["cacherr_last_success_timestamp_seconds"].set(ended)

    def record_job_failure(self, job: str) -> None:
        """Count a scheduled job (cycle, sessions, reload) that raised."""
        self._metric["cacherr_job_failures_total"].labels(_bounded(job, JOBS)).inc()

    def record_recovered(self, count: int = 1) -> None:
        """Count actions that crash recovery completed or rolled back."""
        if count:
            self._metric["cacherr_recovered_actions_total"].inc(count)

    # -- moves ------------------------------------------------------------------------

    def record_move(self, direction: str, size_bytes: int) -> None:
        """Count one file moved in `direction` (to_cache|to_slow) and its bytes."""
        direction = _bounded(direction, DIRECTIONS)
        self._metric["cacherr_files_moved_total"].labels(direction).inc()
        if size_bytes:
            self._metric["cacherr_moved_bytes_total"].labels(direction).inc(size_bytes)

    def record_failure(self, direction: str, reason: str) -> None:
        """Count one failed move; a reason outside MOVE_FAILURE_REASONS counts as "other"."""
        self._metric["cacherr_move_failures_total"].labels(
            direction=_bounded(direction, DIRECTIONS),
            reason=_bounded(reason, MOVE_FAILURE_REASONS)).inc()

    def record_skip(self, reason: str, count: int = 1) -> None:
        """Count skipped moves; a reason outside SKIP_REASONS counts as "other"."""
        if count:
            self._metric["cacherr_moves_skipped_total"].labels(
                _bounded(reason, SKIP_REASONS)).inc(count)

    def set_planned(self, by_direction: Mapping[str, int]) -> None:
        """Given pending moves per direction, set the plan gauges (a missing direction is 0)."""
        for direction in DIRECTIONS:
            self._metric["cacherr_planned_moves"].labels(direction).set(
                by_direction.get(direction, 0))

    def set_cached(self, by_rule: Mapping[str, tuple[int, int]]) -> None:
        """Given (files, bytes) per rule name, set the cached gauges; other known rules get 0.

        A file selected by several rules is counted under each of them.
        """
        with self._lock:
            self._rules |= set(by_rule)
            for rule in self._rules:
                files, size_bytes = by_rule.get(rule, (0, 0))
                self._metric["cacherr_cached_files"].labels(rule).set(files)
                self._metric["cacherr_cached_bytes"].labels(rule).set(size_bytes)

    def set_filesystem(self, role: str, size_bytes: int, avail_bytes: int) -> None:
        """Record the size and available bytes of the fast or slow file system(s)."""
        role = _bounded(role, ROLES)
        self._metric["cacherr_filesystem_size_bytes"].labels(role).set(size_bytes)
        self._metric["cacherr_filesystem_avail_bytes"].labels(role).set(avail_bytes)

    def set_filesystems(self, fast: tuple[int, int] | None = None,
                        slow: tuple[int, int] | None = None) -> None:
        """Given (size, avail) bytes of the fast and of all slow branches together, record them."""
        if fast is not None:
            self.set_filesystem("fast", *fast)
        if slow is not None:
            self.set_filesystem("slow", *slow)

    # -- sources, sessions, playback --------------------------------------------------

    def set_source(self, source: str, up: bool) -> None:
        """Record whether a source (plex, plextv, trakt) answered in its last use."""
        source = _bounded(source, SOURCES)
        with self._lock:
            self._sources.add(source)
            self._metric["cacherr_source_up"].labels(source).set(1 if up else 0)

    def record_source_failure(self, source: str, count: int = 1) -> None:
        """Count failed requests to a source."""
        if count:
            self._metric["cacherr_source_request_failures_total"].labels(
                _bounded(source, SOURCES)).inc(count)

    def record_skipped_elements(self, source: str, count: int = 1) -> None:
        """Count elements of a source's answers that could not be read."""
        if count:
            self._metric["cacherr_source_skipped_elements_total"].labels(
                _bounded(source, SOURCES)).inc(count)

    def set_active_sessions(self, count: int) -> None:
        """Record the number of live playback sessions."""
        self._metric["cacherr_active_sessions"].set(count)

    def record_playback_start(self, cache_hit: bool) -> None:
        """Count a playback that started; `cache_hit` if its file was already on the fast branch."""
        self._metric["cacherr_playback_starts_total"].inc()
        if cache_hit:
            self._metric["cacherr_playback_cache_hits_total"].inc()

    def observe_playback_to_cached(self, seconds: float) -> None:
        """Record how long a playback's file took from the first sign of the playback to
        being durable on the fast branch."""
        self._metric["cacherr_playback_to_cached_seconds"].observe(max(0.0, seconds))

    # -- Plex's alert stream ----------------------------------------------------------

    def set_alerts_connected(self, connected: bool) -> None:
        """Record whether the alert stream is connected and delivering."""
        self._metric["cacherr_alerts_connected"].set(1 if connected else 0)

    def record_alert(self, kind: str) -> None:
        """Count one message of the alert stream; a kind outside ALERT_TYPES counts as "other"."""
        self._metric["cacherr_alerts_received_total"].labels(_bounded(kind, ALERT_TYPES)).inc()

    # -- notifications ----------------------------------------------------------------

    def record_notification(self, event: str, ok: bool) -> None:
        """Count a notification attempt for `event` and, unless ok, its failure."""
        event = _bounded(event, EVENTS)
        self._metric["cacherr_notifications_total"].labels(event).inc()
        if not ok:
            self._metric["cacherr_notification_failures_total"].labels(event).inc()
