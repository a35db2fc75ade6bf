"""Trakt lists (plain JSON over requests) and the GUID index that maps them to local items.

A real Plex server never matches `guid=imdb://...` in a search, so every movie and show of
the local library is indexed by its imdb/tmdb/tvdb (and plex://) GUIDs. The index is kept
in the state directory across cycles, refreshed by `updatedAt`, rebuilt weekly, and only
built when a rule needs it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import requests

from cacherr.sources.errors import SourceError
from cacherr.sources.http import RequestFailed, SourceSession

TRAKT_ORIGIN = "https://api.trakt.tv"
INDEX_FILE = "guid-index.json"
REBUILD_AFTER_SECONDS = 7 * 86400.0
REFRESH_MARGIN_SECONDS = 3600.0


def trakt_path(list_name: str) -> str:
    """Given a rule's `list` (movies/trending, shows/popular, users/NAME/lists/SLUG,
    users/NAME/watchlist), return the Trakt API path."""
    parts = list_name.strip("/").split("/")
    if parts[0] == "users" and len(parts) == 4 and parts[2] == "lists":
        return f"/users/{parts[1]}/lists/{parts[3]}/items"
    if parts[0] == "users" and len(parts) == 3 and parts[2] == "watchlist":
        return f"/users/{parts[1]}/watchlist"
    if parts[0] in ("movies", "shows") and len(parts) == 2:
        return f"/{parts[0]}/{parts[1]}"
    raise ValueError(f"unknown Trakt list {list_name!r}")


def trakt_ids(entry: dict, list_name: str) -> tuple[str, dict] | None:
    """Given one element of a Trakt list, return (movie|show, ids), or None (episodes...)."""
    for kind in ("movie", "show"):
        if isinstance(entry.get(kind), dict):
            ids = entry[kind].get("ids")
            return kind, ids if isinstance(ids, dict) else {}
    if isinstance(entry.get("ids"), dict):  # movies/popular and shows/popular list the objects themselves
        kind = "movie" if list_name.startswith("movies/") else "show"
        return kind, entry["ids"]
    return None


def guids_of(ids: dict) -> list[str]:
    """imdb first, then tmdb, then tvdb (SPEC §4, order of selection)."""
    result = []
    if ids.get("imdb"):
        result.append(f"imdb://{ids['imdb']}")
    if ids.get("tmdb"):
        result.append(f"tmdb://{ids['tmdb']}")
    if ids.get("tvdb"):
        result.append(f"tvdb://{ids['tvdb']}")
    return result


class TraktClient:
    def __init__(self, session: SourceSession, client_id: str | None) -> None:
        self.session = session
        self.client_id = client_id

    def list(self, list_name: str, limit: int) -> list[tuple[str, list[str]]]:
        """Return [(movie|show, guids)] of a Trakt list, at most `limit` entries."""
        if not self.client_id:
            raise SourceError("trakt", "trakt.client_id is not set")
        try:
            path = trakt_path(list_name)
        except ValueError as error:
            raise SourceError("trakt", str(error)) from error
        headers = {"Content-Type": "application/json", "trakt-api-version": "2",
                   "trakt-api-key": self.client_id, "User-Agent": "cacherr/0.1"}
        try:
            response = self.session.get(f"{TRAKT_ORIGIN}{path}", headers=headers,
                                        params={"page": 1, "limit": limit})
            if response.status_code != 200:
                raise SourceError("trakt", f"{path} answered HTTP {response.status_code}")
            data = response.json()
        except RequestFailed as error:
            raise SourceError("trakt", str(error)) from error
        except (requests.RequestException, ValueError) as error:
            raise SourceError("trakt", f"{path}: {type(error).__name__}") from error
        result = []
        for entry in data[:limit] if isinstance(data, list) else []:
            found = trakt_ids(entry, list_name) if isinstance(entry, dict) else None
            if found:
                result.append((found[0], guids_of(found[1])))
        return result


class GuidIndex:
    """{guid: [(rating key, type)]} of every movie and show, persisted in the state dir."""

    def __init__(self, state_dir: Path, *, persist: bool = True) -> None:
        self.path = Path(state_dir) / INDEX_FILE
        self.persist = persist  # False (plan): built in memory, never written
        self.data: dict = {}

    def load(self) -> None:
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def save(self) -> None:
        if not self.persist:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".guid-index.")
        with os.fdopen(fd, "w") as handle:
            json.dump(self.data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def refresh(self, plex, now: float) -> None:
        """Bring the index up to date: a full listing the first time (and weekly, or when
        the server changed), else only what was added or updated since the last refresh."""
        self.load()
        machine = plex.machine_identifier
        stale = (self.data.get("server") != machine
                 or now - float(self.data.get("built_at", 0)) > REBUILD_AFTER_SECONDS)
        since = None if stale else float(self.data.get("refreshed_at", 0)) - REFRESH_MARGIN_SECONDS
        items: dict[str, dict] = {} if stale else dict(self.data.get("items", {}))
        for section in plex.sections():
            kind = "movie" if section["type"] == "movie" else "show"
            for item in plex.section_items(section["id"], kind, updated_since=since):
                items[str(item.rating_key)] = {"type": item.type, "section": section["id"],
                                               "added": item.added_at, "guids": sorted(item.guids)}
        self.data = {"version": 1, "server": machine, "items": items, "refreshed_at": now,
                     "built_at": now if stale else self.data.get("built_at", now)}
        self.save()
        self._lookup = None

    def section_of(self, rating_key: int) -> int | None:
        """The library an indexed item is in (None: not known)."""
        return self.data.get("items", {}).get(str(rating_key), {}).get("section")

    def added_at(self, rating_key: int) -> float | None:
        """When an indexed item was added (None: not known); nothing of it was played earlier."""
        return self.data.get("items", {}).get(str(rating_key), {}).get("added")

    def forget(self, rating_keys) -> None:
        """Drop items that the server no longer has."""
        for key in rating_keys:
            self.data.get("items", {}).pop(str(key), None)

    def find(self, guids, kind: str | None = None) -> list[int]:
        """Rating keys of local items carrying the first of `guids` that matches anything."""
        lookup = getattr(self, "_lookup", None)
        if lookup is None:
            lookup = {}
            for key, entry in self.data.get("items", {}).items():
                for guid in entry["guids"]:
                    lookup.setdefault(_norm(guid), []).append((int(key), entry["type"]))
            self._lookup = lookup
        for guid in guids:
            hits = [rk for rk, t in lookup.get(_norm(guid), []) if kind is None or t == kind]
            if hits:
                return hits
        return []


def _norm(guid: str) -> str:
    """Legacy agent guids (com.plexapp.agents.imdb://tt1?lang=en) become imdb://tt1."""
    guid = guid.split("?", 1)[0]
    for legacy, modern in (("com.plexapp.agents.imdb://", "imdb://"),
                           ("com.plexapp.agents.themoviedb://", "tmdb://"),
                           ("com.plexapp.agents.thetvdb://", "tvdb://")):
        if guid.startswith(legacy):
            guid = modern + guid[len(legacy):].split("/", 1)[0]
    return guid.casefold()
