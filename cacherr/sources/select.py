"""One selection round: what each rule wants cached, for whom, with which priority.

`select_all` resolves users, evaluates each rule against Plex/plex.tv/Trakt through one
adapter (`selectors.py` read what each rule needs; `round.py` fetches the rest in batches
for every rule at once), and turns the picks into `Wanted` files (host paths through
`paths`). A failing source or user never raises out of the round: it is recorded in
`failed_sources` and in `failed_rules` for every rule it touched, so the planner can keep
what those rules had cached.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cacherr.planner.ahead import spec_of
from cacherr.sources import picks
from cacherr.sources.http import PLEXTV_HOSTS, RetryPolicy, SourceSession, overrides_from_env
from cacherr.sources.pathmap import PathMapper
from cacherr.sources.plex import PlexAdapter, SourceError
from cacherr.sources.round import Round, pace_since, plan
from cacherr.sources.selectors import SELECTORS, select_pinned
from cacherr.sources.trakt import TRAKT_ORIGIN, TraktClient
from cacherr.sources.types import (
    SOURCES,
    Play,
    Selection,
    SelectionResult,
    SourceStatus,
    Wanted,
)
from cacherr.sources.users import (
    TokenStore,
    UserResolution,
    UsersMemory,
    resolve_users,
)

log = logging.getLogger(__name__)

USER_SELECTORS = ("ondeck", "watchlist", "playing")  # what they select depends on who the users are
INDEX_SELECTORS = ("watchlist", "trakt")  # they match through the GUID index


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
    for source, count in plex.skips.by_source.items():
        result.status.setdefault(source, SourceStatus()).skipped_elements += count
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
    try:
        sections = plex.sections()
    except SourceError as error:
        result.failed_sources[error.source] = error.message
        sections = []
    deck_sections = _deck_sections(rules, sections)
    _plan_history(plex, config, rules, now, history_since)
    store = TokenStore(state_dir, persist=persist)
    resolution = _users(config, plex, rules, store, now, users_max_age_seconds, users_memory,
                        deck_sections)
    result.users = tuple(resolution.users)
    result.warnings += resolution.warnings
    result.failed_sources.update(resolution.failures)
    rnd = Round(plex, trakt, state_dir, now, resolution.users, config.plex.watchlist_rss,
                store=store, deck_sections=deck_sections, persist=persist)
    library_roots = [loc for s in sections for loc in s["locations"]]
    library_names = {s["id"]: s["title"] for s in sections}
    _check_names(rules, resolution, sections, rnd)
    # Rules that match through the GUID index go first: a full listing built for the index
    # then also answers the narrower listings of the others (recently added).
    for rule in sorted(rules, key=lambda r: r.select not in INDEX_SELECTORS):
        try:
            _evaluate(rnd, rule, mapper)
        except SourceError as error:
            rnd.fail(rule.name, error.source, error.message)
    plan(plex, rnd.needs)
    selections = rnd.resolve()
    for rule in rules:
        if resolution.failures and rule.select in USER_SELECTORS:
            # plex.tv failing (or a Home user's switch) hides users from this rule
            rnd.rule_failures[rule.name].update(resolution.failures)
        if rnd.rule_failures.get(rule.name):
            result.failed_rules[rule.name] = tuple(sorted(rnd.rule_failures[rule.name]))
        result.wanted += _to_wanted(selections.get(rule.name, []), rule, mapper, result,
                                    library_roots, library_names)
    result.windows = tuple(rnd.windows)
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


def _users(config, plex: PlexAdapter, rules, store: TokenStore, now: float,
           users_max_age_seconds: float | None, users_memory: UsersMemory | None,
           deck_sections) -> UserResolution:
    """This round's users: the ones a recent round kept in memory (the session watcher),
    or resolved now through plex.tv."""
    needs_watchlist = any(r.select == "watchlist" for r in rules)
    key = _users_key(config)
    if users_memory is not None and users_max_age_seconds is not None and not needs_watchlist:
        kept = users_memory.load(key, now, users_max_age_seconds)
        if kept is not None:
            return UserResolution(users=kept)
    resolution = resolve_users(plex, config.users, config.plex, store, now,
                               need_account_tokens=needs_watchlist, deck_sections=deck_sections)
    store.save()
    if not resolution.failures and users_memory is not None:
        users_memory.save(resolution.users, key, now)
    return resolution


def _deck_sections(rules, sections: list[dict]) -> tuple[int, ...] | None:
    """The libraries On Deck is read for: those the `ondeck` rules cover (None: all)."""
    ondeck = [r for r in rules if r.select == "ondeck"]
    if not ondeck or any(r.libraries is None for r in ondeck):
        return None
    wanted = {name.casefold() for r in ondeck for name in r.libraries}
    return tuple(s["id"] for s in sections if s["title"].casefold() in wanted)


def _plan_history(plex: PlexAdapter, config, rules, now: float, history_since: float | None) -> None:
    """How far back this round reads the play history, said before anything reads it, so
    that one request serves the activity check, the rules and the plays."""
    starts = [history_since]
    if config.users.inactive_after_seconds:
        starts.append(now - config.users.inactive_after_seconds)
    for rule in rules:
        if rule.select == "ondeck" and rule.within_seconds:
            starts.append(now - rule.within_seconds)
        elif rule.select == "playing" and rule.when == "complete":
            starts.append(now - (rule.within_seconds or 86400.0))
        if rule.ahead_auto:
            starts.append(pace_since(spec_of(rule), now))
    for start in starts:
        plex.plan_history(start)


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


def _evaluate(rnd: Round, rule, mapper: PathMapper) -> None:
    if rule.select == "pinned":
        select_pinned(rnd, rule, mapper)
    elif rule.select in SELECTORS:
        SELECTORS[rule.select](rnd, rule)
    else:
        rnd.warnings.append(f"rule {rule.name}: unknown selector {rule.select!r}")


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
            queues = set(existing.queues) if existing else set()
            if selection.queue is not None:
                queue, position = selection.queue
                queues.add((f"{rule.name}/{queue}", position))
            merged[file.plex_path] = Wanted(
                host_path=host, plex_path=file.plex_path, size_bytes=file.size_bytes, rule=rule.name,
                users=users, priority=rule.priority, item=item.describe(), rating_key=item.rating_key,
                queues=tuple(sorted(queues)))
    return list(merged.values())
