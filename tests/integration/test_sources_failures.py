"""Sources that fail end as reported failures of the round, never as exceptions."""

import socket

import pytest

from cacherr.config.model import Keep, PathMapping, PlexConfig, Rule
from cacherr.sources.http import RetryPolicy
from cacherr.sources.select import select_all
from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.scenarios import Scenario

KEEP = Keep(while_selected=True)


@pytest.fixture
def fake():
    with FakePlex(Scenario.small_demo()) as server:
        yield server


def rule(select, **kwargs):
    return Rule(name=kwargs.pop("name", select), select=select, keep=KEEP, **kwargs)


def test_plextv_answering_500_fails_plextv_and_the_owners_on_deck_still_counts(fake, tmp_path):
    fake.fail("plextv", "/api/users")
    result = fake.select([rule("ondeck")], tmp_path)
    assert "plextv" in result.failed_sources
    assert result.failed_rules == {"ondeck": ("plextv",)}
    assert {w.rule for w in result.wanted} == {"ondeck"}
    assert all(w.users == frozenset({"owner"}) for w in result.wanted)
    assert result.status["plextv"].up is False and result.status["plex"].up is True


def test_plextv_timing_out_is_a_failed_source_after_the_configured_timeout(fake, tmp_path):
    fake.hang("plextv", "/api/v2/user", seconds=10)
    result = fake.select([rule("ondeck")], tmp_path, timeout_seconds=0.3)
    assert "timed out" in result.failed_sources["plextv"]
    assert result.wanted  # the owner's On Deck, from the server itself


def test_a_429_with_retry_after_is_waited_out_and_retried(fake, tmp_path):
    fake.fail("trakt", "/movies/trending", status=429, times=1, retry_after=2)
    waits = []
    config = fake.config([rule("trakt", list="movies/trending")], state_dir=tmp_path)
    result = select_all(config, tmp_path, fake.scenario.now, env=fake.env(),
                        retry=RetryPolicy(attempts=3, backoff_seconds=0.01), sleep=waits.append)
    assert waits == [2.0]
    assert not result.failed_sources and result.wanted
    assert result.status["trakt"].failures == 1


def test_a_429_that_does_not_go_away_fails_the_source(fake, tmp_path):
    fake.fail("trakt", "/movies/trending", status=429, retry_after=0)
    result = fake.select([rule("trakt", list="movies/trending"), rule("recently_added")], tmp_path)
    assert "429" in result.failed_sources["trakt"]
    assert result.failed_rules == {"trakt": ("trakt",)}
    assert fake.count("trakt") == 3  # attempts
    assert {w.rule for w in result.wanted} == {"recently_added"}


def test_server_errors_are_retried_with_backoff_before_succeeding(fake, tmp_path):
    fake.fail("pms", "/library/onDeck", status=503, times=2)
    result = fake.select([rule("ondeck", users=("owner",))], tmp_path)
    assert not result.failed_sources and result.wanted


def test_an_unreachable_server_fails_plex_and_every_rule(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: nothing listens there
    with FakePlex(Scenario.small_demo()) as fake:
        config = fake.config([rule("ondeck"), rule("watchlist")], state_dir=tmp_path)
    config = type(config)(**{**config.__dict__, "plex": PlexConfig(
        url=f"http://127.0.0.1:{port}", token="x", timeout_seconds=0.5)})
    result = select_all(config, tmp_path, 1e9, env={}, retry=RetryPolicy(attempts=2, backoff_seconds=0.01))
    assert "cannot connect" in result.failed_sources["plex"]
    assert result.failed_rules == {"ondeck": ("plex",), "watchlist": ("plex",)}
    assert result.wanted == []


def test_a_users_failing_token_fails_only_that_user(fake, tmp_path):
    fake.fail("pms", "/library/onDeck", status=401, token="KID-SERVER-TOKEN")
    result = fake.select([rule("ondeck")], tmp_path)
    assert set(result.failed_sources) == {"user:kid"}
    assert result.failed_rules == {"ondeck": ("user:kid",)}
    assert {u for w in result.wanted for u in w.users} == {"owner", "friend"}


def test_a_friend_without_a_token_is_a_warning_and_their_on_deck_comes_from_history(fake, tmp_path):
    fake.scenario.user("friend").server_token = None
    result = fake.select([rule("ondeck", episodes_ahead=1, users=("friend",))], tmp_path)
    assert not result.failed_sources
    assert any("no server token for friend" in w for w in result.warnings)
    tv = "/mnt/user/media/tv/Example Show"
    assert {w.host_path for w in result.wanted} == {f"{tv}/Season 01/Example Show - S01E02.mkv",
                                                   f"{tv}/Season 01/Example Show - S01E03.mkv"}


def test_a_friend_without_a_token_who_is_playing_is_seen_through_the_sessions(fake, tmp_path):
    fake.scenario.user("friend").server_token = None
    fake.start_session("friend", 101)
    result = fake.select([rule("ondeck", users=("friend",))], tmp_path)
    assert any("Example Movie" in w.item for w in result.wanted)


def test_a_token_from_plex_user_tokens_is_used_when_plextv_gives_none(fake, tmp_path):
    fake.scenario.user("friend").server_token = None
    fake.scenario.extra_server_tokens["PASTED-FRIEND-TOKEN"] = "friend"
    result = fake.select([rule("ondeck", users=("friend",))], tmp_path,
                         user_tokens={"Friend": "PASTED-FRIEND-TOKEN"})
    assert not result.warnings
    assert any(r.token == "PASTED-FRIEND-TOKEN" for r in fake.requests if r.path == "/library/onDeck")


def test_discover_failing_fails_plextv_for_the_watchlist_rule_only(fake, tmp_path):
    fake.fail("discover", "/library/sections/watchlist")
    result = fake.select([rule("watchlist"), rule("recently_added")], tmp_path)
    assert set(result.failed_rules) == {"watchlist"}
    assert "plextv" in result.failed_sources
    # the friends' RSS part of the watchlist still counts
    assert any(w.users == frozenset({"friend"}) for w in result.wanted if w.rule == "watchlist")


def test_a_failing_rss_feed_fails_plextv(fake, tmp_path):
    fake.fail("rss", "/")
    result = fake.select([rule("watchlist", users=("friend",))], tmp_path)
    assert result.failed_rules == {"watchlist": ("plextv",)}


def test_a_trakt_rule_without_a_client_id_fails_trakt(fake, tmp_path):
    result = fake.select([rule("trakt", list="movies/trending")], tmp_path, trakt=False)
    assert "client_id" in result.failed_sources["trakt"]


def test_an_unmapped_library_is_not_a_failure(fake, tmp_path):
    result = fake.select([rule("recently_added")], tmp_path, paths=(PathMapping("/x", "/y"),))
    assert not result.failed_sources and result.unmapped
