"""The long-running service (`cacherr run`).

Threads: the main thread runs the `schedule` loop (full cycles, the session watcher,
reloads, heartbeats); one worker thread carries out transfers from the queue
(`transfer_worker.py`); the HTTP
server answers on its own threads; Plex's alert stream has its own thread, which only
wakes jobs (cycle/alerting.py). Planning never waits for a copy: it only replaces
the queue. SIGHUP reloads the rules (a broken file keeps the old ones); SIGTERM stops
within seconds, aborting a copy cleanly (the partial file is removed, the original kept).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from collections import Counter

import schedule

from cacherr.config import loader
from cacherr.config.errors import ConfigError
from cacherr.config.model import Config
from cacherr.cycle.alerting import BACKSTOP_SECONDS, RECHECK_SECONDS, Alerting, PlaybackClock
from cacherr.cycle.evicting import UnknownPath, resolve
from cacherr.cycle.gather import fast_root, record_round
from cacherr.cycle.listing import cached_files
from cacherr.cycle.once import make_engine, plan_cycle, settle_mover_list
from cacherr.cycle.transfers import EvictJob, Transfer, TransferQueue
from cacherr.engine import Engine
from cacherr.health import HealthState
from cacherr.host import unraid
from cacherr.metrics import Metrics
from cacherr.notify.notifier import Notifier
from cacherr.server import BadRequest, EvictRequest, Server, Unavailable
from cacherr.sources.select import select_all
from cacherr.sources.types import SOURCES
from cacherr.sources.users import UsersMemory
from cacherr.state.ledger import Ledger
from cacherr.transfer_worker import TICK_SECONDS, TransferWorker, waiting

log = logging.getLogger(__name__)

GUARD_REFRESH_SECONDS = 5.0  # how often /health reads the mover and parity-check state
USERS_MAX_AGE_SECONDS = 3600.0
# A job (selection and planning) running longer than this means the loop is stuck: the
# heartbeat stops, and /health turns failing once it is stale.
JOB_STALL_SECONDS = 1800.0


def serve(config: Config, *, lock, dry_run: bool) -> int:
    """Run the service until SIGTERM/SIGINT; return the exit code (0 on a clean stop)."""
    service = Service(config, dry_run=dry_run)
    return service.run()


class Service:
    def __init__(self, config: Config, *, dry_run: bool, select=select_all,
                 clock=time.time):
        self.config = config
        self.dry_run = dry_run
        self.select = select
        self.clock = clock
        self.stopping = threading.Event()
        self.cancel = threading.Event()
        self.reload_requested = threading.Event()
        self.metrics = Metrics(rule_names=[r.name for r in config.rules],
                               sources=self._sources_used(config))
        self.metrics.set_schedule(config.schedule.every_seconds)
        self.metrics.init_alerts(config.plex.alerts)
        self.health = HealthState(config.state_dir,
                                  stale_after_seconds=max(60.0, 30 * TICK_SECONDS))
        self.notifier = Notifier(config.notify, self.metrics)
        self.queue = TransferQueue()
        self.scheduler = schedule.Scheduler()
        self.ledger: Ledger | None = None
        self.server = Server.from_config(config, metrics=self.metrics, health=self.health,
                                         cached_files=self._cached_files,
                                         evict=self._evict_request)
        self.transfers = TransferWorker(self)
        self.worker = threading.Thread(target=self.transfers.run, name="cacherr-transfers",
                                       daemon=True)
        self.planner = threading.Thread(target=self._plan_jobs, name="cacherr-planner",
                                        daemon=True)
        self._jobs: queue.Queue = queue.Queue()
        self._queued_jobs: set[str] = set()
        self._jobs_lock = threading.Lock()  # jobs are submitted from several threads
        self._job_started: float | None = None
        self._seen_sessions: set[tuple[str, int]] = set()
        self.live_files: set[str] = set()
        self._live_by_item: dict[int, list[str]] = {}
        self._active_sessions = 0
        self._plex_answered = True  # in the last round: a failing Plex is polled every tick
        self._last_sessions_poll = float("-inf")
        self._plan_after_stop = threading.Event()
        self.playbacks = PlaybackClock(clock)
        self.alerting: Alerting | None = None
        self.mover_list = None
        self._guards_observed_at = float("-inf")
        self._users_memory = UsersMemory()

    # -- lifecycle -------------------------------------------------------------------

    def run(self) -> int:
        previous = {sig: signal.signal(sig, handler) for sig, handler in (
            (signal.SIGTERM, self._on_stop), (signal.SIGINT, self._on_stop),
            (signal.SIGHUP, self._on_hup))}
        try:
            self._recover()
            self.server.start()
            log.info("cacherr serving on %s", self.server.url)
            self.worker.start()
            self.health.watch_worker(self.worker.is_alive)
            self.planner.start()
            self._start_alerts()
            self._schedule_jobs()
            self._submit("cycle", self.full_cycle)
            while not self.stopping.is_set():
                self._beat()
                if self.reload_requested.is_set():
                    self.reload_requested.clear()
                    self._submit("reload", self.reload)
                self.scheduler.run_pending()
                self.stopping.wait(TICK_SECONDS)
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _on_stop(self, *_):
        self.stopping.set()
        self.cancel.set()  # a copy in progress aborts between two chunks

    def _on_hup(self, *_):
        self.reload_requested.set()

    def _shutdown(self) -> None:
        if self.alerting is not None:
            self.alerting.stop()
        self.queue.close()
        self._jobs.put(None)
        if self.worker.is_alive():
            self.worker.join(timeout=4.0)
        self.server.stop()
        self.notifier.close(timeout_seconds=1.0)

    def _beat(self) -> None:
        now = self.clock()
        started = self._job_started
        if started is not None and now - started > JOB_STALL_SECONDS:
            return  # a job is stuck: let /health see a stale heartbeat
        self.metrics.heartbeat(now)
        self.health.heartbeat(now)
        if now - self._guards_observed_at >= GUARD_REFRESH_SECONDS:
            self._guards_observed_at = now
            self._observe_guards()  # a mover that starts or ends shows at once

    def _submit(self, name: str, function) -> None:
        """Queue a job for the planner thread, unless the same job is already waiting."""
        with self._jobs_lock:
            if name in self._queued_jobs:
                return
            self._queued_jobs.add(name)
            self._jobs.put((name, function))

    def _plan_jobs(self) -> None:
        """The planner thread: runs jobs one at a time, with its own ledger connection."""
        self.ledger = Ledger.open(self.config.state_dir)
        try:
            while True:
                job = self._jobs.get()
                if job is None or self.stopping.is_set():
                    return
                name, function = job
                with self._jobs_lock:
                    self._queued_jobs.discard(name)
                self._job_started = self.clock()
                try:
                    self._job(name, function)
                finally:
                    self._job_started = None
        finally:
            self.ledger.close()

    def _job(self, name: str, function) -> None:
        """Run one job; an exception is logged and counted, never fatal."""
        try:
            function()
        except Exception as error:  # noqa: BLE001 - the loop must survive any job
            log.exception("job %s failed", name)
            self.metrics.record_job_failure(name)
            if name == "cycle":
                now = self.clock()
                self.health.record_cycle(now, now, False, error=f"{type(error).__name__}: {error}")
                self.metrics.record_run(now, 0.0, False)
            self.notifier.error(f"cacherr {name} job failed", f"{type(error).__name__}: {error}")

    def _schedule_jobs(self) -> None:
        self.scheduler.clear()
        every = max(1, int(self.config.schedule.every_seconds))
        sessions_every = max(1, int(self.config.schedule.sessions_every_seconds))
        self.scheduler.every(every).seconds.do(self._submit, "cycle", self.full_cycle)
        self.scheduler.every(sessions_every).seconds.do(self._poll_sessions)
        self.metrics.set_schedule(every, self.clock() + every)

    # -- Plex's alert stream ---------------------------------------------------------

    def _start_alerts(self) -> None:
        if self.config.plex.alerts:
            self.alerting = Alerting(
                self.config, self.metrics, self.playbacks, wake_sessions=self._wake_sessions,
                wake_added=self._wake_added,
                polled_sessions=lambda: self._active_sessions).start()

    def _poll_sessions(self) -> None:
        """The scheduled poll: every sessions_every, unless the alert stream reports
        playbacks and Plex answered the last round (then only a backstop poll every
        BACKSTOP_SECONDS)."""
        if (self.alerting is not None and self.alerting.covers_sessions() and self._plex_answered
                and self.clock() - self._last_sessions_poll < BACKSTOP_SECONDS):
            return
        self._submit("sessions", self.watch_sessions)

    def _wake_sessions(self, stopped: bool) -> None:
        """An alert: a playback began or ended; a stop also plans `when: complete` rules."""
        if stopped:
            self._plan_after_stop.set()
        self._submit("sessions", self.watch_sessions)

    def _wake_added(self) -> None:
        """An alert: a new movie or episode is ready; plan the `recently_added` rules."""
        if any(r.select == "recently_added" for r in self.config.rules):
            self._submit("added", self.added_round)

    def _recover(self) -> None:
        ledger = Ledger.open(self.config.state_dir)
        try:
            recovered = self.engine(ledger).recover()
            if not self.dry_run:
                self.mover_list = settle_mover_list(self.config, ledger)
        finally:
            ledger.close()
        settled = [action for action in recovered if action.state != "pending"]
        if settled:
            self.metrics.record_recovered(len(settled))
        for action in recovered:  # a pending one waits for its disk (logged by recovery)
            log.info("recovered: %s", action)
        # The worker tries those again while it is idle, until their disks are back.
        self.health.set_waiting_actions(waiting(recovered))

    def engine(self, ledger: Ledger) -> Engine:
        return make_engine(self.config, ledger, cancel=self.cancel)

    @staticmethod
    def _sources_used(config: Config) -> list[str]:
        used = ["plex"]
        if any(r.select in ("watchlist", "ondeck", "playing") for r in config.rules):
            used.append("plextv")
        if any(r.select == "trakt" for r in config.rules):
            used.append("trakt")
        return used

    # -- the jobs --------------------------------------------------------------------

    def full_cycle(self) -> None:
        """Select every rule, plan, and replace the transfer queue."""
        started = self.clock()
        selection, gathered, plan = plan_cycle(self.config, self.ledger, now=started,
                                               select=self._select)
        self._observe_selection(selection)
        transfers = self._transfers(plan.actions, gathered)
        if not self.dry_run:
            self.queue.replace(transfers, planned_at=started)
            record_round(self.ledger, gathered.plan_input, selection.failed_rules, gathered)
        skips = Counter(a.reason for a in plan.actions if a.kind == "skip")
        for reason, count in skips.items():
            self.metrics.record_skip(reason, count)
        self.metrics.set_planned({"to_cache": sum(1 for t in transfers if t.action.kind != "evict"),
                                  "to_slow": sum(1 for t in transfers if t.action.kind == "evict")})
        self.metrics.set_budget(plan.budget_bytes)
        self._observe_space()
        self.notifier.plan_made(plan)
        finished = self.clock()
        ok = not selection.failed_sources
        failed = ", ".join(sorted(selection.failed_sources))
        self.health.record_cycle(started, finished, ok,
                                 error=f"sources down: {failed}" if failed else None,
                                 summary={"planned": len(transfers),
                                          "skipped": sum(skips.values())})
        self.metrics.record_run(started, finished - started, ok)
        self.metrics.set_next_run(finished + self.config.schedule.every_seconds)
        log.info("cycle planned %d transfers (%d skipped)%s", len(transfers), sum(skips.values()),
                 f"; sources down: {failed}" if failed else "")

    def watch_sessions(self) -> None:
        """Poll live sessions; on a new playback, plan the `playing` rules at once (and
        when one ended, the `when: complete` ones)."""
        self._last_sessions_poll = self.clock()
        stopped = self._plan_after_stop.is_set()
        self._plan_after_stop.clear()
        playing = tuple(r for r in self.config.rules if r.select == "playing")
        selection = self._select(self.config, now=self.clock(), rules=playing)
        self._observe_selection(selection)
        keys = {(s.user_name, s.item.rating_key) for s in selection.sessions}
        new, gone = keys - self._seen_sessions, self._seen_sessions - keys
        self._seen_sessions = keys
        ended = (stopped or bool(gone)) and any(r.when == "complete" for r in playing)
        if new:
            log.info("new playback(s): %s", ", ".join(
                f"{session.user_name}: {session.item.title}" for session in selection.sessions
                if (session.user_name, session.item.rating_key) in new))
            cached = {entry.relative_path for entry in self.ledger.files()}
            for session in selection.sessions:
                if session.cacheable and (session.user_name, session.item.rating_key) in new:
                    paths = self._live_by_item.get(session.item.rating_key, ())
                    self.metrics.record_playback_start(any(path in cached for path in paths))
                    self.playbacks.started(session.item.rating_key,
                                           [path for path in paths if path not in cached])
        if self.playbacks.confirm({rating_key for _, rating_key in keys}):
            self._recheck_soon()  # an alert named a playback /status/sessions does not list yet
        if not (new or ended) or not playing or self.dry_run:
            return
        self._plan_round(playing, selection)

    def _recheck_soon(self) -> None:
        timer = threading.Timer(RECHECK_SECONDS, self._submit, ("sessions", self.watch_sessions))
        timer.daemon = True
        timer.start()

    def added_round(self) -> None:
        """Plan the `recently_added` rules at once (an alert said a new item is ready)."""
        rules = tuple(r for r in self.config.rules if r.select == "recently_added")
        if not rules:
            return
        selection = self._select(self.config, now=self.clock(), rules=rules)
        self._observe_selection(selection)
        if not self.dry_run:
            self._plan_round(rules, selection)

    def _plan_round(self, rules, selection) -> None:
        """Plan some rules from their selection; their transfers go first in the queue."""
        planned_at = self.clock()
        _, gathered, plan = plan_cycle(self.config, self.ledger, now=planned_at,
                                       rules=rules, select=lambda *a, **k: selection)
        self.queue.put_first(self._transfers(plan.actions, gathered), planned_at=planned_at)
        record_round(self.ledger, gathered.plan_input, selection.failed_rules, gathered)

    def reload(self) -> None:
        """Load the rules file again; keep the old rules if it is broken."""
        try:
            config = loader.load(self.config.source_path)
        except (ConfigError, OSError) as error:
            lines = error.lines() if isinstance(error, ConfigError) else [str(error)]
            for line in lines:
                log.error("reload rejected: %s", line)
            self.metrics.record_config_reload(False)
            self.health.set_config_reload(False, "; ".join(lines)[:500])
            return
        if config.cache != self.config.cache or config.state_dir != self.config.state_dir:
            log.warning("reload: cache: and state_dir changes apply after a restart")
        stream_changed = config.plex != self.config.plex
        self.config = config
        if stream_changed:
            if self.alerting is not None:
                self.alerting.stop()
                self.alerting = None
            self.metrics.init_alerts(config.plex.alerts)
            self._start_alerts()
        self.metrics.init_rules(r.name for r in config.rules)
        self.metrics.init_sources(self._sources_used(config))
        self.metrics.record_config_reload(True)
        self.health.set_config_reload(True)
        self.notifier.close(timeout_seconds=2.0)
        self.notifier = Notifier(config.notify, self.metrics)
        self.server.set_access(config.server.token, config.server.protect_cached)
        self._schedule_jobs()
        log.info("rules reloaded from %s (%d rules)", config.source_path, len(config.rules))
        # New rules apply now, not at the next scheduled cycle (an hour away, often).
        self._submit("cycle", self.full_cycle)

    # -- helpers of the jobs ---------------------------------------------------------

    def _select(self, config, **kwargs):
        return self.select(config, users_max_age_seconds=USERS_MAX_AGE_SECONDS,
                           users_memory=self._users_memory, **kwargs)

    def _transfers(self, actions, gathered) -> list[Transfer]:
        return [Transfer(a, gathered.located.get(a.relative_path)) for a in actions
                if a.kind != "skip"]

    def _live_relative_paths(self, selection) -> dict[int, list[str]]:
        from cacherr.cycle.locate import Locator
        from cacherr.sources.pathmap import PathMapper

        mapper, locator = PathMapper(self.config.paths), Locator(self.config)
        found: dict[int, list[str]] = {}
        for session in selection.sessions:
            for file in session.item.files:
                host = mapper.to_host(file.plex_path)
                where = locator.locate(host) if host else None
                if where is not None:
                    found.setdefault(session.item.rating_key, []).append(where.relative_path)
        return found

    def _observe_selection(self, selection) -> None:
        self._active_sessions = len(selection.sessions)
        self._plex_answered = "plex" not in selection.failed_sources
        self.metrics.set_active_sessions(len(selection.sessions))
        self._live_by_item = self._live_relative_paths(selection)
        self.live_files = {p for paths in self._live_by_item.values() for p in paths}
        for source in SOURCES:
            status = selection.status.get(source)
            if status is None:
                continue
            up = source not in selection.failed_sources
            self.metrics.set_source(source, up)
            if status.failures:
                self.metrics.record_source_failure(source, status.failures)
            self.metrics.record_skipped_elements(source, status.skipped_elements)
            self.health.set_source(source, up, selection.failed_sources.get(source))
            if source in self._sources_used(self.config):
                self.notifier.source_state(source, up, selection.failed_sources.get(source))

    def _observe_space(self) -> None:
        fast = os.statvfs(fast_root(self.config))
        slow_size = slow_avail = 0
        if self.config.cache.layout == "union":
            # Slow branches may share a file system (folders of one disk): count each once.
            devices = {os.stat(branch).st_dev: branch for branch in self.config.cache.union.slow}
            for branch in devices.values():
                st = os.statvfs(branch)
                slow_size += st.f_blocks * st.f_frsize
                slow_avail += st.f_bavail * st.f_frsize
        self.metrics.set_filesystems(
            fast=(fast.f_blocks * fast.f_frsize, fast.f_bavail * fast.f_frsize),
            slow=(slow_size, slow_avail) if slow_size else None)
        by_rule: dict[str, list[int]] = {r.name: [0, 0] for r in self.config.rules}
        sizes = {e.relative_path: e.fast.size_bytes for e in self.ledger.files()}
        seen: set[tuple[str, str]] = set()
        for row in self.ledger.attributions():
            if row.relative_path in sizes and row.rule in by_rule and \
                    (row.relative_path, row.rule) not in seen:
                seen.add((row.relative_path, row.rule))
                by_rule[row.rule][0] += 1
                by_rule[row.rule][1] += sizes[row.relative_path]
        self.metrics.set_cached({name: (files, size) for name, (files, size) in by_rule.items()})

    def _observe_guards(self) -> None:
        """The guards as /health shows them, from small files in RAM (never a disk)."""
        if unraid.looks_like_unraid(self.config.host):
            self.health.set_guard("mover", _guard_state(unraid.mover_running(self.config.host)))
            self.health.set_guard("parity_check",
                                  _guard_state(unraid.parity_check_running(self.config.host)))

    # -- HTTP callables (quick, called on server threads) ----------------------------

    def _cached_files(self):
        ledger = Ledger.open(self.config.state_dir, read_only=True)
        try:
            return cached_files(self.config, ledger)
        finally:
            ledger.close()

    def _evict_request(self, request: EvictRequest):
        """`POST /api/evict` (on a request thread): cancel the queued caches it concerns,
        have the worker evict once the transfer in progress is done, and wait for it."""
        if self.stopping.is_set():
            raise Unavailable("cacherr is stopping")
        now = self.clock()
        paths: list[str] = []
        if not request.all:
            ledger = Ledger.open(self.config.state_dir, read_only=True)
            try:
                paths = resolve(self.config, ledger, request.paths, cached_only=False)
            except UnknownPath as error:
                raise BadRequest(str(error)) from None
            finally:
                ledger.close()
        cancelled = self.queue.cancel_caches(None if request.all else paths, at=now)
        for path in cancelled:
            log.info("cache of %s cancelled: an eviction was requested", path)
        self.metrics.set_planned(self.queue.pending_counts())
        job = EvictJob(paths=tuple(paths), all=request.all, hold_seconds=request.hold_seconds)
        try:
            self.queue.put_request(job)
        except RuntimeError:
            raise Unavailable("cacherr is stopping") from None
        while not job.done.wait(0.2):
            if self.stopping.is_set():
                raise Unavailable("cacherr stopped before it could evict; run the command "
                                  "again (without the service it evicts by itself)")
        return {**(job.outcome or {}), "cancelled": cancelled}


def _guard_state(value: bool | None) -> str:
    return "unknown" if value is None else ("running" if value else "not_running")


