"""`cache.defer_while_playing`: hold transfers while someone streams.

`any` holds every transfer while a session is live; `same_disk` only those that would
read or write the slow disk a live file is on (one disk seeking for two is what stutters).
Finding a file's slow disk reads the ledger first, and otherwise looks on each slow
branch (only for a file about to be transferred, or one being streamed: disks that are
spinning anyway).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from cacherr.config.model import Config
from cacherr.state.ledger import Ledger


def slow_branch_of(config: Config, ledger: Ledger, relative_path: str) -> Path | None:
    entry = ledger.get(relative_path)
    if entry is not None and entry.slow_branch:
        return Path(entry.slow_branch)
    if config.cache.layout != "union":
        return None
    for branch in config.cache.union.slow:
        if os.path.lexists(Path(branch) / relative_path):
            return Path(branch)
    return None


def defer_reason(config: Config, ledger: Ledger, relative_path: str,
                 live: Iterable[str]) -> str | None:
    """Why a transfer of `relative_path` must wait now ("deferred"), or None."""
    live = [path for path in live if path != relative_path]
    mode = config.cache.defer_while_playing
    if mode == "never" or not live:
        return None
    if mode == "any":
        return "deferred"
    branch = slow_branch_of(config, ledger, relative_path)
    if branch is None:
        return None
    streamed = {slow_branch_of(config, ledger, path) for path in live}
    return "deferred" if branch in streamed else None
