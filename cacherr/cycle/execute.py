"""Carrying out a plan through the engine, one action at a time, and reporting it.

The engine is the only code that touches media; this module decides nothing new: it
runs the plan's actions in order (evictions first, to make room), stops starting new
ones when cancelled, and turns every error of one action (the engine's, the mover
list's, or a bug) into a counted failure of that action, never of the cycle. A name the
engine refuses (the name rule) is a skip, counted as `name`.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cacherr.config.units import format_bytes
from cacherr.cycle.locate import Located
from cacherr.cycle.moverlist import MoverList
from cacherr.engine import (
    Cancelled,
    CopyFailed,
    Engine,
    EngineError,
    Held,
    InUse,
    NameRefused,
    NoSpace,
    Refused,
    Result,
    SourceChanged,
)
from cacherr.planner import PlannedAction

log = logging.getLogger(__name__)

FAILURE_REASONS = {
    NoSpace: "enospc", SourceChanged: "source_changed", InUse: "in_use",
    CopyFailed: "io_error", Refused: "refused",
}


@dataclass
class Report:
    """What a cycle did, for the summary line, metrics and notifications."""

    cached_files: int = 0
    cached_bytes: int = 0
    adopted_files: int = 0
    evicted_files: int = 0
    evicted_bytes: int = 0
    untracked: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)  # a clean stop: not started or stopped
    skipped: Counter = field(default_factory=Counter)  # reason → count
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (direction, reason, path)
    failed_sources: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def moved(self) -> bool:
        return bool(self.cached_files or self.evicted_files or self.adopted_files)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.failed_sources

    def as_dict(self) -> dict:
        """The report as plain JSON-able data (the summary for `--log-json`)."""
        return {"dry_run": self.dry_run, "cached_files": self.cached_files,
                "cached_bytes": self.cached_bytes, "adopted_files": self.adopted_files,
                "evicted_files": self.evicted_files, "evicted_bytes": self.evicted_bytes,
                "skipped": dict(self.skipped), "untracked": list(self.untracked),
                "aborted": list(self.aborted),
                "failed": [{"direction": direction, "reason": reason, "path": path}
                           for direction, reason, path in self.failures],
                "failed_sources": dict(self.failed_sources)}  # redacted when printed

    def summary(self) -> str:
        """The one-line summary of a cycle (SPEC §5)."""
        verb = "would cache" if self.dry_run else "cached"
        parts = [f"{verb} {self.cached_files} files / {format_bytes(self.cached_bytes)}",
                 f"{'would evict' if self.dry_run else 'evicted'} {self.evicted_files} / "
                 f"{format_bytes(self.evicted_bytes)}"]
        if self.adopted_files:
            parts.append(f"adopted {self.adopted_files}")
        skipped = sum(self.skipped.values())
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(self.skipped.items()))
        parts.append(f"skipped {skipped}" + (f" ({reasons})" if reasons else ""))
        parts.append(f"failed {len(self.failures)}")
        if self.aborted:
            parts.append(f"aborted {len(self.aborted)} (cacherr is stopping; nothing lost)")
        if self.failed_sources:
            parts.append("sources down: " + ", ".join(sorted(self.failed_sources)))
        return "; ".join(parts)


def execute(plan_actions: Iterable[PlannedAction], engine: Engine, located: dict[str, Located],
            report: Report, *, cancel: threading.Event | None = None,
            on_start: Callable[[str], None] | None = None,
            on_done: Callable[[PlannedAction, str], None] | None = None,
            mover_list: MoverList | None = None,
            defer: Callable[[str], str | None] | None = None) -> Report:
    """Given the plan's actions in order, carry them out; return the report (updated).
    `on_start(path)` is called before each transfer (the progress display). The mover
    list gains an entry before its copy starts and loses it once the eviction is done."""
    if mover_list is not None:
        engine.mover_list = mover_list  # the engine lists the sidecars it brings along
    for action in plan_actions:
        if action.kind == "skip":
            report.skipped[action.reason] += 1
            continue
        if cancel is not None and cancel.is_set():
            report.aborted.append(action.relative_path)  # not started: cacherr is stopping
            continue
        direction = "to_slow" if action.kind == "evict" else "to_cache"
        held = defer(action.relative_path) if defer is not None else None
        if held:
            report.skipped[held] += 1
            continue
        if on_start is not None:
            on_start(action.relative_path)
        fast_path = engine_fast_root(engine) / action.relative_path
        try:
            if mover_list is not None and action.kind != "evict":
                mover_list.add(fast_path)  # listed before its copy starts
            result = _carry_out(action, engine, located)
            if mover_list is not None and action.kind == "evict":
                mover_list.remove(fast_path)  # only once the eviction is durable
        except NameRefused as refused:
            log.warning("%s %s skipped: %s", action.kind, ascii(action.relative_path),
                        refused.reason)
            report.skipped["name"] += 1
            _unlist_failed(mover_list, action, fast_path)
            continue
        except Held as held_now:  # the mover or a parity check started: it waits
            report.skipped[held_now.reason] += 1
            _unlist_failed(mover_list, action, fast_path)
            continue
        except Cancelled as cancelled:  # a clean stop: nothing lost, nothing failed
            log.info("%s %s aborted: cacherr is stopping (%s)", action.kind,
                     action.relative_path, cancelled.reason)
            report.aborted.append(action.relative_path)
            _unlist_failed(mover_list, action, fast_path)
            continue
        except Exception as error:  # noqa: BLE001 - one action's failure is not the cycle's
            reason = _failure_reason(error)
            if reason == "other":
                log.exception("%s %s failed", action.kind, ascii(action.relative_path))
            else:
                log.warning("%s %s failed (%s): %s", action.kind, action.relative_path, reason,
                            getattr(error, "reason", error))
            report.failures.append((direction, reason, action.relative_path))
            _unlist_failed(mover_list, action, fast_path)
            continue
        outcome = result.outcome
        if result.refused_names:
            report.skipped["name"] += len(result.refused_names)
        if outcome == "cached":
            report.cached_files += 1
            report.cached_bytes += action.size_bytes
        elif outcome == "adopted":
            report.adopted_files += 1
        elif outcome == "untracked":
            report.untracked.append(action.relative_path)
        else:
            report.evicted_files += 1
            report.evicted_bytes += action.size_bytes
        if action.kind == "evict" and action.reason:
            # The engine logged the eviction; note why, for the planner's cool-down.
            engine.ledger.conn.execute(
                "UPDATE operations SET detail = ? WHERE id = (SELECT max(id) FROM operations"
                " WHERE relative_path = ? AND action = 'evict')",
                (action.reason, action.relative_path))
        if on_done is not None:
            on_done(action, outcome)
    return report


def _failure_reason(error: Exception) -> str:
    """The metric reason of one action's failure."""
    if isinstance(error, EngineError):
        return next((name for kind, name in FAILURE_REASONS.items() if isinstance(error, kind)),
                    "other")
    return "io_error" if isinstance(error, OSError) else "other"


def _unlist_failed(mover_list: MoverList | None, action: PlannedAction, fast_path: Path) -> None:
    """A cache or adopt that did not happen leaves the list (if the engine did not record
    it after all); a failure to write the list is logged, the entry stays listed."""
    if mover_list is None or action.kind == "evict":
        return
    try:
        mover_list.remove(fast_path)
    except OSError as error:
        log.warning("mover list %s: %s", mover_list.path, error)


def engine_fast_root(engine: Engine) -> Path:
    """The folder cached copies go to: the pool (union) or the cache dir (symlink)."""
    return Path(engine.union.fast if engine.union is not None else engine.symlink.dir)


def _carry_out(action: PlannedAction, engine: Engine, located: dict[str, Located]) -> Result:
    if action.kind == "evict":
        return engine.evict(action.relative_path)
    root = located[action.relative_path].root if action.relative_path in located else None
    symlink_root = root if engine.layout == "symlink" else None
    if action.kind == "adopt":
        return engine.adopt(action.relative_path, root=symlink_root)
    return engine.cache(action.relative_path, root=symlink_root)
