"""Gathering the planner's input from the selection, the ledger and the fast branch.

Reads only: the ledger, and `lstat`/`statvfs` on the fast branch (never a slow branch:
an idle cycle must not wake a disk).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cacherr.config.model import Config
from cacherr.cycle.locate import Located, Locator
from cacherr.planner import PlanInput, Space, Want
from cacherr.sources.types import LookAhead
from cacherr.state.ledger import Attribution, Ledger

COOLDOWN_SECONDS = 6 * 3600.0


@dataclass
class Gathered:
    plan_input: PlanInput
    located: dict[str, Located]  # relative path → where it lives
    items: dict[str, str]  # relative path → what it is, for logs
    outside_roots: list[str] = field(default_factory=list)  # host paths refused
    rating_keys: dict[str, int] = field(default_factory=dict)  # relative path → Plex item
    windows: tuple[LookAhead, ...] = ()  # the look-ahead windows this round chose


def history_since(config: Config, ledger: Ledger) -> float | None:
    """How far back plays matter: the first selection, by an `until: watched` rule, of a
    file cacherr holds; None when no such file (no history request at all)."""
    until = {rule.name for rule in config.rules if rule.keep.until_watched}
    cached = {entry.relative_path for entry in ledger.files()}
    firsts = [row.first_selected_at for row in ledger.attributions()
              if row.rule in until and row.relative_path in cached]
    return min(firsts) if firsts else None


def watched_from_plays(ledger: Ledger, plays: Iterable, rating_keys: Mapping[str, int],
                       attributions: Iterable[Attribution]) -> dict[str, dict[str, float]]:
    """relative path → user → latest play after that user's first selection of it."""
    known = {row["relative_path"]: row["rating_key"] for row in
             ledger.conn.execute("SELECT relative_path, rating_key FROM selected_items")}
    known.update(rating_keys)
    by_key: dict[int, list[str]] = {}
    for path, key in known.items():
        if key is not None:
            by_key.setdefault(int(key), []).append(path)
    first = {(a.relative_path, a.user): a.first_selected_at for a in attributions}
    watched: dict[str, dict[str, float]] = {}
    for play in plays:
        for path in by_key.get(int(play.rating_key), []):
            since = first.get((path, play.user_name))
            # Plex keeps play times in whole seconds.
            if since is not None and play.viewed_at >= int(since):
                users = watched.setdefault(path, {})
                users[play.user_name] = max(users.get(play.user_name, 0.0), play.viewed_at)
    return watched


def fast_root(config: Config) -> Path:
    cache = config.cache
    return Path(cache.union.fast) if cache.layout == "union" else Path(cache.symlink.dir)


def measure_space(path: Path) -> Space:
    st = os.statvfs(path)
    return Space(total_bytes=st.f_blocks * st.f_frsize, free_bytes=st.f_bavail * st.f_frsize)


def merged_attributions(existing: Iterable[Attribution], wants: Iterable[Want],
                        now: float) -> list[Attribution]:
    """The ledger's attributions with this round's selections folded in (in memory)."""
    merged = {(a.relative_path, a.rule, a.user): a for a in existing}
    for want in wants:
        for user in want.users or {""}:
            key = (want.relative_path, want.rule, user)
            previous = merged.get(key)
            first = previous.first_selected_at if previous else now
            merged[key] = Attribution(want.relative_path, want.rule, user, first, now)
    return list(merged.values())


def failing_rules(conn: sqlite3.Connection) -> dict[str, float]:
    return {row["rule"]: row["since"] for row in conn.execute("SELECT * FROM failing_rules")}


def evicted_for_space(conn: sqlite3.Connection, since: float) -> dict[str, float]:
    rows = conn.execute(
        "SELECT relative_path, max(at) AS at FROM operations WHERE action = 'evict'"
        " AND detail IN ('pressure', 'displaced') AND at > ? GROUP BY relative_path", (since,))
    return {row["relative_path"]: row["at"] for row in rows}


def gather(config: Config, ledger: Ledger, wanted: Iterable, *, evaluated_rules: Iterable[str],
           failed_rules: Mapping[str, tuple[str, ...]], now: float, space: Space,
           live_host_paths: Iterable[str] = (), plays: Iterable = (),
           windows: Iterable[LookAhead] = ()) -> Gathered:
    """Given the config, the ledger and one selection round's wanted files (host paths),
    return the planner's input; files outside the roots are listed, not planned."""
    locator = Locator(config)
    root = fast_root(config)
    located: dict[str, Located] = {}
    items: dict[str, str] = {}
    rating_keys: dict[str, int] = {}
    wants: list[Want] = []
    outside: list[str] = []
    for want in wanted:
        where = locator.locate(want.host_path)
        if where is None:
            outside.append(want.host_path)
            continue
        located[where.relative_path] = where
        items[where.relative_path] = want.item
        if want.rating_key is not None:
            rating_keys[where.relative_path] = want.rating_key
        wants.append(Want(where.relative_path, want.size_bytes, want.rule,
                          frozenset(want.users), want.priority, tuple(want.queues)))
    cached = ledger.files()
    in_ledger = {entry.relative_path for entry in cached}
    on_fast = frozenset(path for path in {w.relative_path for w in wants} - in_ledger
                        if os.path.lexists(root / path))
    live = set()
    for host_path in live_host_paths:
        where = locator.locate(host_path)
        if where is not None:
            live.add(where.relative_path)
    failing = failing_rules(ledger.conn)
    evaluated = frozenset(evaluated_rules)
    # A rule failing this round counts from when it started failing (or now).
    failing_now = {name: failing.get(name, now) for name in failed_rules}
    failing_now.update({name: since for name, since in failing.items()
                        if name not in evaluated})
    attributions = merged_attributions(ledger.attributions(), wants, now)
    plan_input = PlanInput(
        now=now,
        rules={rule.name: rule for rule in config.rules},
        evaluated_rules=evaluated,
        wants=tuple(wants),
        cached=tuple(cached),
        attributions=tuple(attributions),
        space=space,
        max_size=config.cache.max_size,
        min_free=config.cache.min_free,
        watched=watched_from_plays(ledger, plays, rating_keys, attributions),
        on_fast=on_fast,
        live=frozenset(live),
        failed_rules=failing_now,
        source_failure_grace_seconds=config.source_failure_grace_seconds,
        holds=ledger.holds(now),
        evicted_for_space=evicted_for_space(ledger.conn, now - COOLDOWN_SECONDS),
        cooldown_seconds=COOLDOWN_SECONDS,
        reserved_bytes=sum(entry.fast.size_bytes for entry in ledger.files(sidecars=True)
                           if entry.sidecar_of is not None),
    )
    return Gathered(plan_input, located, items, outside, rating_keys, tuple(windows))


def record_round(ledger: Ledger, plan_input: PlanInput,
                 failed_rules: Mapping[str, tuple[str, ...]],
                 gathered: Gathered | None = None) -> None:
    """After a real (not dry) round: store the selections and the failure memory.

    Attributions of evaluated rules that did not select a file are dropped unless the
    file is cached (its keep rule may still need when it was last selected).
    """
    now = plan_input.now
    cached = {entry.relative_path for entry in ledger.files()}
    selected = {(w.relative_path, w.rule) for w in plan_input.wants}
    keep = []
    for row in plan_input.attributions:
        if (row.rule not in plan_input.evaluated_rules or (row.relative_path, row.rule) in selected
                or row.relative_path in cached) and row.rule in plan_input.rules:
            keep.append(row)
    with ledger.transaction():
        for row in keep:
            ledger.conn.execute(
                "INSERT INTO attributions VALUES (?,?,?,?,?) ON CONFLICT (relative_path, rule, user)"
                " DO UPDATE SET first_selected_at = min(first_selected_at, excluded.first_selected_at),"
                " last_selected_at = max(last_selected_at, excluded.last_selected_at)",
                (row.relative_path, row.rule, row.user, row.first_selected_at,
                 row.last_selected_at))
        ledger.prune_attributions((row.relative_path, row.rule, row.user) for row in keep)
        if gathered is not None:
            ledger.conn.executemany(
                "INSERT OR REPLACE INTO selected_items VALUES (?, ?, ?)",
                [(path, gathered.rating_keys.get(path), gathered.items.get(path, ""))
                 for path in gathered.items])
        attributed = {row.relative_path for row in keep}
        for (path,) in ledger.conn.execute("SELECT relative_path FROM selected_items").fetchall():
            if path not in attributed and path not in cached:
                ledger.conn.execute("DELETE FROM selected_items WHERE relative_path = ?", (path,))
        if gathered is not None:
            _record_windows(ledger, plan_input, gathered.windows)
        for name in plan_input.evaluated_rules:
            if name in failed_rules:
                ledger.conn.execute(
                    "INSERT INTO failing_rules VALUES (?, ?, ?) ON CONFLICT (rule)"
                    " DO UPDATE SET why = excluded.why",
                    (name, now, ", ".join(failed_rules[name])))
            else:
                ledger.conn.execute("DELETE FROM failing_rules WHERE rule = ?", (name,))


def _record_windows(ledger: Ledger, plan_input: PlanInput, windows: Iterable[LookAhead]) -> None:
    """The evaluated rules' look-ahead windows replace what those rules chose before."""
    for name in plan_input.evaluated_rules:
        ledger.conn.execute("DELETE FROM lookahead WHERE rule = ?", (name,))
    ledger.conn.executemany(
        "INSERT OR REPLACE INTO lookahead VALUES (?, ?, ?, ?, ?, ?)",
        [(w.rule, ", ".join(w.users), w.show, w.episodes, w.reason, plan_input.now)
         for w in windows])
