"""The six selectors: what each rule wants cached, for whom.

Each reads what only it needs (a user's On Deck, a watchlist, a Trakt list, a library
listing) and hands the round its picks and *needs* (`round.py`): episodes after an
episode, a show's first unwatched episodes, items by rating key. The round fetches those
in batches for every rule at once.
"""

from __future__ import annotations

from collections.abc import Iterable

from cacherr.planner.ahead import spec_of
from cacherr.sources.pathmap import PathMapper, within
from cacherr.sources.plex import SourceError
from cacherr.sources.round import (
    Every,
    Fetch,
    HistoryDeck,
    NextUp,
    Plays,
    Round,
    Unwatched,
    pace_since,
    up_next,
)
from cacherr.sources.trakt import GuidIndex
from cacherr.sources.types import Selection, User

DEFAULT_ONDECK_FALLBACK_SECONDS = 14 * 86400.0


def scope(rnd: Round, rule) -> list[User]:
    if rule.users is None:
        return list(rnd.users)
    return [u for u in rnd.users if any(u.matches(name) for name in rule.users)]


def names(users: Iterable[User]) -> frozenset[str]:
    return frozenset(u.name for u in users)


def user_failed(rnd: Round, rule, user: User, error: SourceError) -> None:
    """A request made with a user's token failed: a refused token fails that user (and a
    kept Home-user token is dropped, to be renewed by switching next cycle); anything
    else fails the source."""
    refused = "(401)" in error.message or "nauthorized" in error.message
    if refused and user.kind == "home" and rnd.store is not None:
        rnd.store.drop(user.id)
        rnd.store.save()
    if refused or error.source == "plextv":
        rnd.fail(rule.name, f"user:{user.name}", error.message)
    else:
        rnd.fail(rule.name, error.source, error.message)


def select_ondeck(rnd: Round, rule) -> None:
    since = rnd.now - rule.within_seconds if rule.within_seconds else None
    for user in scope(rnd, rule):
        users = frozenset({user.name})
        if user.token is None:
            _ondeck_without_token(rnd, rule, user, since)
            continue
        try:
            deck = rnd.plex.on_deck(user.token, rnd.deck_sections)
        except SourceError as error:
            user_failed(rnd, rule, user, error)
            continue
        for item in deck:
            if since is not None and item.last_viewed_at is None and item.type == "episode":
                # Plex gives the next episode of a show no view time: the show's last play does
                rnd.need(rule.name, NextUp(item, users, user.account_id, since, spec_of(rule),
                                           pace_since(spec_of(rule), rnd.now)))
                continue
            if since is not None and (item.last_viewed_at or 0) < since:
                continue
            rnd.need(rule.name, *up_next(item, users, spec_of(rule), user.account_id, rnd.now))


def _ondeck_without_token(rnd: Round, rule, user: User, since: float | None) -> None:
    """On Deck for a user without a token, from what the owner's token sees: their live
    sessions and, for shows in their recent history, the episode after the last one."""
    users = frozenset({user.name})
    try:
        for session in rnd.sessions():
            if session.cacheable and session.account_id == user.account_id:
                rnd.need(rule.name, *up_next(session.item, users, spec_of(rule),
                                             user.account_id, rnd.now))
    except SourceError as error:
        rnd.fail(rule.name, error.source, error.message)
    window = since if since is not None else rnd.now - DEFAULT_ONDECK_FALLBACK_SECONDS
    rnd.need(rule.name, HistoryDeck(user.account_id, users, window, spec_of(rule)))


def select_watchlist(rnd: Round, rule) -> None:
    people = scope(rnd, rule)
    wanted: list[tuple[User | None, frozenset[str], object]] = []  # (whose, users, entry)
    for user in people:
        if user.kind == "friend":
            continue
        if not user.account_token:
            if f"user:{user.name}" not in rnd.failures:
                rnd.fail(rule.name, f"user:{user.name}", "no plex.tv token for this user's watchlist")
            else:
                rnd.rule_failures[rule.name].add(f"user:{user.name}")
            continue
        try:
            for entry in rnd.plex.watchlist(user.account_token):
                wanted.append((user, frozenset({user.name}), entry))
        except SourceError as error:
            if user.kind == "home":
                user_failed(rnd, rule, user, error)
            else:
                rnd.fail(rule.name, error.source, error.message)
    friends = [u for u in people if u.kind == "friend"]
    if friends and rnd.rss_url:
        try:
            if rnd._rss is None:
                rnd._rss = rnd.plex.rss_watchlist(rnd.rss_url)
            by_uuid = {u.uuid: u for u in friends if u.uuid}
            known = {u.uuid for u in rnd.users if u.kind == "friend"}
            for entry, author in rnd._rss:
                if author and author in by_uuid:
                    wanted.append((by_uuid[author], frozenset({by_uuid[author].name}), entry))
                elif not author or author not in known:
                    # an entry the feed does not attribute: it is every friend's in scope
                    wanted.append((None, names(friends), entry))
        except SourceError as error:
            rnd.fail(rule.name, error.source, error.message)
    if not wanted:
        return
    index = _index(rnd, rule)
    if index is None:
        return
    for whose, users, entry in wanted:
        if entry.released and entry.released > rnd.today:
            continue  # unreleased
        for key in match(index, entry.guids, entry.type):
            if entry.type == "movie":
                rnd.need(rule.name, Fetch(key, users))
            elif entry.type == "show":
                # the owner's own view says what the owner watched; anyone else's plays
                # come from the one history request (no request per user)
                account = None if whose is None or whose.kind == "owner" else whose.account_id
                rnd.need(rule.name, Unwatched(key, rule.episodes, users, account, index.section_of(key),
                                              index.added_at(key)))


def _index(rnd: Round, rule) -> GuidIndex | None:
    try:
        return rnd.index()
    except SourceError as error:
        rnd.fail(rule.name, error.source, error.message)
        return None


def match(index: GuidIndex, guids: Iterable[str], kind: str) -> list[int]:
    ordered = sorted(guids, key=lambda g: (not g.startswith("plex://"), not g.startswith("imdb://"),
                                           not g.startswith("tmdb://"), g))
    return index.find(ordered, kind)


def select_playing(rnd: Round, rule) -> None:
    people = scope(rnd, rule)
    if rule.when == "complete":
        since = rnd.now - (rule.within_seconds or 86400.0)
        accounts = tuple((u.account_id, u.name) for u in people)
        rnd.need(rule.name, Plays(since, accounts, spec_of(rule), pace_since(spec_of(rule), rnd.now)))
        return
    by_account = {u.account_id: u for u in people}
    by_name = {u.name.casefold(): u for u in people}
    for session in rnd.sessions():
        if not session.cacheable:
            continue  # Live TV, music, clips and photos are never cached
        user = by_account.get(session.account_id) or by_name.get(session.user_name.casefold())
        if user is not None:
            users = frozenset({user.name})
            rnd.need(rule.name, *up_next(session.item, users, spec_of(rule), user.account_id,
                                         rnd.now))


def sections_of(rnd: Round, rule) -> list[dict]:
    sections = rnd.plex.sections()
    if rule.libraries is None:
        return sections
    wanted = {name.casefold() for name in rule.libraries}
    return [s for s in sections if s["title"].casefold() in wanted]


def select_recently_added(rnd: Round, rule) -> None:
    since = rnd.now - (rule.within_seconds or 7 * 86400.0)
    users = names(scope(rnd, rule))
    for section in sections_of(rnd, rule):
        kind = "movie" if section["type"] == "movie" else "episode"
        for item in rnd.plex.section_items(section["id"], kind, added_since=since):
            if (item.added_at or 0) >= since:
                rnd.need(rule.name, Selection(item, users))


def select_pinned(rnd: Round, rule, mapper: PathMapper) -> None:
    users = names(scope(rnd, rule))
    sections = sections_of(rnd, rule)
    if rule.label:
        for section in sections:
            label_id = rnd.plex.label_ids(section["id"]).get(rule.label.casefold())
            if label_id is None:
                continue
            kind = "movie" if section["type"] == "movie" else "show"
            for item in rnd.plex.section_items(section["id"], kind, label_id=label_id):
                if kind == "movie":
                    rnd.need(rule.name, Selection(item, users))
                else:
                    rnd.need(rule.name, Every(item.rating_key, users, section["id"]))
    for raw in rule.paths:
        prefix = raw if mapper.to_host(raw) is not None else (mapper.to_plex(raw) or raw)
        for section in sections:
            if not any(within(prefix, loc) or within(loc, prefix) for loc in section["locations"]):
                continue
            kind = "movie" if section["type"] == "movie" else "episode"
            for item in rnd.plex.section_items(section["id"], kind):
                files = frozenset(f.plex_path for f in item.files if within(f.plex_path, prefix))
                if files:
                    rnd.need(rule.name, Selection(item, users, files))


def select_trakt(rnd: Round, rule) -> None:
    users = names(scope(rnd, rule))
    entries = rnd.trakt.list(rule.list or "", rule.limit)
    if not entries:
        return
    index = _index(rnd, rule)
    if index is None:
        return
    for kind, guids in entries:
        for key in index.find(guids, kind):
            if kind == "movie":
                rnd.need(rule.name, Fetch(key, users))
            else:
                rnd.need(rule.name, Unwatched(key, rule.episodes, users, None, index.section_of(key)))


SELECTORS = {
    "ondeck": select_ondeck,
    "watchlist": select_watchlist,
    "playing": select_playing,
    "recently_added": select_recently_added,
    "trakt": select_trakt,
}
