"""Taking over a PlexCache cache: its files on the pool become cacherr's (adopted), and its
`.plexcached` backups on the array are renamed back, so that every file is intact, tracked,
and evicted the cacherr way afterwards."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cacherr.config.model import Config
from cacherr.engine import Engine, EngineError, tidy

log = logging.getLogger(__name__)


@dataclass
class TakeOver:
    adopted: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def candidates(config: Config, listed: Iterable[str]) -> set[str]:
    """Share-relative paths PlexCache cached: the listed pool paths, and every file with a
    `.plexcached` backup on a slow branch."""
    fast = Path(config.cache.union.fast)
    found: set[str] = set()
    for line in listed:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.add(str(Path(line).relative_to(fast)))
        except ValueError:
            log.warning("take-over: %s is not on the pool %s; skipped", line, fast)
    for branch in config.cache.union.slow:
        for folder, _subfolders, files in os.walk(branch):
            for name in files:
                if name.endswith(tidy.PLEXCACHED_SUFFIX):
                    backup = Path(folder) / name
                    original = backup.with_name(name[: -len(tidy.PLEXCACHED_SUFFIX)])
                    found.add(str(original.relative_to(branch)))
    return found


def take_over(config: Config, engine: Engine, listed: Iterable[str] = ()) -> TakeOver:
    """Restore PlexCache's backups and adopt its pool copies; report what was done."""
    result = TakeOver()
    fast = Path(config.cache.union.fast)
    for relative in sorted(candidates(config, listed)):
        for branch in config.cache.union.slow:
            backup = Path(branch) / (relative + tidy.PLEXCACHED_SUFFIX)
            if not backup.exists():
                continue
            pool_copy = fast / relative
            if pool_copy.exists() and pool_copy.stat().st_size != backup.stat().st_size:
                result.problems.append(f"{backup}: differs in size from {pool_copy}; left "
                                       "as it is (compare them, keep one)")
                continue
            if tidy.restore_plexcached(backup) is None:
                result.problems.append(f"{backup}: the original name is taken; left as it is")
            else:
                result.restored.append(relative)
        if not (fast / relative).exists():
            continue  # only the array copy was left: nothing on the pool to adopt
        if engine.ledger.get(relative) is not None:
            continue
        try:
            engine.adopt(relative)
        except EngineError as error:
            result.problems.append(f"{relative}: not adopted: {error.reason}")
        else:
            result.adopted.append(relative)
    return result
