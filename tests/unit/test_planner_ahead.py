"""The look-ahead window: fixed, in viewing time, and learned from each viewer's pace."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cacherr.planner.ahead import (
    DAY_SECONDS,
    AheadSpec,
    Finished,
    Pace,
    pace,
    window,
)

NOW = 1_700_000_000.0
HOUR = 3600.0


def plays(show_key: int, count: int, over_days: float, first_key: int = 1000):
    step = over_days * DAY_SECONDS / max(1, count)
    return [Finished(first_key + n, show_key, NOW - over_days * DAY_SECONDS + n * step)
            for n in range(count)]


def test_ahead_in_time_caches_the_episodes_that_cover_it_across_unequal_runtimes():
    spec = AheadSpec(seconds=3 * HOUR)
    chosen = window(spec, [50 * 60, 50 * 60, 50 * 60, 50 * 60, 50 * 60], "alice", "Severance")
    assert chosen.count == 4  # 150 min is not yet three hours; 200 min is
    assert chosen.reason == ("the next 4 episodes of Severance cover 3.3 h of viewing "
                             "(ahead: 3 h)")


def test_ahead_in_time_never_takes_fewer_than_one_episode_nor_more_than_there_are():
    assert window(AheadSpec(seconds=60), [HOUR], "a", "S").count == 1
    assert window(AheadSpec(seconds=100 * HOUR), [HOUR, HOUR], "a", "S").count == 2
    assert window(AheadSpec(seconds=HOUR), [], "a", "S").count == 0


def test_an_unknown_runtime_counts_as_the_shows_typical_one():
    spec = AheadSpec(seconds=2 * HOUR)
    assert window(spec, [HOUR, None, None], "a", "S").count == 2


def test_a_fast_viewer_gets_a_longer_window_than_a_slow_one_on_the_same_show():
    spec = AheadSpec(auto=True, horizon_seconds=DAY_SECONDS, max_episodes=10)
    fast = pace(plays(7, 12, over_days=3), 7, NOW)  # 4 a day
    slow = pace(plays(7, 4, over_days=20), 7, NOW)  # one every five days
    runtimes = [45 * 60] * 20
    assert window(spec, runtimes, "alice", "Severance", fast) == \
        window(spec, runtimes, "alice", "Severance", Pace(4.0, "this show"))
    assert window(spec, runtimes, "alice", "Severance", fast).count == 4
    assert window(spec, runtimes, "bob", "Severance", slow).count == 1
    assert window(spec, runtimes, "alice", "Severance", fast).reason == \
        "alice watches 4.0 episodes/day of Severance → 4 ahead"


def test_a_new_show_is_sized_by_the_viewers_pace_over_every_show():
    history = plays(1, 10, over_days=5) + plays(2, 10, over_days=5, first_key=2000)
    measured = pace(history + plays(7, 1, over_days=1, first_key=3000), 7, NOW)
    assert measured is not None and measured.scope == "all shows"
    assert measured.episodes_per_day == 21 / 5


def test_plays_older_than_thirty_days_do_not_count_and_no_plays_means_one_ahead():
    assert pace(plays(7, 30, over_days=45)[:5], 7, NOW) is None  # all before the window
    spec = AheadSpec(auto=True)
    assert window(spec, [HOUR] * 5, "carol", "S", None).count == 1


def test_auto_is_bounded_by_ahead_max():
    spec = AheadSpec(auto=True, max_episodes=3, horizon_seconds=7 * DAY_SECONDS)
    assert window(spec, [HOUR] * 50, "a", "S", Pace(6.0, "this show")).count == 3


def test_episodes_ahead_keeps_its_meaning():
    assert window(AheadSpec(episodes=5), [HOUR] * 3, "a", "S").count == 3
    assert window(AheadSpec(episodes=2), [HOUR] * 3, "a", "S").count == 2


runtimes = st.lists(st.one_of(st.none(), st.floats(60, 4 * HOUR)), min_size=1, max_size=30)
paces = st.floats(0.0, 50.0)


@given(runtimes, paces, paces, st.floats(HOUR, 14 * DAY_SECONDS), st.integers(1, 40))
def test_the_auto_window_never_shrinks_when_the_viewer_watches_faster(runs, p1, p2, horizon,
                                                                       most):
    spec = AheadSpec(auto=True, horizon_seconds=horizon, max_episodes=most)
    slower, faster = sorted((p1, p2))
    small = window(spec, runs, "a", "S", Pace(slower, "this show")).count
    large = window(spec, runs, "a", "S", Pace(faster, "this show")).count
    assert 1 <= small <= large <= min(most, len(runs))


@given(runtimes, st.floats(60, 48 * HOUR), st.integers(0, 29), st.floats(1.0, 3.0))
def test_the_timed_window_never_grows_when_an_episode_runs_longer(runs, seconds, which,
                                                                  factor):
    spec = AheadSpec(seconds=seconds)
    which = which % len(runs)
    known = [r or 1800.0 for r in runs]  # a fixed typical runtime: lengthen one episode only
    longer = list(known)
    longer[which] *= factor
    before = window(spec, known, "a", "S").count
    after = window(spec, longer, "a", "S").count
    assert 1 <= after <= before <= len(runs)


@given(runtimes, st.floats(60, 48 * HOUR), st.floats(60, 48 * HOUR))
def test_the_timed_window_never_shrinks_when_more_time_is_asked(runs, t1, t2):
    shorter, longer = sorted((t1, t2))
    assert window(AheadSpec(seconds=shorter), runs, "a", "S").count <= \
        window(AheadSpec(seconds=longer), runs, "a", "S").count


@given(st.lists(st.tuples(st.integers(1, 40), st.integers(1, 3), st.floats(0, 40)),
                max_size=60))
def test_pace_is_never_negative_and_counts_each_episode_once(rows):
    history = [Finished(key, show, NOW - days * DAY_SECONDS) for key, show, days in rows]
    measured = pace(history + history, 1, NOW)  # the same plays twice change nothing
    assert measured == pace(history, 1, NOW)
    if measured is not None:
        assert 0 < measured.episodes_per_day <= 40
