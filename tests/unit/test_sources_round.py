"""The round's batched resolution: one fetch per kind for every rule, and a failed fetch
fails exactly the rules it served; a show gone from the library skips that show only."""

from dataclasses import replace
from pathlib import Path

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
    rnd.need("a", After(200, (1, 1), 1, USERS), Fetch(9, USERS))
    rnd.need("b", Unwatched(300, 1, USERS), Fetch(9, frozenset({"v"})))
    result = rnd.resolve()
    assert [name for name, _ in plex.calls] == ["episodes_of", "items"]
    assert [s.item.rating_key for s in result["a"]] == [202, 9]
    assert [s.item.rating_key for s in result["b"]] == [9]  # show 300 is gone: nothing, no failure
    assert not rnd.failures


def test_a_failed_episode_listing_fails_the_rules_that_needed_it_only():
    movie = Item(rating_key=9, type="movie", title="m", library="Movies")
    rnd = round_with(StubPlex(items={9: movie}, failing={"episodes_of"}))
    rnd.need("lookahead", After(200, (1, 1), 1, USERS))
    rnd.need("movies", Fetch(9, USERS))
    result = rnd.resolve()
    assert dict(rnd.rule_failures) == {"lookahead": {"plex"}}
    assert [s.item.rating_key for s in result["movies"]] == [9]


def test_one_history_request_from_the_earliest_start_serves_every_history_need():
    rows = [HistoryEntry(202, 7, 999_000.0, "episode", 200, 1, 2), HistoryEntry(201, 7, 990_000.0, "episode", 200, 1, 1)]
    plex = StubPlex(episodes={200: SHOW}, items={202: SHOW[1]}, history=rows)
    rnd = round_with(plex)
    next_up = episode(200, 1, 3, 203)
    rnd.need("deck", NextUp(next_up, USERS, 7, 995_000.0, 0))
    rnd.need("done", Plays(980_000.0, ((7, "u"),), 1))
    rnd.need("wl", Unwatched(200, 1, USERS, account_id=7, watched_since=900_000.0))
    result = rnd.resolve()
    assert [call for call in plex.calls if call[0] == "history"] == [("history", 900_000.0)]
    assert result["deck"] == [Selection(replace(next_up, last_viewed_at=999_000.0), USERS)]
    # the plays (201 is not in the library any more) and the episode after each
    assert sorted(s.item.rating_key for s in result["done"]) == [202, 202, 203]
    assert [s.item.rating_key for s in result["wl"]] == [203]  # 201 and 202 watched by account 7


def test_a_next_up_episode_whose_show_was_not_played_within_the_window_is_left_out():
    rows = [HistoryEntry(201, 7, 900_000.0, "episode", 200, 1, 1)]
    rnd = round_with(StubPlex(history=rows))
    rnd.need("deck", NextUp(episode(200, 1, 2, 202), USERS, 7, 995_000.0, 2))
    assert rnd.resolve()["deck"] == []


def test_a_failed_history_request_fails_the_rules_judged_by_it_only():
    rnd = round_with(StubPlex(episodes={200: SHOW}, failing={"history"}))
    rnd.need("done", Plays(0.0, ((7, "u"),), 1))
    rnd.need("ahead", After(200, (1, 2), 1, USERS))
    result = rnd.resolve()
    assert dict(rnd.rule_failures) == {"done": {"plex"}}
    assert [s.item.rating_key for s in result["ahead"]] == [203]
