"""What is cached, why, for whom, since when: one listing for `ls` and `/api/cached`."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from cacherr.config.model import Config
from cacherr.cycle.locate import Locator
from cacherr.state.ledger import Ledger


def cached_files(config: Config, ledger: Ledger) -> list[dict[str, Any]]:
    """Every ledger entry as a plain dict: path, host path, size, kind, layout, original,
    rules, users, since (first selection), cached_at."""
    locator = Locator(config)
    by_path: dict[str, list] = defaultdict(list)
    for row in ledger.attributions():
        by_path[row.relative_path].append(row)
    listing = []
    for entry in ledger.files():
        rows = by_path.get(entry.relative_path, [])
        listing.append({
            "path": entry.relative_path,
            "host_path": locator.host_path(entry),
            "fast_path": str(entry.fast_path),
            "size_bytes": entry.fast.size_bytes,
            "kind": entry.kind,
            "layout": entry.layout,
            "original": entry.original,
            "rules": sorted({row.rule for row in rows}),
            "users": sorted({row.user for row in rows if row.user}),
            "since": min((row.first_selected_at for row in rows), default=entry.cached_at),
            "cached_at": entry.cached_at,
        })
    return listing


def filtered(listing: list[dict[str, Any]], *, user: str | None = None,
             rule: str | None = None) -> list[dict[str, Any]]:
    """Entries selected by `rule` and/or for `user` (case-insensitive)."""
    result = listing
    if rule is not None:
        result = [entry for entry in result if rule in entry["rules"]]
    if user is not None:
        wanted = user.casefold()
        result = [entry for entry in result
                  if any(name.casefold() == wanted for name in entry["users"])]
    return result
