"""One selection round: what the selectors found, and what is left to fetch in batches.

Selectors (`selectors.py`) read per-user lists (On Deck, watchlists, sessions) at once and
say the rest as *needs*: "the 5 episodes after S01E03 of show 200", "the first unwatched
episode of show 300 for account 7", "movie 101". `resolve` then asks Plex once for all of
them: one play-history request (from the earliest start any need planned), one episode
listing per library for every show, one batch of items. A failed fetch fails exactly the
rules whose needs it was serving.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

from cacherr.planner.ahead import (
    DAY_SECONDS,
    PACE_DAYS,
    AheadSpec,
    Finished,
    Pace,
    pace,
    window,
)
from cacherr.sources import picks
from cacherr.sources.plex import ALL, PlexAdapter, SourceError
from cacherr.sources.trakt import GuidIndex, TraktClient
from cacherr.sources.types import HistoryEntry, Item, LookAhead, Selection, User

Users = frozenset[str]


@dataclass(frozen=True)
class Fetch:
    """An item by rating key (a movie matched through the GUID index, a finished play)."""

    rating_key: int
    users: Users
    skip_unreleased: bool = True


# The most episodes any look-ahead looks at (episodes_ahead and ahead_max are at most 100).
AHEAD_LIMIT = 100


@dataclass(frozen=True)
class After:
    """The episodes of a show after (season, episode), across seasons, as many as the
    rule's look-ahead (`spec`) picks for these users; they take the queue positions from
    `first_position` on. `account_id`'s recent plays size `ahead: auto` (`pace`)."""

    show: int
    order: tuple[int, int]
    spec: AheadSpec
    users: Users
    section: int | None = None
    account_id: int | None = None
    first_position: int = 2
    pace_since: float | None = None  # `auto`: plays since then are needed
    pace: Pace | None = None


@dataclass(frozen=True)
class Unwatched:
    """A show's first `count` released episodes not watched by `account_id` (by its play
    history), or, with account_id None, by the owner's own view of the episodes."""

    show: int
    count: int
    users: Users
    account_id: int | None = None
    section: int | None = None
    watched_since: float | None = None  # the show's addedAt: no play of it is older


@dataclass(frozen=True)
class Every:
    """Every episode of a show (a show pinned by label)."""

    show: int
    users: Users
    section: int | None = None


@dataclass(frozen=True)
class NextUp:
    """An On Deck episode Plex lists with no `lastViewedAt` (the next one of a show): kept
    when its user played the show since `since`, with the look-ahead after it."""

    item: Item
    users: Users
    account_id: int
    since: float
    ahead: AheadSpec
    pace_since: float | None = None  # `ahead: auto`: plays since then size the window


@dataclass(frozen=True)
class Plays:
    """`select: playing` with `when: complete`: what these accounts finished since `since`."""

    since: float
    accounts: tuple[tuple[int, str], ...]  # (account id, user name)
    ahead: AheadSpec
    pace_since: float | None = None


@dataclass(frozen=True)
class HistoryDeck:
    """On Deck of a user without a token, from the owner's view of their history: for each
    show they played since `since`, the first episode after the last one they watched."""

    account_id: int
    users: Users
    since: float
    ahead: AheadSpec


@dataclass(frozen=True)
class _NextAfterWatched:
    """HistoryDeck, for one show: the episode after the last one watched (the queue's
    head), and the look-ahead after it."""

    show: int
    watched: frozenset[int]
    viewed_at: float
    users: Users
    ahead: AheadSpec
    account_id: int
    section: int | None = None


@dataclass(frozen=True)
class _UnwatchedBy:
    """Unwatched, with what its account watched (from the history)."""

    show: int
    count: int
    users: Users
    section: int | None
    watched: frozenset[int]


EPISODE_NEEDS = (After, Unwatched, Every, _NextAfterWatched, _UnwatchedBy)


@dataclass
class Round:
    """The state of one selection round, shared by the selectors."""

    plex: PlexAdapter
    trakt: TraktClient
    state_dir: Path
    now: float
    users: list[User]
    rss_url: str | None
    store: object | None = None
    deck_sections: tuple[int, ...] | None = None  # libraries On Deck is read for (None: all)
    persist: bool = True  # False (plan): the GUID index is built in memory, never written
    failures: dict[str, str] = field(default_factory=dict)  # source or user:NAME -> why
    rule_failures: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    warnings: list[str] = field(default_factory=list)
    needs: list[tuple[str, object]] = field(default_factory=list)  # (rule, need)
    windows: list[LookAhead] = field(default_factory=list)  # what each look-ahead chose
    history_rows: Sequence[HistoryEntry] = ()  # the plays resolve read, for viewers' pace
    _index: GuidIndex | None = None
    _index_error: SourceError | None = None
    _rss: list | None = None

    @property
    def today(self) -> str:
        return date.fromtimestamp(self.now).isoformat()

    def fail(self, rule: str, key: str, reason: str) -> None:
        self.failures.setdefault(key, reason)
        self.rule_failures[rule].add(key)

    def need(self, rule: str, *needs) -> None:
        self.needs += [(rule, need) for need in needs]

    def index(self) -> GuidIndex:
        """The GUID index, built or refreshed once per round (a failure is remembered)."""
        if self._index_error is not None:
            raise self._index_error
        if self._index is None:
            index = GuidIndex(self.state_dir, persist=self.persist)
            try:
                index.refresh(self.plex, self.now)
            except SourceError as error:
                self._index_error = error
                raise
            self._index = index
        return self._index

    def sessions(self):
        return self.plex.sessions()

    # ----------------------------------------------------------------- resolution

    def resolve(self) -> dict[str, list[Selection]]:
        """Fetch what the needs ask for, in batches; return each rule's selections."""
        result: dict[str, list[Selection]] = defaultdict(list)
        needs = self._expand_history(self.needs)
        episodes = self._episodes(needs)
        items = self._items(needs)
        for rule, need in needs:
            result[rule] += self._selections(rule, need, episodes, items)
        return result

    def _expand_history(self, needs) -> list[tuple[str, object]]:
        """Needs judged by the play history become plain needs (one request for all)."""
        wanted = [(r, n) for r, n in needs if history_from(n) is not NOT_HISTORY]
        if not wanted:
            return list(needs)
        starts = [history_from(n) for _, n in wanted]
        try:
            rows = self.plex.history(since=None if None in starts else min(starts))
        except SourceError as error:
            self._fail_rules(wanted, error)
            # a look-ahead without its viewer's pace still takes one episode
            return [(r, n) for r, n in needs
                    if history_from(n) is NOT_HISTORY or isinstance(n, After)]
        self.history_rows = rows
        expanded = []
        for rule, need in needs:
            expanded += [(rule, n) for n in self._from_history(need, rows)]
        return expanded

    def _from_history(self, need, rows: Sequence[HistoryEntry]) -> list:
        if isinstance(need, NextUp):
            played = [r.viewed_at for r in rows if r.account_id == need.account_id
                      and r.show_rating_key == need.item.show_rating_key and r.viewed_at >= need.since]
            if not played:
                return []
            item = replace(need.item, last_viewed_at=max(played))
            return up_next(item, need.users, need.ahead, need.account_id, self.now)
        if isinstance(need, Plays):
            names = dict(need.accounts)
            result: list = []
            for row in rows:
                if row.account_id not in names or row.viewed_at < need.since:
                    continue
                users = frozenset({names[row.account_id]})
                result.append(Fetch(row.rating_key, users, skip_unreleased=False))
                if row.type == "episode" and need.ahead.wanted and row.show_rating_key is not None:
                    result.append(_after(row.show_rating_key, (row.season_index or 0, row.episode_index or 0),
                                         need.ahead, users, None, row.account_id, 1, self.now))
            return result
        if isinstance(need, HistoryDeck):
            mine = [r for r in rows if r.account_id == need.account_id]
            watched = frozenset(r.rating_key for r in mine)
            latest: dict[int, float] = {}
            for row in mine:
                if row.type == "episode" and row.show_rating_key is not None and row.viewed_at >= need.since:
                    latest[row.show_rating_key] = max(latest.get(row.show_rating_key, 0.0), row.viewed_at)
            return [_NextAfterWatched(show, watched, at, need.users, need.ahead, need.account_id)
                    for show, at in latest.items()]
        if isinstance(need, Unwatched) and need.account_id is not None:
            watched = frozenset(r.rating_key for r in rows if r.account_id == need.account_id)
            return [_UnwatchedBy(need.show, need.count, need.users, need.section, watched)]
        return [need]

    def _fail_rules(self, needs, error: SourceError) -> None:
        for rule in {rule for rule, _ in needs}:
            self.fail(rule, error.source, error.message)

    def _episodes(self, needs) -> dict[int, list[Item]]:
        wanted = [(r, n) for r, n in needs if isinstance(n, EPISODE_NEEDS)]
        if not wanted:
            return {}
        sections = {n.show: n.section for _, n in wanted if n.section is not None}
        try:
            return self.plex.episodes_of({n.show for _, n in wanted}, None, sections)
        except SourceError as error:
            self._fail_rules(wanted, error)
            return {}

    def _items(self, needs) -> dict[int, Item]:
        wanted = [(r, n) for r, n in needs if isinstance(n, Fetch)]
        if not wanted:
            return {}
        keys = {n.rating_key for _, n in wanted}
        try:
            found = self.plex.items(keys)
        except SourceError as error:
            self._fail_rules(wanted, error)
            return {}
        gone = keys - {i.rating_key for i in found}
        if gone and self._index is not None:
            self._index.forget(gone)
            self._index.save()
        return {i.rating_key: i for i in found}

    def _selections(self, rule: str, need, episodes: dict[int, list[Item]],
                    items: dict[int, Item]) -> list[Selection]:
        if isinstance(need, Selection):
            return [need]
        if isinstance(need, Fetch):
            item = items.get(need.rating_key)
            if item is None or (need.skip_unreleased and item.released and item.released > self.today):
                return []
            return [Selection(item, need.users)]
        if isinstance(need, _NextAfterWatched):
            head = _next_after_watched(need, episodes.get(need.show, []))
            if head is None:
                return []
            following = up_next(head, need.users, need.ahead, need.account_id, self.now)
            return [following[0]] + self._selections(rule, following[1], episodes, items) \
                if len(following) > 1 else following
        if isinstance(need, After):
            return self._look_ahead(rule, need, episodes.get(need.show, []))
        if isinstance(need, EPISODE_NEEDS):
            show = episodes.get(need.show, [])
            queue = queue_of(need.users, need.show)
            return [Selection(e, need.users, queue=(queue, position))
                    for position, e in enumerate(_pick_episodes(need, show, self.today), start=1)]
        return []

    def _look_ahead(self, rule: str, need: After, episodes: list[Item]) -> list[Selection]:
        """The episodes after the one a viewer is at, as many as the rule's look-ahead
        picks for them; the window and why are kept for `plan` and `ls`."""
        need = _with_pace(need, self.history_rows, self.now)
        following = picks.episodes_after(episodes, need.order, AHEAD_LIMIT)
        runtimes = [e.duration_ms / 1000 if e.duration_ms else None for e in following]
        show = following[0].show_title if following else str(need.show)
        users = tuple(sorted(need.users))
        chosen = window(need.spec, runtimes, ", ".join(users), show or str(need.show), need.pace)
        if following and (need.spec.seconds is not None or need.spec.auto):
            # a fixed episodes_ahead needs no explaining
            self.windows.append(LookAhead(rule, users, show or str(need.show), chosen.count,
                                          chosen.reason))
        queue = queue_of(need.users, need.show)
        return [Selection(e, need.users, queue=(queue, need.first_position + n))
                for n, e in enumerate(following[:chosen.count])]


def _pick_episodes(need, episodes: list[Item], today: str) -> list[Item]:
    if isinstance(need, Unwatched):
        return picks.first_unwatched(episodes, need.count, today)
    if isinstance(need, _UnwatchedBy):
        return picks.first_unwatched(episodes, need.count, today, set(need.watched))
    if isinstance(need, Every):
        return list(episodes)
    return []


def _next_after_watched(need: _NextAfterWatched, episodes: list[Item]) -> Item | None:
    """The episode after the last one the user watched, unless they watched it too."""
    seen = [e for e in episodes if e.rating_key in need.watched]
    if not seen:
        return None
    last = max(seen, key=lambda e: e.order)
    following = [e for e in picks.episodes_after(episodes, last.order, 1)
                 if e.rating_key not in need.watched]
    return replace(following[0], last_viewed_at=need.viewed_at) if following else None


def _with_pace(need: After, rows: Sequence[HistoryEntry], now: float) -> After:
    """An `ahead: auto` look-ahead with its viewer's pace, from the round's play history."""
    if not need.spec.auto or need.pace is not None or need.account_id is None:
        return need
    plays = [Finished(r.rating_key, r.show_rating_key, r.viewed_at) for r in rows
             if r.account_id == need.account_id and r.type == "episode"]
    return replace(need, pace=pace(plays, need.show, now))


def queue_of(users: Users, show: int) -> str:
    """The viewing queue of these users in one show (the planner adds the rule)."""
    return f"{'+'.join(sorted(users))}/show:{show}"


def position_of(item: Item) -> int:
    """Where the item a viewer is at stands in their queue: 0 in progress, 1 next up."""
    return 0 if item.view_offset_ms else 1


NOT_HISTORY = object()


def history_from(need) -> float | None | object:
    """How far back in the play history a need looks: an epoch, None for all of it (what
    an account ever watched), or NOT_HISTORY."""
    if isinstance(need, (NextUp, Plays)):
        return min(need.since, need.pace_since or need.since)
    if isinstance(need, HistoryDeck):
        return None
    if isinstance(need, Unwatched) and need.account_id is not None:
        return need.watched_since
    if isinstance(need, After) and need.pace_since is not None and need.pace is None:
        return need.pace_since
    return NOT_HISTORY


def pace_since(ahead: AheadSpec, now: float) -> float | None:
    """How far back the play history must go to size `ahead: auto` (None: no need)."""
    return now - PACE_DAYS * DAY_SECONDS if ahead.auto else None


def up_next(item: Item, users: Users, ahead: AheadSpec, account_id: int | None,
            now: float) -> list:
    """What a viewer is at (in progress or next up), as the head of their queue of its
    show, and the look-ahead after it as a need."""
    if item.type != "episode" or item.show_rating_key is None:
        queue = (queue_of(users, -item.rating_key), position_of(item)) if item.type == "movie" else None
        return [Selection(item, users, queue=queue)]
    position = position_of(item)
    head = Selection(item, users, queue=(queue_of(users, item.show_rating_key), position))
    if not ahead.wanted:
        return [head]
    return [head, _after(item.show_rating_key, item.order, ahead, users, item.library_id,
                         account_id, position + 1, now)]


def _after(show: int, order: tuple[int, int], ahead: AheadSpec, users: Users,
           section: int | None, account_id: int | None, first_position: int,
           now: float) -> After:
    since = pace_since(ahead, now) if account_id is not None else None
    return After(show, order, ahead, users, section, account_id, first_position, since)


def plan(plex: PlexAdapter, needs: Iterable[tuple[str, object]]) -> None:
    """Tell the adapter how far back the needs reach in the history, before it reads it."""
    for _, need in needs:
        start = history_from(need)
        if start is not NOT_HISTORY:
            plex.plan_history(ALL if start is None else start)
