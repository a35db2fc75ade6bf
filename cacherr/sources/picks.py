"""Pure choices over cacherr types: episode order, first unwatched, media versions."""

from __future__ import annotations

from collections.abc import Sequence

from cacherr.sources.types import Item, MediaFile


def episodes_after(episodes: Sequence[Item], current: tuple[int, int], count: int) -> list[Item]:
    """The next `count` episodes after the (season, episode) `current` in that order,
    across seasons (season 0, specials, is left out unless `current` is a special)."""
    ordered = sorted((e for e in episodes if e.season_index or current[0] == 0), key=lambda e: e.order)
    later = [e for e in ordered if e.order > current]
    return later[:count]


def first_unwatched(episodes: Sequence[Item], count: int, today: str,
                    watched: set[int] | None = None) -> list[Item]:
    """The first `count` episodes not watched (by `watched` rating keys if given, else by
    the episodes' own view state), released by `today`, that have files."""
    result = []
    for episode in sorted(episodes, key=lambda e: e.order):
        if not episode.season_index:
            continue  # specials are not "the next episode"
        seen = episode.rating_key in watched if watched is not None else episode.watched
        if seen or not episode.files or (episode.released and episode.released > today):
            continue
        result.append(episode)
        if len(result) >= count:
            break
    return result


def choose_files(item: Item, versions: str) -> tuple[MediaFile, ...]:
    """Files of the item's versions per a rule's `versions`: all, smallest or largest
    (by the version's total size; ties keep Plex's order)."""
    if not item.versions:
        return ()
    if versions == "smallest":
        return min(item.versions, key=lambda v: v.size_bytes).files
    if versions == "largest":
        return max(item.versions, key=lambda v: v.size_bytes).files
    return item.files
