"""The round's batched resolution: one fetch per kind for every rule, and a failed fetch
fails exactly the rules it served; a show gone from the library skips that show only."""

from dataclasses import replace
from pathlib import Path

from cacherr.planner.ahead import AheadSpec
from cacherr.sources.plex import SourceError
from cacherr.sources.round import After, Fetch, NextUp, Plays, Round, Unwatched
from cacherr.sources.types import HistoryEntry, Item, MediaFile, MediaVersion, Selection


def episode(show, season, number, key):
    files = (MediaFile(f"/tv/{show}/S{season}E{number}.mkv", 1),)
    return Item(rating_key=key, type="episode", title="e", library="TV", show_rating_key=show,
                season_index=season, episode_index=number, versions=(MediaVersion(files),), show_title="S")


class StubPlex:
    """The adapter's batched methods over plain data; `failing` names methods that fail."""

    def __init__(self, episodes=None, items=None, history=None, failing=()):
        self.episodes = episodes or {}
        self.items_by_key = items or {}
        self.rows = history or []
        self.failing = set(failing)
        self.calls: list[tuple[str, object]] = []

    def _call(self, name, argument):
        self.calls.append((name, argument))
        if name in self.failing:
            raise SourceError("plex", f"{name} failed")

    def episodes_of(self, shows, token=None, sections=None):
        self._call("episodes_of", sorted(shows))
        return {show: self.episodes.get(show, []) for show in shows}

    def items(self, keys, token=None):
        self._call("items", sorted(keys))
        return [self.items_by_key[k] for k in keys if k in self.items_by_key]

    def history(self, *, since=None, account_id=None):
        self._call("history", since)
        return [r for r in self.rows if since is None or r.viewed_at >= since]


def round_with(plex) -> Round:
    return Round(plex, None, Path("/nonexistent"), 1_000_000.0, [], None)


SHOW = [episode(200, 1, n, 200 + n) for n in (1, 2, 3)]
USERS = frozenset({"u"})


def test_every_rules_needs_are_fetched_once_per_kind():
    movie = Item(rating_key=9, type="movie", title="m", library="Movies")
    plex = StubPlex(episodes={200: SHOW, 300: []}, items={9: movie})
    rnd = round_with(plex)
    rnd.need("a", After(200, (1, 1), AheadSpec(episodes=1), USERS), Fetch(9, USERS))
    rnd.need("b", Unwatched(300, 1, USERS), Fetch(9, frozenset({"v"})))
    result = rnd.resolve()
    assert [name for name, _ in plex.calls] == ["episodes_of", "items"]
    assert [s.item.rating_key for s in result["a"]] == [202, 9]
    assert [s.item.rating_key for s in result["b"]] == [9]  # show 300 is gone: nothing, no failure
    assert not rnd.failures


def test_a_failed_episode_listing_fails_the_rules_that_needed_it_only():
    movie = Item(rating_key=9, type="movie", title="m", library="Movies")
    rnd = round_with(StubPlex(items={9: movie}, failing={"episodes_of"}))
    rnd.need("lookahead", After(200, (1, 1), AheadSpec(episodes=1), USERS))
    rnd.need("movies", Fetch(9, USERS))
    result = rnd.resolve()
    assert dict(rnd.rule_failures) == {"lookahead": {"plex"}}
    assert [s.item.rating_key for s in result["movies"]] == [9]


def test_one_history_request_from_the_earliest_start_serves_every_history_need():
    rows = [HistoryEntry(202, 7, 999_000.0, "episode", 200, 1, 2), HistoryEntry(201, 7, 990_000.0, "episode", 200, 1, 1)]
    plex = StubPlex(episodes={200: SHOW}, items={202: SHOW[1]}, history=rows)
    rnd = round_with(plex)
    next_up = episode(200, 1, 3, 203)
    rnd.need("deck", NextUp(next_up, USERS, 7, 995_000.0, AheadSpec()))
    rnd.need("done", Plays(980_000.0, ((7, "u"),), AheadSpec(episodes=1)))
    rnd.need("wl", Unwatched(200, 1, USERS, account_id=7, watched_since=900_000.0))
    result = rnd.resolve()
    assert [call for call in plex.calls if call[0] == "history"] == [("history", 900_000.0)]
    assert result["deck"] == [Selection(replace(next_up, last_viewed_at=999_000.0), USERS,
                                        queue=("u/show:200", 1))]
    # the plays (201 is not in the library any more) and the episode after each
    assert sorted(s.item.rating_key for s in result["done"]) == [202, 202, 203]
    assert [s.item.rating_key for s in result["wl"]] == [203]  # 201 and 202 watched by account 7


def test_a_next_up_episode_whose_show_was_not_played_within_the_window_is_left_out():
    rows = [HistoryEntry(201, 7, 900_000.0, "episode", 200, 1, 1)]
    rnd = round_with(StubPlex(history=rows))
    rnd.need("deck", NextUp(episode(200, 1, 2, 202), USERS, 7, 995_000.0, AheadSpec(episodes=2)))
    assert rnd.resolve()["deck"] == []


def test_a_failed_history_request_fails_the_rules_judged_by_it_only():
    rnd = round_with(StubPlex(episodes={200: SHOW}, failing={"history"}))
    rnd.need("done", Plays(0.0, ((7, "u"),), AheadSpec(episodes=1)))
    rnd.need("ahead", After(200, (1, 2), AheadSpec(episodes=1), USERS))
    result = rnd.resolve()
    assert dict(rnd.rule_failures) == {"done": {"plex"}}
    assert [s.item.rating_key for s in result["ahead"]] == [203]


# --- look-ahead windows: in viewing time, from each viewer's pace; queue positions

DAY = 86400.0
NOW = 1_000_000.0
LONG_SHOW = [replace(episode(500, 1 + n // 10, 1 + n % 10, 5000 + n), show_title="Severance",
                     duration_ms=(50 if n % 2 else 20) * 60_000) for n in range(30)]


def test_ahead_in_viewing_time_takes_the_episodes_that_cover_it_and_says_why():
    rnd = round_with(StubPlex(episodes={500: LONG_SHOW}))
    rnd.need("deck", After(500, (1, 1), AheadSpec(seconds=3 * 3600), USERS))
    picked = rnd.resolve()["deck"]
    # after S01E01: 50, 20, 50, 20, 50 minutes reach three hours at the fifth
    assert [s.item.episode_index for s in picked] == [2, 3, 4, 5, 6]
    assert [w.reason for w in rnd.windows] == [
        "the next 5 episodes of Severance cover 3.2 h of viewing (ahead: 3 h)"]


def plays_of(account, show_episodes, count, over_days):
    step = over_days * DAY / count
    return [HistoryEntry(e.rating_key, account, NOW - over_days * DAY + n * step, "episode",
                         e.show_rating_key, e.season_index, e.episode_index)
            for n, e in enumerate(show_episodes[:count])]


def test_ahead_auto_gives_a_fast_viewer_a_longer_window_than_a_slow_one_from_one_request():
    rows = plays_of(7, LONG_SHOW, 12, over_days=3) + plays_of(8, LONG_SHOW, 4, over_days=20)
    plex = StubPlex(episodes={500: LONG_SHOW}, history=rows)
    rnd = round_with(plex)
    spec = AheadSpec(auto=True, max_episodes=10)
    since = NOW - 30 * DAY
    rnd.need("deck", After(500, (1, 1), spec, frozenset({"fast"}), account_id=7, pace_since=since),
             After(500, (1, 1), spec, frozenset({"slow"}), account_id=8, pace_since=since))
    picked = rnd.resolve()["deck"]
    assert [call for call in plex.calls if call[0] == "history"] == [("history", since)]
    by_user = {user: [s for s in picked if user in s.users] for user in ("fast", "slow")}
    assert len(by_user["fast"]) == 4 and len(by_user["slow"]) == 1
    assert [w.reason for w in rnd.windows] == [
        "fast watches 4.0 episodes/day of Severance → 4 ahead",
        "slow watches 0.2 episodes/day of Severance → 1 ahead"]


def test_ahead_auto_without_the_history_still_caches_one_episode_ahead():
    rnd = round_with(StubPlex(episodes={500: LONG_SHOW}, failing={"history"}))
    rnd.need("deck", After(500, (1, 1), AheadSpec(auto=True), USERS, account_id=7,
                           pace_since=NOW - 30 * DAY))
    assert [s.item.episode_index for s in rnd.resolve()["deck"]] == [2]
    assert dict(rnd.rule_failures) == {"deck": {"plex"}}


def test_what_a_viewer_is_in_the_middle_of_heads_their_queue_and_the_look_ahead_follows():
    from cacherr.sources.round import up_next
    rnd = round_with(StubPlex(episodes={500: LONG_SHOW}))
    started = replace(LONG_SHOW[0], view_offset_ms=60_000)
    rnd.need("deck", *up_next(started, USERS, AheadSpec(episodes=2), 7, NOW))
    rnd.need("next", *up_next(LONG_SHOW[0], USERS, AheadSpec(episodes=2), 7, NOW))
    result = rnd.resolve()
    assert [s.queue for s in result["deck"]] == [("u/show:500", 0), ("u/show:500", 1),
                                                 ("u/show:500", 2)]
    assert [s.queue for s in result["next"]] == [("u/show:500", 1), ("u/show:500", 2),
                                                 ("u/show:500", 3)]
