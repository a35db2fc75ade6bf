"""The only module that imports plexapi: Plex Media Server and plex.tv, as cacherr types.

Every PlexServer/MyPlexAccount is built on one `SourceSession` (URL overrides, timeouts,
retries, request counts). Requests grow with users and libraries, never with items:
lists are paged in large pages, items are fetched in batches (`/library/metadata/1,2,3`),
and a show's episodes are fetched once per cycle per token. Objects from lists never
auto-reload (that would be one request per item).
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterable
from datetime import datetime
from urllib.parse import urlencode
from xml.etree.ElementTree import ParseError

# Isolate plexapi from a developer's own config file before it is imported.
os.environ.setdefault("PLEXAPI_CONFIG_PATH", os.devnull)

import plexapi.exceptions  # noqa: E402
import requests  # noqa: E402
from plexapi.myplex import MyPlexAccount  # noqa: E402
from plexapi.server import PlexServer  # noqa: E402

from cacherr.sources.http import RequestFailed, SourceSession  # noqa: E402
from cacherr.sources.types import (  # noqa: E402
    HistoryEntry,
    Item,
    MediaFile,
    MediaVersion,
    Session,
    User,
    WatchlistEntry,
)

log = logging.getLogger(__name__)

PAGE_SIZE = 1000  # large pages: fewer requests on big libraries
BATCH_SIZE = 200  # rating keys per /library/metadata/a,b,c request
TYPE_NUMBERS = {"movie": 1, "show": 2, "season": 3, "episode": 4}


class SourceError(Exception):
    """A source (plex, plextv, trakt) failed for this cycle."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


_FAILURES = (plexapi.exceptions.PlexApiException, RequestFailed, requests.RequestException,
             ParseError, AttributeError, ValueError, TypeError)


def _failure(source: str, error: Exception) -> SourceError:
    if isinstance(error, RequestFailed):
        return SourceError(error.source, str(error))
    text = str(error).split(";", 1)[0] if isinstance(error, plexapi.exceptions.PlexApiException) else (
        f"{type(error).__name__}: {error}")
    return SourceError(source, text or type(error).__name__)


def _epoch(value: datetime | None) -> float | None:
    # plexapi gives naive local datetimes; .timestamp() reads them as local: the true epoch.
    return value.timestamp() if value is not None else None


def _quiet(objects):
    for obj in objects:
        obj._autoReload = False
    return objects


def _date(value) -> str | None:
    return value.strftime("%Y-%m-%d") if value is not None else None


def to_item(obj) -> Item:
    """Given a plexapi Movie/Show/Episode (or a session/history form), return an Item."""
    kind = obj.type
    versions = []
    for media in getattr(obj, "media", None) or []:
        files = tuple(MediaFile(part.file, int(part.size or 0)) for part in media.parts if part.file)
        if files:
            versions.append(MediaVersion(files, media.videoResolution))
    guids = {g.id for g in (getattr(obj, "guids", None) or []) if g.id}
    if obj.guid:
        guids.add(obj.guid)
    labels = frozenset(label.tag for label in (getattr(obj, "labels", None) or []))
    section_id = getattr(obj, "librarySectionID", None)
    common = dict(
        rating_key=int(obj.ratingKey), type=kind, title=obj.title or "",
        library=getattr(obj, "librarySectionTitle", None) or "",
        library_id=section_id if isinstance(section_id, int) else None,
        guids=frozenset(guids), versions=tuple(versions),
        added_at=_epoch(getattr(obj, "addedAt", None)), updated_at=_epoch(getattr(obj, "updatedAt", None)),
        released=_date(getattr(obj, "originallyAvailableAt", None)), labels=labels,
        view_count=int(getattr(obj, "viewCount", 0) or 0),
        view_offset_ms=int(getattr(obj, "viewOffset", 0) or 0),
        last_viewed_at=_epoch(getattr(obj, "lastViewedAt", None)),
    )
    if kind == "episode":
        common.update(show_rating_key=_show_key(obj), show_title=obj.grandparentTitle,
                      season_index=obj.parentIndex, episode_index=obj.index)
    return Item(**common)


class PlexAdapter:
    """Plex Media Server and plex.tv for one cycle (results are reused within the cycle).

    Given the server URL, the owner's token and a SourceSession; every method returns
    cacherr types and raises SourceError naming the source that failed.
    """

    def __init__(self, url: str, token: str, session: SourceSession, timeout_seconds: float) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.session = session
        self.timeout_seconds = timeout_seconds
        self._server: PlexServer | None = None
        self._account: MyPlexAccount | None = None
        self._episodes: dict[tuple[int, str | None], list[Item]] = {}
        self._items: dict[tuple[int, str | None], Item | None] = {}
        self._history: dict[tuple, list[HistoryEntry]] = {}
        self._listings: dict[tuple, list[Item]] = {}
        self._sections: list[dict] | None = None

    # ------------------------------------------------------------------ Plex Media Server

    @property
    def server(self) -> PlexServer:
        if self._server is None:
            try:
                self._server = PlexServer(self.url, self.token, session=self.session,
                                          timeout=self.timeout_seconds)
            except _FAILURES as error:
                raise _failure("plex", error) from error
        return self._server

    def _as(self, token: str | None) -> PlexServer:
        """The server as another user sees it (their token), without a new connection."""
        if token is None or token == self.token:
            return self.server
        clone = copy.copy(self.server)
        clone._token = token
        clone._server = clone
        return clone

    def _fetch(self, key: str, token: str | None = None, **kwargs) -> list:
        try:
            return _quiet(self._as(token).fetchItems(key, **kwargs))
        except _FAILURES as error:
            raise _failure("plex", error) from error

    @property
    def machine_identifier(self) -> str:
        return self.server.machineIdentifier

    def sections(self) -> list[dict]:
        """[{id, title, type, locations}] of the movie and show libraries."""
        if self._sections is None:
            try:
                data = self.server.query("/library/sections")
            except _FAILURES as error:
                raise _failure("plex", error) from error
            self._sections = [
                {"id": int(d.get("key")), "title": d.get("title"), "type": d.get("type"),
                 "locations": [loc.get("path") for loc in d.findall("Location")]}
                for d in data if d.get("type") in ("movie", "show")
            ]
        return self._sections

    def on_deck(self, token: str | None = None) -> list[Item]:
        """The On Deck list of the user whose server token this is."""
        items = self._fetch("/library/onDeck?includeGuids=1", token, container_size=PAGE_SIZE)
        return [to_item(i) for i in items if i.type in ("movie", "episode")]

    def sessions(self) -> list[Session]:
        """Live playbacks (needs the owner's token)."""
        result = []
        for s in self._fetch("/status/sessions", None, container_size=PAGE_SIZE):
            if s.type not in ("movie", "episode"):
                continue
            player = s.player
            result.append(Session(
                user_name=s.usernames[0] if s.usernames else "", account_id=s._userId,
                item=to_item(s), state=(player.state if player is not None else "playing") or "playing",
                view_offset_ms=int(s.viewOffset or 0)))
        return result

    def history(self, *, since: float | None = None, account_id: int | None = None,
                max_results: int | None = None) -> list[HistoryEntry]:
        """Plays, newest first (the owner's token sees every account)."""
        memo = (since, account_id, max_results)
        if memo not in self._history:
            self._history[memo] = self._history_rows(since, account_id, max_results)
        return self._history[memo]

    def _history_rows(self, since, account_id, max_results) -> list[HistoryEntry]:
        args = {"sort": "viewedAt:desc"}
        if account_id is not None:
            args["accountID"] = account_id
        if since is not None:
            args["viewedAt>"] = int(since)
        key = "/status/sessions/history/all?" + urlencode(args)
        size = min(max_results, PAGE_SIZE) if max_results else PAGE_SIZE
        rows = self._fetch(key, None, container_size=size, maxresults=max_results)
        entries = []
        for h in rows:
            viewed = _epoch(h.viewedAt)
            if viewed is None or h.ratingKey is None:
                continue
            entries.append(HistoryEntry(
                rating_key=int(h.ratingKey), account_id=int(h.accountID), viewed_at=viewed, type=h.type,
                show_rating_key=_show_key(h) if h.type == "episode" else None,
                season_index=getattr(h, "parentIndex", None), episode_index=getattr(h, "index", None)))
        return entries

    def episodes(self, show_rating_key: int, token: str | None = None) -> list[Item]:
        """A show's episodes in (season, episode) order, with that user's watched state."""
        cache_key = (show_rating_key, token)
        if cache_key not in self._episodes:
            key = f"/library/metadata/{show_rating_key}/allLeaves?includeGuids=1"
            items = [to_item(e) for e in self._fetch(key, token, container_size=PAGE_SIZE)
                     if e.type == "episode"]
            self._episodes[cache_key] = sorted(items, key=lambda i: i.order)
        return self._episodes[cache_key]

    def items(self, rating_keys: Iterable[int], token: str | None = None) -> list[Item]:
        """Fetch items by rating key, in batches (missing keys are simply absent)."""
        wanted = set(rating_keys)
        keys = sorted(k for k in wanted if (k, token) not in self._items)
        for start in range(0, len(keys), BATCH_SIZE):
            batch = ",".join(str(k) for k in keys[start:start + BATCH_SIZE])
            try:
                found = _quiet(self._as(token).fetchItems(f"/library/metadata/{batch}",
                                                          container_size=PAGE_SIZE))
            except plexapi.exceptions.NotFound:
                found = []  # none of them exists any more
            except _FAILURES as error:
                raise _failure("plex", error) from error
            for obj in found:
                item = to_item(obj)
                self._items[(item.rating_key, token)] = item
            for key in keys[start:start + BATCH_SIZE]:
                self._items.setdefault((key, token), None)
        return [self._items[(k, token)] for k in sorted(wanted) if self._items.get((k, token))]

    def section_items(self, section_id: int, kind: str, *, added_since: float | None = None,
                      updated_since: float | None = None, label_id: str | None = None) -> list[Item]:
        """All `kind` items (movie, show, episode) of a library, optionally filtered
        (each listing is fetched once per round)."""
        memo = (section_id, kind, added_since, updated_since, label_id)
        if memo not in self._listings:
            self._listings[memo] = self._section_items(*memo)
        return self._listings[memo]

    def _section_items(self, section_id, kind, added_since, updated_since, label_id) -> list[Item]:
        args: dict[str, object] = {"type": TYPE_NUMBERS[kind], "includeGuids": 1}
        if added_since is not None:
            args["addedAt>>"] = int(added_since)
        if updated_since is not None:
            args["updatedAt>>"] = int(updated_since)
        if label_id is not None:
            args["label"] = label_id
        query = urlencode(args).replace("%3E%3E=", ">>=")
        items = self._fetch(f"/library/sections/{section_id}/all?{query}", None,
                            container_size=PAGE_SIZE)
        return [to_item(i) for i in items if i.type == kind]

    def label_ids(self, section_id: int) -> dict[str, str]:
        """{label title (casefolded): label id} for a library."""
        try:
            data = self.server.query(f"/library/sections/{section_id}/label")
        except plexapi.exceptions.NotFound:
            return {}
        except _FAILURES as error:
            raise _failure("plex", error) from error
        return {d.get("title", "").casefold(): d.get("key") for d in data}

    # ------------------------------------------------------------------ plex.tv

    @property
    def account(self) -> MyPlexAccount:
        if self._account is None:
            try:
                self._account = MyPlexAccount(token=self.token, session=self.session,
                                              timeout=self.timeout_seconds)
            except _FAILURES as error:
                raise _failure("plextv", error) from error
        return self._account

    def _account_as(self, token: str) -> MyPlexAccount:
        clone = copy.copy(self.account)
        clone._token = token
        clone._server = clone
        return clone

    def plex_users(self) -> list[User]:
        """The owner, then every Home user and friend of the owner's plex.tv account, with
        their server tokens from one shared_servers request (None where plex.tv has none)."""
        account = self.account
        try:
            others = account.users()
            shared = account.query(account.FRIENDINVITE.format(machineId=self.machine_identifier))
        except _FAILURES as error:
            raise _failure("plextv", error) from error
        tokens = {}
        for child in shared if shared is not None else []:
            if child.get("userID") and child.get("accessToken"):
                tokens[int(child.get("userID"))] = child.get("accessToken")
        users = [User(name=account.title or account.username, id=int(account.id), kind="owner",
                      token=self.token, account_token=self.token, uuid=account.uuid,
                      username=account.username)]
        for u in others:
            users.append(User(
                name=u.title or u.username, id=int(u.id), kind="home" if u.home else "friend",
                token=tokens.get(int(u.id)), uuid=_uuid_from_thumb(u.thumb), username=u.username or None))
        return users

    def switch_home_user(self, user: User) -> str:
        """Return a Home user's plex.tv token (what switchHomeUser does, minus a sign-in)."""
        account = self.account
        try:
            data = account.query(f"{account.HOMEUSERS}/{user.id}/switch", account._session.post)
        except _FAILURES as error:
            raise _failure("plextv", error) from error
        token = data.get("authenticationToken") if data is not None else None
        if not token:
            raise SourceError("plextv", f"plex.tv gave no token when switching to {user.name}")
        return token

    def server_token_for(self, account_token: str) -> str | None:
        """The server token of the account whose plex.tv token this is (its resources)."""
        try:
            resources = self._account_as(account_token).resources()
        except _FAILURES as error:
            raise _failure("plextv", error) from error
        for resource in resources:
            if resource.clientIdentifier == self.machine_identifier:
                return resource.accessToken or None
        return None

    def watchlist(self, account_token: str) -> list[WatchlistEntry]:
        """The watchlist of the plex.tv account whose token this is (one request per page)."""
        clone = self._account_as(account_token)
        key = (f"{clone.DISCOVER}/library/sections/watchlist/all?"
               "includeCollections=1&includeExternalMedia=1&includeGuids=1")
        try:
            items = _quiet(clone.fetchItems(key, container_size=100))
        except _FAILURES as error:
            raise _failure("plextv", error) from error
        entries = []
        for obj in items:
            guids = {g.id for g in (obj.guids or []) if g.id}
            if obj.guid:
                guids.add(obj.guid)
            entries.append(WatchlistEntry(frozenset(guids), obj.type, obj.title or "",
                                          _date(getattr(obj, "originallyAvailableAt", None))))
        return entries

    def rss_watchlist(self, url: str) -> list[tuple[WatchlistEntry, str | None]]:
        """Friends' watchlists from Plex's RSS feed (JSON form): [(entry, author uuid)]."""
        entries: list[tuple[WatchlistEntry, str | None]] = []
        next_url: str | None = url if "format=" in url else url + ("&" if "?" in url else "?") + "format=json"
        pages = 0
        while next_url and pages < 50:
            pages += 1
            try:
                response = self.session.get(next_url)
                if response.status_code != 200:
                    raise SourceError("plextv", f"watchlist RSS feed answered {response.status_code}")
                data = response.json()
            except (RequestFailed, requests.RequestException, ValueError) as error:
                raise _failure("plextv", error) from error
            for item in data.get("items") or []:
                guids = frozenset(g for g in item.get("guids") or [] if isinstance(g, str))
                kind = (item.get("category") or "").lower()
                entries.append((WatchlistEntry(guids, kind if kind in ("movie", "show") else kind,
                                               item.get("title") or "", None), item.get("author")))
            link = (data.get("links") or {}).get("next")
            next_url = link if link and link != next_url else None
        return entries


def _show_key(obj) -> int | None:
    """An episode's show: history rows carry only grandparentKey (/library/metadata/200)."""
    key = getattr(obj, "grandparentRatingKey", None)
    if isinstance(key, int):
        return key
    path = getattr(obj, "grandparentKey", None) or ""
    tail = path.rstrip("/").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _uuid_from_thumb(thumb: str | None) -> str | None:
    # plex.tv's user list gives no uuid, but avatars live at https://plex.tv/users/<uuid>/avatar
    if thumb and "/users/" in thumb:
        return thumb.split("/users/", 1)[1].split("/", 1)[0] or None
    return None
