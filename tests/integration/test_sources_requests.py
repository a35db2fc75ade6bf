"""No N+1: what a selection round costs grows with users and libraries, not with items."""

from cacherr.config.model import Keep, Rule
from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.scenarios import Scenario

DAY = 86400.0
RULES = [
    Rule("continue-watching", "ondeck", Keep(while_selected=True), within_seconds=14 * DAY, episodes_ahead=5),
    Rule("watchlists", "watchlist", Keep(for_seconds=7 * DAY)),
    Rule("trending", "trakt", Keep(while_selected=True), list="movies/trending"),
    Rule("now-playing", "playing", Keep(until_watched=True), episodes_ahead=2),
    Rule("new", "recently_added", Keep(while_selected=True), within_seconds=7 * DAY),
]


def round_requests(items, users, tmp_path) -> tuple[int, int]:
    """Requests of a cold round (builds the GUID index, switches to Home users) and of
    the next one (steady state)."""
    scenario = Scenario.generate(items=items, users=users)
    counts = []
    with FakePlex(scenario) as fake:
        fake.start_session(scenario.users[1].name, scenario.movies[0].rating_key)
        for _ in range(2):
            fake.reset_counts()
            result = fake.select(RULES, tmp_path)
            assert not result.failed_sources
            assert result.request_count == fake.count()
            counts.append(result.request_count)
    return counts[0], counts[1]


def test_a_full_round_for_5_users_and_200_items_takes_at_most_25_requests_cold_and_steady(tmp_path):
    cold, steady = round_requests(200, 5, tmp_path)
    assert cold <= 25 and steady <= 25


def test_a_library_five_times_larger_costs_no_more_requests(tmp_path):
    small = round_requests(200, 5, tmp_path / "small")
    large = round_requests(1000, 5, tmp_path / "large")
    assert large == small


def test_a_transcoded_session_costs_the_session_watcher_one_request_more(tmp_path):
    scenario = Scenario.generate(items=200, users=5)
    playing = [r for r in RULES if r.select == "playing"]
    with FakePlex(scenario) as fake:
        fake.select(RULES, tmp_path)
        counts = []
        for shape in ({}, {"transcode": True}):
            fake.stop_session(scenario.users[1].name)
            fake.start_session(scenario.users[1].name, scenario.movies[0].rating_key, **shape)
            fake.reset_counts()
            result = fake.select(playing, tmp_path, users_max_age_seconds=3600)
            assert [w.item for w in result.wanted] == [f"{scenario.movies[0].title} (movie 10000)"]
            counts.append(fake.count())
    assert counts[1] == counts[0] + 1


def test_a_partial_round_evaluates_only_the_rules_it_is_given(tmp_path):
    scenario = Scenario.small_demo()
    with FakePlex(scenario) as fake:
        fake.start_session("kid", 101)
        config = fake.config(RULES, state_dir=tmp_path)
        from cacherr.sources.select import select_all

        result = select_all(config, tmp_path, scenario.now, rules=[RULES[3]], env=fake.env())
    assert result.evaluated_rules == ("now-playing",)
    assert {w.rule for w in result.wanted} == {"now-playing"}
    assert fake.count("trakt") == 0 and fake.count("discover") == 0
