"""`cacherr plan [--json]`: what the next cycle would do. Changes nothing: no lock, the
ledger opened read-only, no media touched."""

from __future__ import annotations

import functools
import json
import sys

from cacherr.commands import EXIT_OK, EXIT_USAGE, sources_report
from cacherr.commands.config_file import ConfigUnavailable, load_config
from cacherr.config.units import format_bytes
from cacherr.cycle.once import plan_cycle
from cacherr.logs import redact
from cacherr.sources.select import select_all
from cacherr.state import db
from cacherr.state.ledger import Ledger


def open_ledger_read_only(state_dir) -> Ledger:
    """The ledger for reading; an empty one if cacherr has not run yet."""
    try:
        return Ledger.open(state_dir, read_only=True)
    except db.StateDatabaseError:
        return Ledger(db.connect_empty())


def run(args) -> int:
    try:
        config = load_config(args)
    except ConfigUnavailable:
        return EXIT_USAGE
    ledger = open_ledger_read_only(config.state_dir)
    try:
        # Nothing is written anywhere: what the selection builds stays in memory.
        selection, gathered, plan = plan_cycle(config, ledger,
                                               select=functools.partial(select_all, persist=False))
    finally:
        ledger.close()
    located = gathered.located
    rows = []
    for action in plan.actions:
        where = located.get(action.relative_path)
        rows.append({
            "action": action.kind,
            "path": action.relative_path,
            "item": gathered.items.get(action.relative_path, ""),
            "size_bytes": action.size_bytes,
            "priority": action.priority,
            "rules": list(action.rules),
            "users": list(action.users),
            "reason": action.reason,
            "from": _from(config, action, where),
            "to": _to(config, action, where),
        })
    totals = {"budget_bytes": plan.budget_bytes, "used_bytes": plan.used_bytes,
              "add_bytes": plan.add_bytes, "free_bytes": plan.free_bytes,
              "failed_sources": {source: redact(why)
                                 for source, why in selection.failed_sources.items()}}
    windows = [{"rule": w.rule, "users": list(w.users), "show": w.show,
                "episodes": w.episodes, "reason": w.reason} for w in selection.windows]
    if args.json:
        json.dump({"actions": rows, "lookahead": windows, "totals": totals}, sys.stdout,
                  indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    for row in rows:
        what = row["reason"] if row["action"] == "skip" else f"{row['from']} -> {row['to']}"
        print(f"{row['action']:<6} {format_bytes(row['size_bytes']):>10}  "
              f"p{row['priority']:<3} {','.join(row['rules']) or '-':<20} "
              f"{','.join(row['users']) or '-':<16} {row['path']}  ({what})")
    print_windows(windows)
    print(f"budget {format_bytes(plan.budget_bytes)}, cached now {format_bytes(plan.used_bytes)}"
          f", will add {format_bytes(plan.add_bytes)}, will free {format_bytes(plan.free_bytes)}",
          file=sys.stderr)
    for line in sources_report.lines(selection.failed_sources):
        print(f"source failed: {line}", file=sys.stderr)
    return EXIT_OK


def _fast(config) -> str:
    cache = config.cache
    return str(cache.union.fast if cache.layout == "union" else cache.symlink.dir)


def _from(config, action, where) -> str:
    if action.kind == "evict":
        return f"{_fast(config)}/{action.relative_path}"
    return f"{where.root}/{action.relative_path}" if where else action.relative_path


def _to(config, action, where) -> str:
    if action.kind == "evict":
        return "slow branch" if config.cache.layout == "union" else "original path"
    if action.kind == "skip":
        return ""
    return f"{_fast(config)}/{action.relative_path}"


def print_windows(windows) -> None:
    """One line per look-ahead window: rule, users, show, and why that many episodes.
    Titles come from Plex: what a terminal would act on (escapes, new lines) is shown
    escaped."""
    for window in windows:
        print(f"ahead  {window['episodes']:>3} ep  {window['rule']:<20} "
              f"{_shown(', '.join(window['users'])):<16} {_shown(window['show'])}: "
              f"{_shown(window['reason'])}")


def _shown(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
