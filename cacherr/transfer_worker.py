"""The service's transfer worker: one thread that carries out the queue through the engine.

It takes planned transfers and explicit evictions from the service's queue one at a time;
a held guard (the Unraid mover, a parity check, `defer_while_playing`) puts a transfer
back and waits; one transfer's failure, however unexpected, is logged and counted and
never stops the worker. What it moved is gathered into one summary notification when
the queue runs dry.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from cacherr.cycle.defer import defer_reason
from cacherr.cycle.evicting import evict_paths
from cacherr.cycle.execute import Report, execute
from cacherr.cycle.once import settle_mover_list
from cacherr.cycle.transfers import EvictJob, Transfer
from cacherr.engine import Engine
from cacherr.engine.recovery import RecoveredAction
from cacherr.host import unraid
from cacherr.state.ledger import Ledger

if TYPE_CHECKING:
    from cacherr.service import Service

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
GUARD_RETRY_SECONDS = 30.0
# How often an idle worker tries again the interrupted actions that wait for a disk or
# pool to be mounted again (start-up recovery left them pending).
WAITING_RETRY_SECONDS = 300.0


class TransferWorker:
    """The worker of one Service (it reads the service's current config, queue, metrics,
    notifier and live files, which reloads and rounds replace)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.report_lock = threading.Lock()
        self.report = Report()
        self.waiting_retried_at = float("-inf")

    def run(self) -> None:
        """The worker thread: take transfers and requested evictions until the service stops."""
        ledger = Ledger.open(self.service.config.state_dir)
        engine = self.service.engine(ledger)
        try:
            while not self.service.stopping.is_set():
                item = self.service.queue.take(timeout_seconds=TICK_SECONDS)
                if item is None:
                    self.retry_waiting(engine, ledger)
                    continue
                try:
                    if isinstance(item, EvictJob):
                        self.requested_evict(item, engine, ledger)
                    else:
                        self.transfer(item, engine, ledger)
                except Exception:  # noqa: BLE001 - one transfer's failure never stops the worker
                    if isinstance(item, EvictJob):  # answered by requested_evict or never
                        log.exception("requested eviction failed")
                        item.finish({"evicted": [], "untracked": [], "failed": [
                            {"path": path, "reason": "other"} for path in item.paths]})
                    else:
                        action = item.action
                        log.exception("transfer %s %s failed", action.kind,
                                      ascii(action.relative_path))
                        self.service.metrics.record_failure(
                            "to_slow" if action.kind == "evict" else "to_cache", "other")
                finally:
                    self.service.queue.finished()
                if self.service.queue.idle():
                    self.send_summary()
        finally:
            ledger.close()

    def transfer(self, transfer: Transfer, engine: Engine, ledger: Ledger) -> None:
        action = transfer.action
        held = self.guard_holds() or defer_reason(self.service.config, ledger,
                                                  action.relative_path, self.service.live_files)
        if held:
            log.info("%s of %s waits: %s", action.kind, action.relative_path, held)
            self.service.metrics.record_skip(held)
            self.service.queue.put_first([transfer])
            # An explicit eviction (or a stop, which closes the queue) ends the wait early.
            self.service.queue.wait_for_request(GUARD_RETRY_SECONDS)
            return
        in_ledger = ledger.get(action.relative_path) is not None
        if (action.kind == "evict") != in_ledger:
            return  # done or undone since it was planned
        if action.kind == "evict" and action.relative_path in self.service.live_files:
            self.service.metrics.record_skip("in_session")
            return
        located = {action.relative_path: transfer.located} if transfer.located else {}
        with self.report_lock:
            report = self.report
        before = (report.cached_files, report.evicted_files, len(report.failures))
        skipped_before = Counter(report.skipped)
        execute([action], engine, located, report, cancel=self.service.cancel,
                mover_list=self.service.mover_list)
        for reason, count in (report.skipped - skipped_before).items():
            self.service.metrics.record_skip(reason, count)
        direction = "to_slow" if action.kind == "evict" else "to_cache"
        if report.aborted and report.aborted[-1] == action.relative_path:
            self.service.metrics.record_skip("aborted")  # a clean stop: not a failure
        elif len(report.failures) > before[2]:
            _, reason, _ = report.failures[-1]
            self.service.metrics.record_failure(direction, reason)
        elif (report.cached_files, report.evicted_files) != before[:2]:
            self.service.metrics.record_move(direction, action.size_bytes)
            waited = (self.service.playbacks.cached(action.relative_path)
                      if action.kind == "cache" else None)
            if waited is not None:
                self.service.metrics.observe_playback_to_cached(waited)

    def retry_waiting(self, engine: Engine, ledger: Ledger) -> None:
        """Between transfers, now and then: settle the interrupted actions whose disk or
        pool is back, and keep /health's list of those still waiting true."""
        service = self.service
        now = service.clock()
        if not service.health.waiting_actions() or \
                now - self.waiting_retried_at < WAITING_RETRY_SECONDS:
            return
        self.waiting_retried_at = now
        results = engine.settle_waiting()
        settled = [action for action in results if action.state != "pending"]
        for action in settled:
            log.info("recovered (its disk is back): %s", action)
        if settled:
            service.metrics.record_recovered(len(settled))
            if not service.dry_run:
                service.mover_list = settle_mover_list(service.config, ledger)
        service.health.set_waiting_actions(waiting(results))

    def guard_holds(self) -> str | None:
        """Why no new transfer may start now (the Unraid mover, a parity check)."""
        host = self.service.config.host
        if unraid.mover_running(host):
            return "mover_running"
        if unraid.parity_check_running(host):
            return "parity_check"
        return None

    def send_summary(self) -> None:
        with self.report_lock:
            report, self.report = self.report, Report()
        if not report.moved and not report.failures:
            return
        log.info("transfers done: %s", report.summary())
        self.service.notifier.transfers_done(report)


    def requested_evict(self, job: EvictJob, engine: Engine, ledger: Ledger) -> None:
        """Carry out an explicit eviction on the worker thread; hand the outcome to the job."""
        cached = {entry.relative_path: entry.fast.size_bytes for entry in ledger.files()}
        paths = list(cached) if job.all else [path for path in job.paths if path in cached]
        not_cached = [] if job.all else [path for path in job.paths if path not in cached]
        try:
            outcome = evict_paths(engine, ledger, paths, hold_seconds=job.hold_seconds,
                                  now=self.service.clock(), mover_list=self.service.mover_list)
        except Exception as error:  # noqa: BLE001 - the waiting request must be answered
            log.exception("requested eviction failed")
            job.finish({"evicted": [], "untracked": [], "not_cached": not_cached,
                        "failed": [{"path": path, "reason": f"other: {error}"} for path in paths]})
            return
        with self.report_lock:
            report = self.report
        for path in outcome.evicted:
            log.info("evicted %s (requested)", path)
            self.service.metrics.record_move("to_slow", cached[path])
            report.evicted_files += 1
            report.evicted_bytes += cached[path]
        for _path, reason in outcome.failed:
            self.service.metrics.record_failure("to_slow", reason.partition(":")[0])
        job.finish({**outcome.as_dict(), "not_cached": not_cached})


def waiting(recovered: Iterable[RecoveredAction]) -> list[str]:
    """The recovered actions still pending, as 'path: why' for /health."""
    return [f"{action.relative_path}: {action.outcome}" for action in recovered
            if action.state == "pending"]
