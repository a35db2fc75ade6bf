"""Plex Media Server as cacherr types (with `plextv.py` and `errors.py`, the only importers of plexapi).

Every PlexServer/MyPlexAccount is built on one `SourceSession` (URL overrides, timeouts,
retries, request counts). plexapi carries the requests; the answers' elements are
converted one by one (`convert`), so one odd element is skipped and counted, never fatal.

Requests grow with users and libraries, never with items, and one round asks each
question once: lists come in large pages, items in batches (`/library/metadata/1,2,3`),
the episodes of every show a round needs in one listing per library
(`/library/sections/<id>/all?type=4&show.id=1,2,3`), the play history in one request
whose start the round plans before asking, and a listing already fetched serves every
narrower one.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from urllib.parse import urlencode
from xml.etree.ElementTree import Element

import plexapi.exceptions
from plexapi.server import PlexServer

from cacherr.sources import sessions as live
from cacherr.sources.convert import Skips, each, pages, to_history, to_item
from cacherr.sources.errors import FAILURES, SourceError, failure, not_found
from cacherr.sources.http import SourceSession
from cacherr.sources.plextv import PlexTvMixin
from cacherr.sources.types import HistoryEntry, Item, Session

__all__ = ["PlexAdapter", "SourceError", "ALL", "PAGE_SIZE"]

log = logging.getLogger(__name__)

PAGE_SIZE = 10_000  # one page holds a 10,000-item library: requests do not grow with it
BATCH_SIZE = 200  # rating keys per /library/metadata/a,b,c or show.id=a,b,c request
TYPE_NUMBERS = {"movie": 1, "show": 2, "season": 3, "episode": 4}
ALL = "all"  # a planned history start meaning "the whole history"


class PlexAdapter(PlexTvMixin):
    """Plex Media Server and plex.tv for one round (every answer is reused within it).

    Given the server URL, the owner's token and a SourceSession; every method returns
    cacherr types and raises SourceError naming the source that failed.
    """

    def __init__(self, url: str, token: str, session: SourceSession, timeout_seconds: float) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.session = session
        self.timeout_seconds = timeout_seconds
        self.skips = Skips()
        self._server: PlexServer | None = None
        self._account = None
        self.forget()

    def forget(self) -> None:
        """Forget every answer of this round (the connection is kept): the next questions
        are asked again. A long-lived adapter (the engine's re-poll) calls it per poll."""
        self._episodes: dict[tuple[int, str | None], list[Item]] = {}
        self._items: dict[tuple[int, str | None], Item | None] = {}
        self._listings: dict[tuple, list[tuple[tuple, list[Item]]]] = {}
        self._decks: dict[tuple, list[Item]] = {}
        self._sections: list[dict] | None = None
        self._sessions: list[Session] | None = None
        self._history: list[HistoryEntry] | None = None
        self._history_from: float | str | None = None  # what was fetched: epoch or ALL
        self._history_plan: float | str | None = None  # the earliest start asked for so far

    # ------------------------------------------------------------------ transport

    @property
    def server(self) -> PlexServer:
        if self._server is None:
            try:
                self._server = PlexServer(self.url, self.token, session=self.session,
                                          timeout=self.timeout_seconds)
            except FAILURES as error:
                raise failure("plex", error) from error
        return self._server

    def _as(self, token: str | None) -> PlexServer:
        """The server as another user sees it (their token), without a new connection."""
        if token is None or token == self.token:
            return self.server
        clone = copy.copy(self.server)
        clone._token = token
        clone._server = clone
        return clone

    def _query(self, key: str, token: str | None = None, headers: dict | None = None) -> Element:
        try:
            root = self._as(token).query(key, headers=headers)
        except FAILURES as error:
            raise failure("plex", error) from error
        if root is None:  # an empty 200: nothing in it
            return Element("MediaContainer", size="0")
        return root

    def _elements(self, key: str, token: str | None = None,
                  page_size: int = PAGE_SIZE) -> list[tuple[Element, Element]]:
        """Every (element, its container) of a list, in pages of `page_size`."""
        return pages(lambda k, headers: self._query(k, token, headers), key, page_size)

    def _convert(self, pairs, convert, what: str) -> list:
        return list(each(pairs, convert, self.skips, "plex", what))

    @property
    def skipped_elements(self) -> dict[str, int]:
        return dict(self.skips.by_source)

    @property
    def machine_identifier(self) -> str:
        return self.server.machineIdentifier

    # ------------------------------------------------------------------ libraries

    def sections(self) -> list[dict]:
        """[{id, title, type, locations, hidden}] of the movie and show libraries
        (`hidden`: excluded from Home, so left out of the server-wide On Deck)."""
        if self._sections is None:
            data = self._query("/library/sections")
            found = []
            for d in data:
                try:
                    if d.get("type") in ("movie", "show"):
                        found.append({"id": int(d.get("key")), "title": d.get("title") or "",
                                      "type": d.get("type"), "hidden": _count(d.get("hidden")) or 0,
                                      "locations": [loc.get("path") for loc in d.findall("Location")
                                                    if loc.get("path")]})
                except (TypeError, ValueError) as error:
                    self.skips.add("plex", "library", error, d)
            self._sections = found
        return self._sections

    def on_deck(self, token: str | None = None, section_ids: Iterable[int] | None = None) -> list[Item]:
        """The On Deck list of the user whose server token this is, for those libraries
        (None: every movie and show library). `/library/onDeck` leaves out libraries hidden
        from Home, so those are read one by one; a few libraries alone are read directly
        when that takes no more requests."""
        sections = self.sections()
        wanted = [s for s in sections if section_ids is None or s["id"] in set(section_ids)]
        memo = (token, tuple(sorted(s["id"] for s in wanted)))
        if memo not in self._decks:
            hidden = [s for s in wanted if s["hidden"]]
            shown = [s for s in wanted if not s["hidden"]]
            one_by_one = hidden if shown and 1 + len(hidden) < len(wanted) else wanted
            keys = ([] if one_by_one is wanted else ["/library/onDeck?includeGuids=1"])
            keys += [f"/library/sections/{s['id']}/onDeck?includeGuids=1" for s in one_by_one]
            ids = {s["id"] for s in wanted}
            items: dict[int, Item] = {}
            for key in keys:
                for item in self._convert(self._elements(key, token), to_item, "On Deck item"):
                    if item.type in ("movie", "episode") and item.library_id in ids | {None}:
                        items.setdefault(item.rating_key, item)
            self._decks[memo] = sorted(items.values(), key=lambda i: -(i.last_viewed_at or 0))
        return self._decks[memo]

    def items(self, rating_keys: Iterable[int], token: str | None = None) -> list[Item]:
        """Fetch items by rating key, in batches (missing keys are simply absent)."""
        wanted = set(rating_keys)
        keys = sorted(k for k in wanted if (k, token) not in self._items)
        for start in range(0, len(keys), BATCH_SIZE):
            batch = keys[start:start + BATCH_SIZE]
            try:
                pairs = self._elements(f"/library/metadata/{','.join(map(str, batch))}", token)
            except SourceError as error:
                if not not_found(error):
                    raise
                pairs = []  # none of them exists any more
            for item in self._convert(pairs, to_item, "item"):
                self._items[(item.rating_key, token)] = item
            for key in batch:
                self._items.setdefault((key, token), None)
        return [self._items[(k, token)] for k in sorted(wanted) if self._items.get((k, token))]

    def episodes_of(self, show_keys: Iterable[int], token: str | None = None,
                    sections: dict[int, int | None] | None = None) -> dict[int, list[Item]]:
        """{show: its episodes in (season, episode) order, with that user's view state}, in
        one listing per library (`sections`: show → its library where known; the others
        are looked for in every show library)."""
        sections = sections or {}
        wanted = set(show_keys)
        missing = sorted(k for k in wanted if (k, token) not in self._episodes)
        show_libraries = [s["id"] for s in self.sections() if s["type"] == "show"] if missing else []
        by_library: dict[int, list[int]] = {}
        for key in missing:
            known = sections.get(key)
            for library in [known] if known in show_libraries else show_libraries:
                by_library.setdefault(library, []).append(key)
        found: dict[int, list[Item]] = {key: [] for key in missing}
        for library, keys in sorted(by_library.items()):
            for start in range(0, len(keys), BATCH_SIZE):
                batch = ",".join(map(str, keys[start:start + BATCH_SIZE]))
                listing = f"/library/sections/{library}/all?type=4&includeGuids=1&show.id={batch}"
                for item in self._convert(self._elements(listing, token), to_item, "episode"):
                    if item.type == "episode" and item.show_rating_key in found:
                        found[item.show_rating_key].append(item)
        for key, episodes in found.items():
            unique = {e.rating_key: e for e in episodes}
            self._episodes[(key, token)] = sorted(unique.values(), key=lambda e: e.order)
        return {key: self._episodes[(key, token)] for key in wanted}

    def episodes(self, show_rating_key: int, token: str | None = None) -> list[Item]:
        """A show's episodes in (season, episode) order, with that user's view state."""
        return self.episodes_of([show_rating_key], token)[show_rating_key]

    def section_items(self, section_id: int, kind: str, *, added_since: float | None = None,
                      updated_since: float | None = None, label_id: str | None = None) -> list[Item]:
        """All `kind` items (movie, show, episode) of a library, optionally only those added
        or updated since a time. A listing fetched earlier this round that covers the
        request (no time filter, or the same one from earlier) answers it."""
        memo = (section_id, kind, label_id)
        wanted = ("added", added_since) if added_since is not None else (
            ("updated", updated_since) if updated_since is not None else (None, None))
        for (what, since), items in self._listings.get(memo, []):
            if what is None or (what == wanted[0] and since <= wanted[1]):
                return [i for i in items if _since(i, *wanted)]
        items = self._fetch_listing(section_id, kind, added_since, updated_since, label_id)
        self._listings.setdefault(memo, []).append((wanted, items))
        return items

    def _fetch_listing(self, section_id, kind, added_since, updated_since, label_id) -> list[Item]:
        args: dict[str, object] = {"type": TYPE_NUMBERS[kind], "includeGuids": 1}
        if added_since is not None:
            args["addedAt>>"] = int(added_since)
        if updated_since is not None:
            args["updatedAt>>"] = int(updated_since)
        if label_id is not None:
            args["label"] = label_id
        query = urlencode(args).replace("%3E%3E=", ">>=")
        pairs = self._elements(f"/library/sections/{section_id}/all?{query}")
        return [i for i in self._convert(pairs, to_item, "library item") if i.type == kind]

    def label_ids(self, section_id: int) -> dict[str, str]:
        """{label title (casefolded): label id} for a library."""
        try:
            data = self.server.query(f"/library/sections/{section_id}/label")
        except plexapi.exceptions.NotFound:
            return {}
        except FAILURES as error:
            raise failure("plex", error) from error
        return {d.get("title", "").casefold(): d.get("key") for d in data if d.get("key")}

    # ------------------------------------------------------------------ sessions and plays

    def sessions(self) -> list[Session]:
        """Live playbacks with the files they read (needs the owner's token): one request,
        plus one batched item request when some are transcoded (`sessions.resolve`)."""
        if self._sessions is None:
            pairs = self._elements("/status/sessions")
            records = self._convert(pairs, live.parse_session, "session")
            keys = live.needing_source(records)
            items = {item.rating_key: item for item in self.items(keys)} if keys else {}
            for key in keys - set(items):
                log.debug("playing item %s is not in the library: no file to protect", key)
            self._sessions = live.resolve(records, items)
        return self._sessions

    def plan_history(self, since: float | str | None) -> None:
        """Say, before the round reads the history, how far back some part of it will
        look (an epoch, or ALL): the one history request then starts there."""
        if since is None:
            return
        self._history_plan = _earlier(self._history_plan, since)

    def history(self, *, since: float | None = None, account_id: int | None = None) -> list[HistoryEntry]:
        """Plays since `since` (None: all), newest first, of one account or all (the owner's
        token sees every account). One request per round, from the earliest start planned;
        a later, earlier start asks again."""
        start = since if since is not None else ALL
        if self._history is None or _earlier(self._history_from, start) != self._history_from:
            start = _earlier(self._history_plan, start)
            self._history = self._history_rows(start)
            self._history_from = start
            self._history_plan = start
        return [r for r in self._history if (since is None or r.viewed_at >= since)
                and (account_id is None or r.account_id == account_id)]

    def _history_rows(self, start: float | str) -> list[HistoryEntry]:
        args: dict[str, object] = {"sort": "viewedAt:desc"}
        if start != ALL:
            args["viewedAt>"] = int(start)
        query = urlencode(args).replace("%3E=", ">=")  # viewedAt>=N, as plexapi writes it
        pairs = self._elements("/status/sessions/history/all?" + query)
        return self._convert(pairs, to_history, "history row")


def _count(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _since(item: Item, what: str | None, since: float | None) -> bool:
    if what == "added":
        return (item.added_at or 0) >= since
    if what == "updated":
        return max(item.updated_at or 0, item.added_at or 0) >= since
    return True


def _earlier(a: float | str | None, b: float | str | None) -> float | str | None:
    """The earlier of two history starts (None: not set; ALL: the beginning)."""
    if a is None:
        return b
    if b is None:
        return a
    if ALL in (a, b):
        return ALL
    return min(a, b)
