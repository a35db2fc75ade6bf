"""The selectors: what each rule wants cached, for whom, with which priority.

`select_all` runs one selection round: it resolves users, evaluates each rule against
Plex/plex.tv/Trakt through one adapter, and turns the picks into `Wanted` files (host
paths through `paths`). A failing source or user never raises out of the round: it is
recorded in `failed_sources` and in `failed_rules` for every rule it touched, so the
planner can keep what those rules had cached.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

from cacherr.sources import picks
from cacherr.sources.http import PLEXTV_HOSTS, RetryPolicy, SourceSession, overrides_from_env
from cacherr.sources.pathmap import PathMapper
from cacherr.sources.plex import PlexAdapter, SourceError
from cacherr.sources.trakt import TRAKT_ORIGIN, GuidIndex, TraktClient
from cacherr.sources.types import (
    SOURCES,
    Item,
    Play,
    Selection,
    SelectionResult,
    SourceStatus,
    User,
    Wanted,
)
from cacherr.sources.users import (
    TokenStore,
    UserResolution,
    UsersMemory,
    resolve_users,
)

log = logging.getLogger(__name__)

DEFAULT_ONDECK_FALLBACK_SECONDS = 14 * 86400.0
USER_SELECTORS = ("ondeck", "watchlist", "playing")  # what they select depends on who the users are


class _RuleFailed(Exception):
    pass


@dataclass
class Round:
    """The state of one selection round, shared by the selectors."""

    plex: PlexAdapter
    trakt: TraktClient
    state_dir: Path
    now: float
    users: list[User]
    rss_url: str | None
    failures: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    rule_failures: set[str] = field(default_factory=set)
    _index: GuidIndex | None = None
    _sessions: list | None = None
    _rss: list | None = None
    store: TokenStore | None = None
    persist: bool = True

    def indexed_items(self, keys) -> list[Item]:
        """Fetch items the GUID index pointed at; forget those the server no longer has."""
        keys = set(keys)
        items = self.plex.items(keys)
        gone = keys - {i.rating_key for i in items}
        if gone and self._index is not None:
            self._index.forget(gone)
            self._index.save()
        return items

    @property
    def today(self) -> str:
        return date.fromtimestamp(self.now).isoformat()

    def fail(self, key: str, reason: str) -> None:
        self.failures.setdefault(key, reason)
        self.rule_failures.add(key)

    def index(self) -> GuidIndex:
        if self._index is None:
            index = GuidIndex(self.state_dir, persist=self.persist)
            index.refresh(self.plex, self.now)
            self._index = index
        return self._index

    def sessions(self):
        if self._sessions is None:
            self._sessions = self.plex.sessions()
        return self._sessions


# --------------------------------------------------------------------------- selectors


def _scope(rnd: Round, rule) -> list[User]:
    if rule.users is None:
        return list(rnd.users)
    return [u for u in rnd.users if any(u.matches(name) for name in rule.users)]


def _names(users: Iterable[User]) -> frozenset[str]:
    return frozenset(u.name for u in users)


def select_ondeck(rnd: Round, rule) -> list[Selection]:
    result = []
    since = rnd.now - rule.within_seconds if rule.within_seconds else None
    for user in _scope(rnd, rule):
        try:
            if user.token is None:
                deck = _ondeck_from_history(rnd, user, since)
            else:
                deck = rnd.plex.on_deck(user.token)
            for item in deck:
                own_view = since is not None and item.last_viewed_at is None
                if item.type == "episode" and (rule.episodes_ahead or own_view):
                    # the order of episodes is everyone's: one listing serves all users,
                    # unless this user's view times are needed
                    episodes = rnd.plex.episodes(item.show_rating_key, user.token if own_view else None)
                    if own_view:
                        item = _with_show_activity(item, episodes)
                if since is not None and (item.last_viewed_at or 0) < since:
                    continue
                result.append(Selection(item, frozenset({user.name})))
                if item.type == "episode" and rule.episodes_ahead:
                    for ahead in picks.episodes_after(episodes, item, rule.episodes_ahead):
                        result.append(Selection(ahead, frozenset({user.name})))
        except SourceError as error:
            _user_failed(rnd, user, error)
    return result


def _with_show_activity(item: Item, episodes: list[Item]) -> Item:
    """A next-up episode carries no lastViewedAt: the show's latest view stands for it."""
    latest = max((e.last_viewed_at or 0 for e in episodes), default=0) or None
    return replace(item, last_viewed_at=latest)


def _ondeck_from_history(rnd: Round, user: User, since: float | None) -> list[Item]:
    """On Deck for a user without a token, from what the owner's token sees: their live
    sessions and, for shows in their recent history, the episode after the last one."""
    since = since if since is not None else rnd.now - DEFAULT_ONDECK_FALLBACK_SECONDS
    deck: list[Item] = [s.item for s in rnd.sessions() if s.account_id == user.account_id]
    everything = rnd.plex.history(account_id=user.account_id)
    rows = [r for r in everything if r.viewed_at >= since]
    seen = {r.rating_key for r in everything}
    latest_by_show: dict[int, float] = {}
    for row in rows:
        if row.type == "episode" and row.show_rating_key is not None:
            latest_by_show[row.show_rating_key] = max(latest_by_show.get(row.show_rating_key, 0), row.viewed_at)
    for show_key, viewed_at in latest_by_show.items():
        episodes = rnd.plex.episodes(show_key)
        watched = [e for e in episodes if e.rating_key in seen]
        if not watched:
            continue
        after = picks.episodes_after(episodes, max(watched, key=lambda e: e.order), 1)
        deck += [replace(e, last_viewed_at=viewed_at) for e in after if e.rating_key not in seen]
    now_deck = []
    for item in deck:
        if item.last_viewed_at is None:
            item = replace(item, last_viewed_at=rnd.now)
        now_deck.append(item)
    return now_deck


def _user_failed(rnd: Round, user: User, error: SourceError) -> None:
    """A request made with a user's token failed: a refused token fails that user (and a
    kept Home-user token is dropped, to be renewed by switching next cycle); anything
    else fails the source."""
    refused = "(401)" in error.message or "nauthorized" in error.message
    if refused and user.kind == "home" and rnd.store is not None:
        rnd.store.drop(user.id)
        rnd.store.save()
    if refused or error.source == "plextv":
        rnd.fail(f"user:{user.name}", error.message)
    else:
        rnd.fail(error.source, error.message)


def select_watchlist(rnd: Round, rule) -> list[Selection]:
    scope = _scope(rnd, rule)
    wanted: list[tuple[User | None, frozenset[str], object]] = []  # (whose, users, entry)
    for user in scope:
        if user.kind == "friend":
            continue
        if not user.account_token:
            if f"user:{user.name}" not in rnd.failures:
                rnd.fail(f"user:{user.name}", "no plex.tv token for this user's watchlist")
            continue
        try:
            for entry in rnd.plex.watchlist(user.account_token):
                wanted.append((user, frozenset({user.name}), entry))
        except SourceError as error:
            if user.kind == "home":
                _user_failed(rnd, user, error)
            else:
                rnd.fail(error.source, error.message)
    friends = [u for u in scope if u.kind == "friend"]
    if friends and rnd.rss_url:
        try:
            if rnd._rss is None:
                rnd._rss = rnd.plex.rss_watchlist(rnd.rss_url)
            by_uuid = {u.uuid: u for u in friends if u.uuid}
            all_friends = [u for u in rnd.users if u.kind == "friend"]
            for entry, author in rnd._rss:
                if author and author in by_uuid:
                    wanted.append((by_uuid[author], frozenset({by_uuid[author].name}), entry))
                elif not author or author not in {u.uuid for u in all_friends}:
                    # an entry the feed does not attribute: it is every friend's in scope
                    wanted.append((None, _names(friends), entry))
        except SourceError as error:
            rnd.fail(error.source, error.message)
    if not wanted:
        return []
    index = rnd.index()
    result = []
    movies: dict[int, set[str]] = {}
    for whose, users, entry in wanted:
        if entry.released and entry.released > rnd.today:
            continue  # unreleased
        keys = _match(index, entry.guids, entry.type)
        for key in keys:
            if entry.type == "movie":
                movies.setdefault(key, set()).update(users)
            elif entry.type == "show":
                token = whose.token if whose is not None else None
                episodes = rnd.plex.episodes(key, token)
                watched = _watched_by_history(rnd, whose, episodes) if whose is not None and not whose.token else None
                for ep in picks.first_unwatched(episodes, rule.episodes, rnd.today, watched):
                    result.append(Selection(ep, users))
    for item in rnd.indexed_items(movies):
        if item.released and item.released > rnd.today:
            continue
        result.append(Selection(item, frozenset(movies[item.rating_key])))
    return result


def _watched_by_history(rnd: Round, user: User, episodes: list[Item]) -> set[int]:
    rows = rnd.plex.history(account_id=user.account_id)
    return {r.rating_key for r in rows}


def _match(index: GuidIndex, guids: Iterable[str], kind: str) -> list[int]:
    ordered = sorted(guids, key=lambda g: (not g.startswith("plex://"), not g.startswith("imdb://"),
                                           not g.startswith("tmdb://"), g))
    return index.find(ordered, kind)


def select_playing(rnd: Round, rule) -> list[Selection]:
    scope = _scope(rnd, rule)
    by_account = {u.account_id: u for u in scope}
    by_name = {u.name.casefold(): u for u in scope}
    result = []
    if rule.when == "complete":
        since = rnd.now - (rule.within_seconds or 86400.0)
        rows = [r for r in rnd.plex.history(since=since) if r.account_id in by_account]
        items = {i.rating_key: i for i in rnd.plex.items({r.rating_key for r in rows})}
        played = [(by_account[r.account_id], items[r.rating_key]) for r in rows if r.rating_key in items]
    else:
        played = []
        for s in rnd.sessions():
            user = by_account.get(s.account_id) or by_name.get(s.user_name.casefold())
            if user is not None:
                played.append((user, s.item))
    for user, item in played:
        result.append(Selection(item, frozenset({user.name})))
        if item.type == "episode" and rule.episodes_ahead:
            episodes = rnd.plex.episodes(item.show_rating_key)
            for ahead in picks.episodes_after(episodes, item, rule.episodes_ahead):
                result.append(Selection(ahead, frozenset({user.name})))
    return result


def _sections(rnd: Round, rule) -> list[dict]:
    sections = rnd.plex.sections()
    if rule.libraries is None:
        return sections
    wanted = {name.casefold() for name in rule.libraries}
    return [s for s in sections if s["title"].casefold() in wanted]


def select_recently_added(rnd: Round, rule) -> list[Selection]:
    since = rnd.now - (rule.within_seconds or 7 * 86400.0)
    users = _names(_scope(rnd, rule))
    result = []
    for section in _sections(rnd, rule):
        kind = "movie" if section["type"] == "movie" else "episode"
        for item in rnd.plex.section_items(section["id"], kind, added_since=since):
            if (item.added_at or 0) >= since:
                result.append(Selection(item, users))
    return result


def select_pinned(rnd: Round, rule, mapper: PathMapper) -> list[Selection]:
    users = _names(_scope(rnd, rule))
    result = []
    sections = _sections(rnd, rule)
    if rule.label:
        for section in sections:
            label_id = rnd.plex.label_ids(section["id"]).get(rule.label.casefold())
            if label_id is None:
                continue
            kind = "movie" if section["type"] == "movie" else "show"
            for item in rnd.plex.section_items(section["id"], kind, label_id=label_id):
                if kind == "movie":
                    result.append(Selection(item, users))
                else:
                    result += [Selection(e, users) for e in rnd.plex.episodes(item.rating_key)]
    for raw in rule.paths:
        plex_path = raw if mapper.to_host(raw) is not None else (mapper.to_plex(raw) or raw)
        prefix = plex_path.rstrip("/")
        for section in sections:
            if not any(prefix == loc.rstrip("/") or prefix.startswith(loc.rstrip("/") + "/")
                       or loc.startswith(prefix + "/") for loc in section["locations"]):
                continue
            kind = "movie" if section["type"] == "movie" else "episode"
            for item in rnd.plex.section_items(section["id"], kind):
                files = frozenset(f.plex_path for f in item.files
                                  if f.plex_path == prefix or f.plex_path.startswith(prefix + "/"))
                if files:
                    result.append(Selection(item, users, files))
    return result


def select_trakt(rnd: Round, rule) -> list[Selection]:
    users = _names(_scope(rnd, rule))
    entries = rnd.trakt.list(rule.list or "", rule.limit)
    if not entries:
        return []
    index = rnd.index()
    movies: set[int] = set()
    result = []
    for kind, guids in entries:
        keys = index.find(guids, kind)
        if kind == "movie":
            movies.update(keys)
        else:
            for key in keys:
                for ep in picks.first_unwatched(rnd.plex.episodes(key), rule.episodes, rnd.today):
                    result.append(Selection(ep, users))
    result += [Selection(item, users) for item in rnd.indexed_items(movies)]
    return result


# --------------------------------------------------------------------------- the round


def _classifier(pms_url: str, overrides: Mapping[str, str]) -> Callable[[str], str]:
    trakt_origins = {TRAKT_ORIGIN, overrides.get(TRAKT_ORIGIN, TRAKT_ORIGIN)}
    pms = pms_url.rstrip("/")

    def classify(url: str) -> str:
        if url.startswith(pms + "/") or url == pms:
            return "plex"
        if any(url.startswith(o) for o in trakt_origins):
            return "trakt"
        if any(h in url for h in PLEXTV_HOSTS) or any(url.startswith(o) for o in overrides.values()):
            return "plextv"
        return "plextv"  # the only other URLs are plex.tv's (e.g. the RSS feed)

    return classify


def select_all(config, state_dir: Path | None = None, now: float | None = None, *,
               rules: Sequence | None = None, retry: RetryPolicy | None = None,
               env: Mapping[str, str] | None = None, history_since: float | None = None,
               users_max_age_seconds: float | None = None,
               users_memory: UsersMemory | None = None, persist: bool = True,
               sleep: Callable[[float], None] = time.sleep) -> SelectionResult:
    """Given a loaded `Config` (plex, paths, users, rules, trakt, state_dir), run one
    selection round and return its SelectionResult. Never raises for a source failure.

    `rules` restricts the round to some rules (the session watcher's `playing` rules);
    `history_since` (epoch) also returns the plays finished since then (`result.plays`, for
    `keep: {until: watched}`; one history request, paged); `users_max_age_seconds` lets a
    frequent round (the session watcher) reuse the users a recent round kept in
    `users_memory` instead of asking plex.tv again (it rate-limits); `persist=False`
    (plan) writes nothing in the state directory (the GUID index and tokens it builds
    stay in memory);
    `env` supplies the CACHERR_*_URL overrides (default: os.environ); `retry`/`sleep`
    let tests keep backoff short.
    """
    now = time.time() if now is None else now
    state_dir = Path(state_dir if state_dir is not None else config.state_dir)
    rules = tuple(config.rules if rules is None else rules)
    overrides = overrides_from_env(env)
    session = SourceSession(overrides=overrides, timeout_seconds=config.plex.timeout_seconds,
                            retry=retry or RetryPolicy(), classify=_classifier(config.plex.url, overrides),
                            sleep=sleep)
    plex = PlexAdapter(config.plex.url, config.plex.token, session, config.plex.timeout_seconds)
    trakt_config = getattr(config, "trakt", None)
    trakt = TraktClient(session, getattr(trakt_config, "client_id", None))
    mapper = PathMapper(config.paths)
    result = SelectionResult(evaluated_rules=tuple(r.name for r in rules))
    try:
        _run(config, rules, plex, trakt, mapper, state_dir, now, result, history_since,
             users_max_age_seconds, users_memory, persist)
    finally:
        session.close()
    for source in SOURCES:
        result.status.setdefault(source, session.status.get(source, SourceStatus()))
    for key in result.failed_sources:
        if key in result.status:
            result.status[key].up = False
            result.status[key].last_error = result.failed_sources[key]
    result.request_count = session.request_count
    return result


def _run(config, rules, plex: PlexAdapter, trakt: TraktClient, mapper: PathMapper,
         state_dir: Path, now: float, result: SelectionResult, history_since: float | None,
         users_max_age_seconds: float | None, users_memory: UsersMemory | None,
         persist: bool) -> None:
    try:
        plex.server  # noqa: B018 - connect once: an unreachable server fails every rule
    except SourceError as error:
        result.failed_sources[error.source] = error.message
        result.failed_rules = {r.name: (error.source,) for r in rules}
        return
    store = TokenStore(state_dir, persist=persist)
    needs_watchlist = any(r.select == "watchlist" for r in rules)
    key = _users_key(config)
    kept = None
    if users_memory is not None and users_max_age_seconds is not None and not needs_watchlist:
        kept = users_memory.load(key, now, users_max_age_seconds)
    if kept is not None:
        resolution = UserResolution(users=kept)
    else:
        resolution = resolve_users(plex, config.users, config.plex, store, now,
                                   need_account_tokens=needs_watchlist)
        store.save()
        if not resolution.failures and users_memory is not None:
            users_memory.save(resolution.users, key, now)
    result.users = tuple(resolution.users)
    result.warnings += resolution.warnings
    result.failed_sources.update(resolution.failures)
    rnd = Round(plex, trakt, state_dir, now, resolution.users, config.plex.watchlist_rss,
                store=store, persist=persist)
    try:
        sections = plex.sections()
    except SourceError as error:
        rnd.fail(error.source, error.message)
        sections = []
    library_roots = [loc for s in sections for loc in s["locations"]]
    library_names = {s["id"]: s["title"] for s in sections}
    _check_names(rules, resolution, sections, rnd)
    for rule in rules:
        rnd.rule_failures = set()
        try:
            selections = _evaluate(rnd, rule, mapper)
        except SourceError as error:
            rnd.fail(error.source, error.message)
            selections = []
        if resolution.failures and rule.select in USER_SELECTORS:
            # plex.tv failing (or a Home user's switch) hides users from this rule
            rnd.rule_failures.update(resolution.failures)
        if rnd.rule_failures:
            result.failed_rules[rule.name] = tuple(sorted(rnd.rule_failures))
        result.wanted += _to_wanted(selections, rule, mapper, result, library_roots, library_names)
    if history_since is not None:
        names = {u.account_id: u.name for u in resolution.users}
        try:
            result.plays = tuple(Play(r.rating_key, names.get(r.account_id, f"account:{r.account_id}"),
                                      r.viewed_at) for r in plex.history(since=history_since))
        except SourceError as error:
            rnd.failures.setdefault(error.source, error.message)
    try:
        # Every round knows who is playing what: the planner never moves a file away
        # from a player (one request, shared with `playing` rules).
        result.sessions = tuple(rnd.sessions())
    except SourceError as error:
        rnd.failures.setdefault(error.source, error.message)
        # Not knowing the live files, this round evicts nothing for any rule.
        for rule in rules:
            result.failed_rules.setdefault(rule.name, (error.source,))
    result.failed_sources.update(rnd.failures)
    result.warnings += rnd.warnings
    # A frequent round (the session watcher) that finds nothing says so at DEBUG only.
    level = logging.INFO if result.wanted or result.failed_sources else logging.DEBUG
    log.log(level, "selection: %d files wanted by %d rules, %d users; failed: %s",
            len(result.wanted), len(rules), len(resolution.users),
            ", ".join(f"{k} ({v})" for k, v in sorted(result.failed_sources.items())) or "none")


def _users_key(config) -> str:
    """What the saved users depend on: the server, the owner's token, users: and tokens."""
    digest = hashlib.sha256(repr((config.plex.url, config.plex.token, config.users,
                                  sorted((config.plex.user_tokens or {}).items()))).encode())
    return digest.hexdigest()


def _check_names(rules, resolution, sections: list[dict], rnd: Round) -> None:
    """Warn about rule `users:` and `libraries:` names that match nothing (typos)."""
    known_users = list(resolution.users)
    titles = {s["title"].casefold() for s in sections}
    for rule in rules:
        for name in rule.users if "plextv" not in resolution.failures and rule.users else ():
            if not any(u.matches(name) for u in known_users) and name not in resolution.inactive:
                rnd.warnings.append(f"rule {rule.name}: user {name!r} is not an included Plex user")
        if sections:
            for name in rule.libraries or ():
                if name.casefold() not in titles:
                    rnd.warnings.append(f"rule {rule.name}: Plex has no library {name!r}")
    friends = any(u.kind == "friend" for u in known_users)
    if friends and not rnd.rss_url and any(r.select == "watchlist" for r in rules):
        rnd.warnings.append("friends' watchlists need plex.watchlist_rss (Plex's friends' "
                            "watchlist RSS feed); they are not selected")


def _evaluate(rnd: Round, rule, mapper: PathMapper) -> list[Selection]:
    if rule.select == "ondeck":
        return select_ondeck(rnd, rule)
    if rule.select == "watchlist":
        return select_watchlist(rnd, rule)
    if rule.select == "playing":
        return select_playing(rnd, rule)
    if rule.select == "recently_added":
        return select_recently_added(rnd, rule)
    if rule.select == "pinned":
        return select_pinned(rnd, rule, mapper)
    if rule.select == "trakt":
        return select_trakt(rnd, rule)
    rnd.warnings.append(f"rule {rule.name}: unknown selector {rule.select!r}")
    return []


def _to_wanted(selections: list[Selection], rule, mapper: PathMapper, result: SelectionResult,
               library_roots: list[str], library_names: dict[int, str]) -> list[Wanted]:
    """Files of the selected items (chosen versions, size cap, library filter), merged per
    file with the union of users, mapped to host paths."""
    libraries = {name.casefold() for name in rule.libraries} if rule.libraries is not None else None
    merged: dict[str, Wanted] = {}
    for selection in selections:
        item = selection.item
        library = item.library or library_names.get(item.library_id or -1, "")
        if libraries is not None and library.casefold() not in libraries:
            continue
        for file in picks.choose_files(item, rule.versions):
            if selection.paths is not None and file.plex_path not in selection.paths:
                continue
            if rule.max_file_size_bytes is not None and file.size_bytes > rule.max_file_size_bytes:
                continue
            host = mapper.to_host(file.plex_path)
            if host is None:
                if file.plex_path not in result.unmapped:
                    result.unmapped[file.plex_path] = mapper.suggestion(file.plex_path, library_roots)
                    result.warnings.append(result.unmapped[file.plex_path])
                continue
            existing = merged.get(file.plex_path)
            users = selection.users | (existing.users if existing else frozenset())
            merged[file.plex_path] = Wanted(
                host_path=host, plex_path=file.plex_path, size_bytes=file.size_bytes, rule=rule.name,
                users=users, priority=rule.priority, item=item.describe(), rating_key=item.rating_key)
    return list(merged.values())
