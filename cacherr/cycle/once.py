"""One cycle end to end: recover, select, plan, carry out, record."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cacherr.config.model import Config, Rule
from cacherr.cycle.defer import defer_reason
from cacherr.cycle.execute import Report, execute
from cacherr.cycle.gather import (
    Gathered,
    fast_root,
    gather,
    history_since,
    measure_space,
    record_round,
)
from cacherr.cycle.live import session_check
from cacherr.cycle.moverlist import MoverList
from cacherr.engine import BandwidthLimiter, Engine
from cacherr.planner import Plan, make_plan
from cacherr.sources.pathmap import PathMapper
from cacherr.sources.select import select_all
from cacherr.sources.types import SelectionResult
from cacherr.state.ledger import Ledger

log = logging.getLogger(__name__)

Selector = Callable[..., SelectionResult]


@dataclass
class CycleResult:
    selection: SelectionResult
    gathered: Gathered
    plan: Plan
    report: Report
    recovered: int = 0


def live_host_paths(config: Config, selection: SelectionResult) -> list[str]:
    """Host paths of every file of every live session's item."""
    mapper = PathMapper(config.paths)
    paths = []
    for session in selection.sessions:
        for file in session.item.files:
            host = mapper.to_host(file.plex_path)
            if host is not None:
                paths.append(host)
    return paths


def symlink_roots(config: Config) -> list:
    return [] if config.cache.layout == "union" else [m.host for m in config.paths]


def settle_mover_list(config: Config, ledger: Ledger) -> MoverList:
    """The mover list rewritten from the ledger (after recovery: the ledger is the truth)."""
    mover_list = MoverList(config.cache.mover_exclude_file, fast_root(config))
    mover_list.rewrite(str(entry.fast_path) for entry in ledger.files(sidecars=True))
    return mover_list


def make_engine(config: Config, ledger: Ledger, **hooks) -> Engine:
    """The engine for this config: its layout, the host roots, `cache.bandwidth`, and the
    re-poll of live sessions before each destructive step."""
    if config.cache.bandwidth_bytes_per_second:
        hooks.setdefault("throttle", BandwidthLimiter(config.cache.bandwidth_bytes_per_second))
    # Invariant 6: sessions are asked again just before each destructive step.
    hooks.setdefault("session_check", session_check(config))
    return Engine.from_config(ledger, config.cache, roots=symlink_roots(config),
                              host=config.host, **hooks)


def plan_cycle(config: Config, ledger: Ledger, *, now: float | None = None,
               rules: Sequence[Rule] | None = None,
               select: Selector = select_all) -> tuple[SelectionResult, Gathered, Plan]:
    """Select and plan; read-only (the ledger is not written)."""
    now = time.time() if now is None else now
    since = history_since(config, ledger)
    selection = select(config, now=now, rules=rules, history_since=since)
    for warning in selection.warnings:
        log.warning("%s", warning)
    gathered = gather(
        config, ledger, selection.wanted, evaluated_rules=selection.evaluated_rules,
        failed_rules=selection.failed_rules, now=now, space=measure_space(fast_root(config)),
        live_host_paths=live_host_paths(config, selection), plays=selection.plays,
        windows=selection.windows,
    )
    for host_path in gathered.outside_roots:
        log.warning("not planned: %s is outside the configured roots", host_path)
    return selection, gathered, make_plan(gathered.plan_input)


def run_cycle(config: Config, ledger: Ledger, engine: Engine, *, dry_run: bool,
              now: float | None = None, rules: Sequence[Rule] | None = None,
              cancel: threading.Event | None = None,
              on_start: Callable[[str], None] | None = None,
              mover_list: MoverList | None = None,
              select: Selector = select_all) -> CycleResult:
    """Select, plan and (unless `dry_run`) carry out the plan; return what happened."""
    selection, gathered, plan = plan_cycle(config, ledger, now=now, rules=rules, select=select)
    report = Report(dry_run=dry_run, failed_sources=dict(selection.failed_sources))
    if dry_run:
        for action in plan.actions:
            if action.kind == "cache":
                report.cached_files += 1
                report.cached_bytes += action.size_bytes
            elif action.kind == "evict":
                report.evicted_files += 1
                report.evicted_bytes += action.size_bytes
            elif action.kind == "adopt":
                report.adopted_files += 1
            else:
                report.skipped[action.reason] += 1
        return CycleResult(selection, gathered, plan, report)
    live = gathered.plan_input.live
    execute(plan.actions, engine, gathered.located, report, cancel=cancel, on_start=on_start,
            mover_list=mover_list,
            defer=lambda path: defer_reason(config, ledger, path, live))
    record_round(ledger, gathered.plan_input, selection.failed_rules, gathered)
    return CycleResult(selection, gathered, plan, report)
