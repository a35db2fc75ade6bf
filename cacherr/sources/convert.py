"""Plex's XML elements as cacherr types, one element at a time.

Real servers send elements cacherr cannot use: history rows of deleted items without a
`ratingKey`, guide items of Live TV, a non-numeric id, a session without `<User>`. Each
element is converted on its own: one that cannot be read is skipped (logged at debug,
counted in `Skips`), and never takes its neighbours down with it. Attributes a listing
puts only on its `MediaContainer` (`librarySectionID`, `librarySectionTitle`,
`grandparentTitle`, `parentIndex` in some listings) fill in what an item leaves out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from typing import TypeVar
from xml.etree.ElementTree import Element

from cacherr.sources.types import HistoryEntry, Item, MediaFile, MediaVersion

log = logging.getLogger(__name__)

T = TypeVar("T")
_ABSOLUTE = re.compile(r"^(?:/|[A-Za-z]:[\\/]|\\\\)")


class Skips:
    """Elements skipped because they could not be read, by source (for metrics)."""

    def __init__(self) -> None:
        self.by_source: dict[str, int] = {}

    def add(self, source: str, what: str, error: Exception, element: Element) -> None:
        self.by_source[source] = self.by_source.get(source, 0) + 1
        log.debug("skipped a %s element <%s %s>: %s: %s", what, element.tag,
                  " ".join(f'{k}="{v}"' for k, v in list(element.attrib.items())[:6]),
                  type(error).__name__, error)


def each(pairs: Iterable[tuple[Element, Element | None]],
         convert: Callable[[Element, Element | None], T | None], skips: Skips,
         source: str, what: str) -> Iterator[T]:
    """Convert each (element, its container), skipping (and counting) elements that fail;
    a None result means "not one of ours" and is dropped without counting."""
    for element, container in pairs:
        try:
            value = convert(element, container)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as error:
            skips.add(source, what, error, element)
            continue
        if value is not None:
            yield value


def pages(query: Callable[[str, dict], Element | None], key: str, page_size: int,
          max_pages: int = 1000) -> list[tuple[Element, Element]]:
    """Every (element, its container) of a list, asking `query(key, headers)` page by page
    with the X-Plex-Container-Start/Size headers. A page shorter than asked, an empty one,
    or reaching the container's `totalSize` ends it; `max_pages` bounds a server that keeps
    promising more."""
    result: list[tuple[Element, Element]] = []
    start = 0
    for _ in range(max_pages):
        root = query(key, {"X-Plex-Container-Start": str(start), "X-Plex-Container-Size": str(page_size)})
        children = list(root) if root is not None else []
        result += [(child, root) for child in children]
        start += len(children)
        total = root.get("totalSize") if root is not None else None
        if len(children) < page_size or (total is not None and total.isdigit() and start >= int(total)):
            break
    return result


def number(element: Element, name: str, default: int | None = None) -> int | None:
    """An integer attribute; absent or empty → `default`; anything else non-numeric raises."""
    value = element.get(name)
    if value is None or value == "":
        return default
    return int(value)


def epoch(element: Element, name: str) -> float | None:
    value = element.get(name)
    if value is None or value == "":
        return None
    return float(int(float(value)))


def is_absolute(path: str | None) -> bool:
    """A path a disk can hold: POSIX, Windows drive or UNC (a bare file name is not)."""
    return bool(path) and bool(_ABSOLUTE.match(path))


def versions_of(element: Element) -> tuple[MediaVersion, ...]:
    """Every `Media` with at least one `Part` that names an absolute file."""
    result = []
    for media in element.findall("Media"):
        files = tuple(MediaFile(part.get("file"), number(part, "size", 0) or 0)
                      for part in media.findall("Part") if is_absolute(part.get("file")))
        if files:
            result.append(MediaVersion(files, media.get("videoResolution"), number(media, "id")))
    return tuple(result)


def _released(value: str | None) -> str | None:
    if not value:
        return None
    return date.fromisoformat(value[:10]).isoformat()


def show_key(element: Element, container: Element | None = None) -> int | None:
    """An episode's show: `grandparentRatingKey`, else the tail of `grandparentKey`
    (history rows carry only that), else the container's."""
    for holder in (element, container):
        if holder is None:
            continue
        key = holder.get("grandparentRatingKey")
        if key and key.isdigit():
            return int(key)
        tail = (holder.get("grandparentKey") or "").rstrip("/").rsplit("/", 1)[-1]
        if tail.isdigit():
            return int(tail)
    return None


def _inherited(element: Element, container: Element | None, name: str) -> str | None:
    value = element.get(name)
    if (value is None or value == "") and container is not None:
        value = container.get(name)
    return value


def to_item(element: Element, container: Element | None = None) -> Item:
    """Given a movie/show/episode element (from a listing, a session or a batch) and its
    `MediaContainer`, return an Item; raise ValueError for one that names no usable item."""
    kind = element.get("type")
    rating_key = number(element, "ratingKey")
    if rating_key is None or not kind:
        raise ValueError("no ratingKey or type")
    guids = {g.get("id") for g in element.findall("Guid") if g.get("id")}
    if element.get("guid"):
        guids.add(element.get("guid"))
    section_id = _inherited(element, container, "librarySectionID")
    fields = dict(
        rating_key=rating_key, type=kind, title=element.get("title") or "",
        library=_inherited(element, container, "librarySectionTitle") or "",
        library_id=int(section_id) if section_id and section_id.isdigit() else None,
        guids=frozenset(guids), versions=versions_of(element),
        added_at=epoch(element, "addedAt"), updated_at=epoch(element, "updatedAt"),
        released=_released(element.get("originallyAvailableAt")),
        labels=frozenset(label.get("tag") for label in element.findall("Label") if label.get("tag")),
        view_count=number(element, "viewCount", 0) or 0,
        view_offset_ms=number(element, "viewOffset", 0) or 0,
        last_viewed_at=epoch(element, "lastViewedAt"),
        duration_ms=number(element, "duration", None),
    )
    if kind == "episode":
        season = _inherited(element, container, "parentIndex")
        fields.update(show_rating_key=show_key(element, container),
                      show_title=_inherited(element, container, "grandparentTitle"),
                      season_index=int(season) if season not in (None, "") else None,
                      episode_index=number(element, "index"))
    return Item(**fields)


def to_history(element: Element, container: Element | None = None) -> HistoryEntry | None:
    """A play from `/status/sessions/history/all`; None for a play of an item deleted since
    (no `ratingKey`): nothing on disk to hold any more."""
    if not element.get("ratingKey"):
        return None
    viewed = epoch(element, "viewedAt")
    if viewed is None:
        raise ValueError("no viewedAt")
    kind = element.get("type") or ""
    return HistoryEntry(
        rating_key=int(element.get("ratingKey")), account_id=int(element.get("accountID")),
        viewed_at=viewed, type=kind, show_rating_key=show_key(element) if kind == "episode" else None,
        season_index=number(element, "parentIndex"), episode_index=number(element, "index"))
