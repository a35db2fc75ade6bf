"""Putting files back on request (`cacherr evict`, `POST /api/evict`)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from cacherr.config.model import Config
from cacherr.cycle.execute import FAILURE_REASONS
from cacherr.cycle.locate import Locator
from cacherr.engine import Engine, EngineError
from cacherr.sources.pathmap import PathMapper
from cacherr.state.ledger import Ledger


class UnknownPath(ValueError):
    """A path given by a user that is outside the roots or not cached by cacherr."""


def resolve(config: Config, ledger: Ledger, user_paths: Iterable[str]) -> list[str]:
    """Given paths as Plex or the host sees them, return their ledger paths; raise
    UnknownPath naming every one that does not resolve to a cached file."""
    mapper, locator = PathMapper(config.paths), Locator(config)
    cached = {entry.relative_path for entry in ledger.files()}
    resolved, problems = [], []
    for given in user_paths:
        candidates = [given]
        host = mapper.to_host(given)
        if host is not None:
            candidates.insert(0, host)
        where = next((w for w in map(locator.locate, candidates) if w is not None), None)
        if where is None:
            problems.append(f"{given}: outside the configured roots (paths, cache)")
        elif where.relative_path not in cached:
            problems.append(f"{given}: not cached by cacherr")
        else:
            resolved.append(where.relative_path)
    if problems:
        raise UnknownPath("\n".join(problems))
    return list(dict.fromkeys(resolved))


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
        except EngineError as error:
            reason = next((name for kind, name in FAILURE_REASONS.items()
                           if isinstance(error, kind)), "other")
            outcome.failed.append((path, f"{reason}: {error.reason}"))
            continue
        if mover_list is not None:
            mover_list.remove(result.fast_path)  # only once the eviction is durable
        (outcome.untracked if result.outcome == "untracked" else outcome.evicted).append(path)
    return outcome
