"""Putting files back on request (`cacherr evict`, `POST /api/evict`)."""

from __future__ import annotations

import posixpath
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cacherr.config.model import Config
from cacherr.cycle.execute import FAILURE_REASONS
from cacherr.cycle.gather import fast_root
from cacherr.cycle.locate import Locator
from cacherr.engine import Engine, EngineError, Held, Refused, paths
from cacherr.sources.pathmap import PathMapper
from cacherr.state.db import DATABASE_NAME
from cacherr.state.ledger import Ledger


def why_not_evictable(config: Config) -> str | None:
    """Why nothing can be evicted on this host now, or None: the state database missing
    (its pool not mounted?) or the fast branch not mounted. Checked before anything is
    created: a missing state directory must not become a new, empty ledger."""
    database = Path(config.state_dir) / DATABASE_NAME
    if not database.is_file():
        return (f"no state database at {database}: is the disk that holds state_dir "
                "mounted? (nothing to evict if cacherr never ran)")
    cache = config.cache
    try:
        if cache.layout == "union":
            paths.require_fast_branch(Path(cache.union.fast))
        else:
            paths.require_cache_dir(Path(cache.symlink.dir))
    except Refused as refused:
        return f"{refused}"
    return None


class UnknownPath(ValueError):
    """A path given by a user that is outside the roots or not cached by cacherr."""


def resolve(config: Config, ledger: Ledger, user_paths: Iterable[str], *,
            cached_only: bool = True) -> list[str]:
    """Given paths as a user writes them, return their ledger paths; raise UnknownPath
    naming every one that does not resolve (or, with `cached_only`, is not cached).

    A path may be written as Plex sees it, as this host sees it (the merged view or a
    `paths` root), as its cached copy on the fast branch, or as `ls` lists it (relative);
    `..` is resolved first, and a path that then leaves the roots is refused.
    """
    mapper, locator = PathMapper(config.paths), Locator(config)
    fast = fast_root(config)
    cached = {entry.relative_path for entry in ledger.files()}
    resolved, problems = [], []
    for given in user_paths:
        relative = _relative(given, mapper, locator, fast)
        if relative is None:
            problems.append(f"{given}: outside the configured roots (paths, cache)")
        elif cached_only and relative not in cached:
            problems.append(f"{given}: not cached by cacherr")
        else:
            resolved.append(relative)
    if problems:
        raise UnknownPath("\n".join(problems))
    return list(dict.fromkeys(resolved))


def _relative(given: str, mapper: PathMapper, locator: Locator, fast: Path) -> str | None:
    """The ledger path of one user-given path, or None if it is outside every root."""
    normal = posixpath.normpath(given)
    if not normal.startswith("/"):  # as `ls` lists it
        parts = normal.split("/")
        return None if normal in (".", "") or ".." in parts else normal
    candidates = [mapper.to_host(normal), normal]
    for candidate in candidates:
        where = locator.locate(candidate) if candidate else None
        if where is not None:
            return where.relative_path
    prefix = str(fast).rstrip("/") + "/"
    if normal.startswith(prefix) and len(normal) > len(prefix):
        return normal[len(prefix):]
    return None


@dataclass
class EvictOutcome:
    evicted: list[str] = field(default_factory=list)
    untracked: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def as_dict(self) -> dict:
        return {"evicted": self.evicted, "untracked": self.untracked,
                "failed": [{"path": p, "reason": r} for p, r in self.failed]}


def evict_paths(engine: Engine, ledger: Ledger, relative_paths: Iterable[str], *,
                hold_seconds: float | None = None, now: float | None = None,
                mover_list=None) -> EvictOutcome:
    """Evict each path (verified by the engine), then hold them out of plans if asked."""
    now = time.time() if now is None else now
    outcome = EvictOutcome()
    if mover_list is not None:
        engine.mover_list = mover_list  # the engine unlists the sidecars it evicts
    paths = list(relative_paths)
    if hold_seconds:
        # Hold first: a cycle planning meanwhile must not cache them straight back.
        with ledger.transaction():
            ledger.hold(paths, now + hold_seconds)
    for path in paths:
        try:
            result = engine.evict(path)
        except Held as error:
            outcome.failed.append((path, f"{error.reason}: {Held.WHY.get(error.reason, '')}; "
                                         "try again once it ends"))
            continue
        except EngineError as error:
            reason = next((name for kind, name in FAILURE_REASONS.items()
                           if isinstance(error, kind)), "other")
            outcome.failed.append((path, f"{reason}: {error.reason}"))
            continue
        if mover_list is not None:
            mover_list.remove(result.fast_path)  # only once the eviction is durable
        (outcome.untracked if result.outcome == "untracked" else outcome.evicted).append(path)
    return outcome
