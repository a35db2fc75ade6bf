"""plex.tv, Discover and the friends' watchlist feed: the plex.tv half of `PlexAdapter`.

plexapi's MyPlexAccount carries the requests (on the adapter's SourceSession, so the
CACHERR_*_URL overrides apply); the answers are read element by element, like the
server's (`convert`). plex.tv's user list names everyone the owner shares any server
with, and for each the servers shared (`<Server machineIdentifier=...>`).
"""

from __future__ import annotations

import copy
from datetime import date
from xml.etree.ElementTree import Element

import requests
from plexapi.myplex import MyPlexAccount, MyPlexUser

from cacherr.sources.convert import each, pages
from cacherr.sources.errors import FAILURES, SourceError, failure
from cacherr.sources.http import RequestFailed
from cacherr.sources.types import SharedUser, User, WatchlistEntry

WATCHLIST_PAGE_SIZE = 100
RSS_MAX_PAGES = 50


class PlexTvMixin:
    """The plex.tv methods of PlexAdapter (which provides token, session, timeout_seconds,
    skips and machine_identifier)."""

    @property
    def account(self) -> MyPlexAccount:
        if self._account is None:
            try:
                self._account = MyPlexAccount(token=self.token, session=self.session,
                                              timeout=self.timeout_seconds)
            except FAILURES as error:
                raise failure("plextv", error) from error
        return self._account

    def _account_as(self, token: str) -> MyPlexAccount:
        clone = copy.copy(self.account)
        clone._token = token
        clone._server = clone
        return clone

    def _plextv_query(self, url: str, account: MyPlexAccount | None = None, method=None,
                      headers: dict | None = None) -> Element | None:
        account = account or self.account
        try:
            answer = account.query(url, method, headers=headers)
        except FAILURES as error:
            raise failure("plextv", error) from error
        if answer is not None and not isinstance(answer, Element):
            raise SourceError("plextv", f"{url.split('?', 1)[0]} did not answer XML")
        return answer

    def plex_users(self) -> list[SharedUser]:
        """The owner, then everyone plex.tv lists (Home users and friends) with the servers
        shared with them, and their tokens for this server from one shared_servers request
        (None where plex.tv has none)."""
        account = self.account
        listed = self._plextv_query(MyPlexUser.key)
        shared = self._plextv_query(account.FRIENDINVITE.format(machineId=self.machine_identifier))
        tokens = {}
        for child in shared if shared is not None else []:
            if (child.get("userID") or "").isdigit() and child.get("accessToken"):
                tokens[int(child.get("userID"))] = child.get("accessToken")
        owner = User(name=account.title or account.username, id=int(account.id), kind="owner",
                     token=self.token, account_token=self.token, uuid=account.uuid,
                     username=account.username)
        users = [SharedUser(owner, (self.machine_identifier,))]
        pairs = [(el, listed) for el in (listed if listed is not None else []) if el.tag == "User"]
        users += each(pairs, lambda el, _: _shared_user(el, tokens), self.skips, "plextv", "user")
        return users

    def switch_home_user(self, user: User) -> str:
        """Return a Home user's plex.tv token (what switchHomeUser does, minus a sign-in)."""
        account = self.account
        data = self._plextv_query(f"{account.HOMEUSERS}/{user.id}/switch", method=account._session.post)
        token = data.get("authenticationToken") if data is not None else None
        if not token:
            raise SourceError("plextv", f"plex.tv gave no token when switching to {user.name}")
        return token

    def server_token_for(self, account_token: str) -> str | None:
        """The server token of the account whose plex.tv token this is (its resources)."""
        try:
            resources = self._account_as(account_token).resources()
        except FAILURES as error:
            raise failure("plextv", error) from error
        for resource in resources:
            if resource.clientIdentifier == self.machine_identifier:
                return resource.accessToken or None
        return None

    def watchlist(self, account_token: str) -> list[WatchlistEntry]:
        """The watchlist of the plex.tv account whose token this is (one request per page)."""
        clone = self._account_as(account_token)
        key = (f"{clone.DISCOVER}/library/sections/watchlist/all?"
               "includeCollections=1&includeExternalMedia=1&includeGuids=1")
        found = pages(lambda k, headers: self._plextv_query(k, clone, headers=headers), key,
                      WATCHLIST_PAGE_SIZE)
        return list(each(found, _watchlist_entry, self.skips, "plextv", "watchlist item"))

    def rss_watchlist(self, url: str) -> list[tuple[WatchlistEntry, str | None]]:
        """Friends' watchlists from Plex's RSS feed (JSON form): [(entry, author uuid)]."""
        entries: list[tuple[WatchlistEntry, str | None]] = []
        next_url: str | None = url if "format=" in url else url + ("&" if "?" in url else "?") + "format=json"
        for _ in range(RSS_MAX_PAGES):
            if not next_url:
                break
            try:
                response = self.session.get(next_url)
                if response.status_code != 200:
                    raise SourceError("plextv", f"watchlist RSS feed answered {response.status_code}")
                data = response.json()
            except (RequestFailed, requests.RequestException, ValueError) as error:
                raise failure("plextv", error) from error
            if not isinstance(data, dict):
                raise SourceError("plextv", "watchlist RSS feed: not a JSON object")
            for item in data.get("items") or []:
                entry = _rss_entry(item)
                if entry is None:
                    self.skips.by_source["plextv"] = self.skips.by_source.get("plextv", 0) + 1
                else:
                    entries.append(entry)
            link = (data.get("links") or {}).get("next") if isinstance(data.get("links"), dict) else None
            next_url = link if isinstance(link, str) and link != next_url else None
        return entries


def _shared_user(element: Element, tokens: dict[int, str]) -> SharedUser:
    """A `<User>` of plex.tv's list; `home="1"` makes a Home user (friends have no `home`)."""
    user_id = int(element.get("id"))
    user = User(name=element.get("title") or element.get("username") or str(user_id), id=user_id,
                kind="home" if element.get("home") == "1" else "friend", token=tokens.get(user_id),
                uuid=_uuid_from_thumb(element.get("thumb")), username=element.get("username") or None)
    servers = tuple(s.get("machineIdentifier") for s in element.findall("Server") if s.get("machineIdentifier"))
    return SharedUser(user, servers)


def _watchlist_entry(element: Element, container: Element | None) -> WatchlistEntry | None:
    kind = element.get("type")
    if kind not in ("movie", "show"):
        return None
    guids = {g.get("id") for g in element.findall("Guid") if g.get("id")}
    if element.get("guid"):
        guids.add(element.get("guid"))
    if not guids:
        raise ValueError("a watchlist item without guid")
    released = element.get("originallyAvailableAt")
    return WatchlistEntry(frozenset(guids), kind, element.get("title") or "",
                          date.fromisoformat(released[:10]).isoformat() if released else None)


def _rss_entry(item) -> tuple[WatchlistEntry, str | None] | None:
    if not isinstance(item, dict):
        return None
    guids = frozenset(g for g in item.get("guids") or [] if isinstance(g, str))
    kind = item.get("category") if isinstance(item.get("category"), str) else ""
    author = item.get("author") if isinstance(item.get("author"), str) else None
    title = item.get("title") if isinstance(item.get("title"), str) else ""
    return WatchlistEntry(guids, kind.lower(), title, None), author


def _uuid_from_thumb(thumb: str | None) -> str | None:
    # plex.tv's user list gives no uuid, but avatars live at https://plex.tv/users/<uuid>/avatar
    if thumb and "/users/" in thumb:
        return thumb.split("/users/", 1)[1].split("/", 1)[0] or None
    return None
