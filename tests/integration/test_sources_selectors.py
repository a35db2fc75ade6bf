"""Every selector, with the real plexapi talking to the fake Plex on loopback."""

import pytest

from cacherr.config.model import Keep, Rule
from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.scenarios import Scenario, Section

KEEP = Keep(while_selected=True)
MOVIES = "/mnt/user/media/movies"
TV = "/mnt/user/media/tv"


@pytest.fixture
def fake():
    with FakePlex(Scenario.small_demo()) as server:
        yield server


def rule(select, **kwargs):
    return Rule(name=kwargs.pop("name", select), select=select, keep=KEEP, **kwargs)


def files(result, rule_name=None):
    """{host path: sorted users} of what a rule wants."""
    return {w.host_path: sorted(w.users) for w in result.wanted if rule_name in (None, w.rule)}


def ep(show, season, episode):
    return f"{TV}/{show}/Season {season:02d}/{show} - S{season:02d}E{episode:02d}.mkv"


def test_ondeck_gives_each_users_next_episodes_across_a_season_boundary(fake, tmp_path):
    result = fake.select([rule("ondeck", episodes_ahead=2, users=("owner",))], tmp_path)
    assert files(result) == {
        ep("Example Show", 1, 3): ["owner"],  # in progress
        ep("Example Show", 2, 1): ["owner"],
        ep("Example Show", 2, 2): ["owner"],
    }
    assert not result.failed_sources


def test_ondeck_uses_each_users_own_token_and_merges_users_per_file(fake, tmp_path):
    result = fake.select([rule("ondeck", episodes_ahead=1)], tmp_path)
    assert files(result) == {
        ep("Example Show", 1, 2): ["friend"],
        ep("Example Show", 1, 3): ["friend", "owner"],
        ep("Example Show", 2, 1): ["owner"],
        ep("Other Show", 1, 2): ["kid"],
        ep("Other Show", 1, 3): ["kid"],
    }
    tokens = {r.token for r in fake.requests if r.path == "/library/onDeck"}
    assert tokens == {"OWNER-TOKEN", "FRIEND-SERVER-TOKEN", "KID-SERVER-TOKEN"}


def test_ondeck_within_leaves_out_what_was_last_watched_too_long_ago(fake, tmp_path):
    fake.mark_watched("kid", 302, at=fake.scenario.now - 20 * 86400)  # Other Show S01E02 -> E03 next
    result = fake.select([rule("ondeck", within_seconds=2 * 86400)], tmp_path)
    assert ep("Other Show", 1, 3) not in files(result)
    assert files(result) == {ep("Example Show", 1, 2): ["friend"], ep("Example Show", 1, 3): ["owner"]}


def test_watchlist_gives_the_owners_movie_and_skips_unreleased_and_missing_items(fake, tmp_path):
    result = fake.select([rule("watchlist", users=("owner",))], tmp_path)
    assert files(result) == {f"{MOVIES}/Second Movie (2019)/Second Movie (2019).mkv": ["owner"]}


def test_watchlist_of_a_home_user_gives_the_first_episode_they_have_not_watched(fake, tmp_path):
    result = fake.select([rule("watchlist", users=("kid",), episodes=2)], tmp_path)
    assert files(result) == {ep("Other Show", 1, 2): ["kid"], ep("Other Show", 1, 3): ["kid"]}
    assert fake.count("plextv", "/api/home/users/3000003/switch") == 1


def test_a_home_users_plextv_token_is_kept_across_cycles(fake, tmp_path):
    fake.select([rule("watchlist", users=("kid",))], tmp_path)
    fake.select([rule("watchlist", users=("kid",))], tmp_path)
    assert fake.count("plextv", "/api/home/users/3000003/switch") == 1


def test_a_friends_watchlist_comes_from_the_rss_feed_and_matches_by_guid(fake, tmp_path):
    result = fake.select([rule("watchlist", users=("friend",))], tmp_path)
    assert files(result) == {
        ep("Example Show", 1, 2): ["friend"],  # the friend watched S01E01
        f"{MOVIES}/Example Movie (2008)/Example Movie (2008) - 1080p.mkv": ["friend"],
        f"{MOVIES}/Example Movie (2008)/Example Movie (2008) - 2160p.mkv": ["friend"],
    }
    assert fake.count("rss") == 1
    assert fake.count("discover") == 0  # a friend's own watchlist is not readable with our tokens


def test_watchlist_matching_never_uses_titles(fake, tmp_path):
    fake.scenario.discover_only[1].title = "Second Movie"  # same title, other guid
    fake.watchlist_add("kid", fake.scenario.discover_only[1].guid)
    result = fake.select([rule("watchlist", users=("kid",))], tmp_path)
    assert not any("Second Movie" in path for path in files(result))


def test_playing_start_gives_live_sessions_and_the_next_episodes(fake, tmp_path):
    fake.start_session("friend", 213)  # Example Show S01E03
    result = fake.select([rule("playing", episodes_ahead=1)], tmp_path)
    assert files(result) == {ep("Example Show", 1, 3): ["friend"], ep("Example Show", 2, 1): ["friend"]}


def test_playing_sees_a_stopped_session_go(fake, tmp_path):
    fake.start_session("kid", 101)
    fake.stop_session("kid")
    assert fake.select([rule("playing")], tmp_path).wanted == []


def test_playing_complete_gives_what_finished_within_the_window(fake, tmp_path):
    result = fake.select([rule("playing", when="complete", within_seconds=1.5 * 86400, episodes_ahead=1)],
                         tmp_path)
    # only the friend's S01E01 (a day ago) is recent enough; the owner's plays are older
    assert files(result) == {ep("Example Show", 1, 1): ["friend"], ep("Example Show", 1, 2): ["friend"]}


def test_recently_added_gives_what_was_added_within_the_window(fake, tmp_path):
    result = fake.select([rule("recently_added", within_seconds=7 * 86400)], tmp_path)
    assert files(result) == {f"{MOVIES}/Second Movie (2019)/Second Movie (2019).mkv": ["friend", "kid", "owner"]}


def test_pinned_by_label_gives_every_file_of_the_labelled_item(fake, tmp_path):
    result = fake.select([rule("pinned", label="Cache", users=("owner",))], tmp_path)
    assert files(result) == {
        f"{MOVIES}/Pinned Movie (1999)/Pinned Movie (1999) - pt1.avi": ["owner"],
        f"{MOVIES}/Pinned Movie (1999)/Pinned Movie (1999) - pt2.avi": ["owner"],
    }


def test_pinned_paths_may_be_written_as_the_host_or_as_plex_sees_them(fake, tmp_path):
    result = fake.select([rule("pinned", users=("owner",), paths=(
        "/mnt/user/media/tv/Other Show/Season 01/Other Show - S01E04.mkv",
        "/data/media/movies/Second Movie (2019)"))], tmp_path)
    assert set(files(result)) == {ep("Other Show", 1, 4),
                                  f"{MOVIES}/Second Movie (2019)/Second Movie (2019).mkv"}


def test_trakt_movies_match_local_items_by_imdb_guid(fake, tmp_path):
    result = fake.select([rule("trakt", list="movies/trending", limit=10, versions="smallest")], tmp_path)
    assert set(files(result)) == {f"{MOVIES}/Example Movie (2008)/Example Movie (2008) - 1080p.mkv"}


def test_trakt_shows_take_their_first_episodes(fake, tmp_path):
    result = fake.select([rule("trakt", list="shows/trending", episodes=2)], tmp_path)
    assert set(files(result)) == {ep("Other Show", 1, 1), ep("Other Show", 1, 2)}


def test_a_users_trakt_list_and_watchlist_are_read(fake, tmp_path):
    fake.scenario.trakt_lists["users/alice/lists/weekend"] = [
        {"rank": 1, "type": "movie", "movie": {"title": "x", "ids": {"imdb": None, "tmdb": 90102}}}]
    fake.scenario.trakt_lists["users/alice/watchlist"] = [
        {"rank": 1, "type": "show", "show": {"title": "y", "ids": {"tvdb": 900200}}}]
    result = fake.select([rule("trakt", name="list", list="users/alice/lists/weekend"),
                          rule("trakt", name="wl", list="users/alice/watchlist")], tmp_path)
    assert set(files(result, "list")) == {f"{MOVIES}/Second Movie (2019)/Second Movie (2019).mkv"}
    assert set(files(result, "wl")) == {ep("Example Show", 1, 3)}  # first not watched by the owner


def test_the_guid_index_is_kept_and_refreshed_only_by_what_changed(fake, tmp_path):
    trending = rule("trakt", list="movies/trending")
    fake.select([trending], tmp_path)
    fake.reset_counts()
    fake.select([trending], tmp_path)
    refreshes = [r.query for r in fake.requests if r.path.endswith("/all")]
    assert refreshes and all("updatedAt>>" in q for q in refreshes)


def test_the_guid_index_is_not_built_without_a_rule_that_needs_it(fake, tmp_path):
    fake.select([rule("ondeck")], tmp_path)
    assert not (tmp_path / "guid-index.json").exists()


def test_an_item_with_1080p_and_4k_versions_gives_both_files(fake, tmp_path):
    fake.set_progress("owner", 101, 1000)
    result = fake.select([rule("ondeck", users=("owner",))], tmp_path)
    assert {f"{MOVIES}/Example Movie (2008)/Example Movie (2008) - 1080p.mkv",
            f"{MOVIES}/Example Movie (2008)/Example Movie (2008) - 2160p.mkv"} <= set(files(result))


def test_versions_largest_and_max_file_size_narrow_the_files(fake, tmp_path):
    fake.set_progress("owner", 101, 1000)
    largest = fake.select([rule("ondeck", users=("owner",), versions="largest")], tmp_path)
    assert f"{MOVIES}/Example Movie (2008)/Example Movie (2008) - 1080p.mkv" not in files(largest)
    capped = fake.select([rule("ondeck", users=("owner",), max_file_size_bytes=10 * 1024**3)], tmp_path)
    assert f"{MOVIES}/Example Movie (2008)/Example Movie (2008) - 2160p.mkv" not in files(capped)


def test_libraries_restrict_a_rule_to_the_named_libraries(fake, tmp_path):
    fake.set_progress("owner", 101, 1000)
    result = fake.select([rule("ondeck", users=("owner",), libraries=("movies",))], tmp_path)
    assert all(path.startswith(MOVIES) for path in files(result)) and files(result)


def test_wanted_files_carry_rule_priority_size_and_item(fake, tmp_path):
    result = fake.select([rule("recently_added", priority=77)], tmp_path)
    (wanted,) = result.wanted
    assert (wanted.priority, wanted.size_bytes, wanted.item) == (77, 6 * 1024**3, "Second Movie (movie 102)")
    assert wanted.plex_path == "/data/media/movies/Second Movie (2019)/Second Movie (2019).mkv"


def test_unmapped_plex_paths_are_reported_with_a_suggested_mapping(fake, tmp_path):
    from cacherr.config.model import PathMapping

    result = fake.select([rule("recently_added")], tmp_path,
                         paths=(PathMapping(plex="/data/media/tv", host="/mnt/user/tv"),))
    assert result.wanted == []
    (suggestion,) = result.unmapped.values()
    assert "/data/media/movies" in suggestion and suggestion in result.warnings


def test_items_gone_from_the_server_leave_the_guid_index(fake, tmp_path):
    trending = rule("trakt", list="movies/trending")
    fake.select([trending], tmp_path)
    fake.scenario.movies = [m for m in fake.scenario.movies if m.rating_key != 101]
    fake._index()
    result = fake.select([trending], tmp_path)
    assert result.wanted == [] and not result.failed_sources
    assert '"101"' not in (tmp_path / "guid-index.json").read_text()


def test_on_deck_of_a_library_hidden_from_home_is_read_from_that_library(fake, tmp_path):
    fake.set_progress("owner", 101, 1000)
    fake.scenario.sections[0].hidden = 1  # Movies: excluded from Home
    result = fake.select([rule("ondeck", users=("owner",))], tmp_path)
    assert f"{MOVIES}/Example Movie (2008)/Example Movie (2008) - 1080p.mkv" in files(result)
    assert ep("Example Show", 1, 3) in files(result)  # the library shown on Home
    # two libraries, one hidden: one request each (as many as /library/onDeck plus the hidden one)
    assert sorted(r.path for r in fake.requests if "onDeck" in r.path) == [
        "/library/sections/1/onDeck", "/library/sections/2/onDeck"]
    fake.reset_counts()
    fake.scenario.sections.append(Section(3, "Kids Movies", "movie", "/data/media/kids"))
    fake.select([rule("ondeck", users=("owner",))], tmp_path)
    assert sorted(r.path for r in fake.requests if "onDeck" in r.path) == [
        "/library/onDeck", "/library/sections/1/onDeck"]


def test_on_deck_of_one_library_is_one_request_for_that_library(fake, tmp_path):
    fake.set_progress("owner", 101, 1000)
    result = fake.select([rule("ondeck", users=("owner",), libraries=("Movies",))], tmp_path)
    assert files(result) and all(path.startswith(MOVIES) for path in files(result))
    assert [r.path for r in fake.requests if "onDeck" in r.path] == ["/library/sections/1/onDeck"]


def test_a_session_without_a_user_is_protected_but_cached_for_nobody(fake, tmp_path):
    fake.start_session("kid", 102, no_user=True)
    result = fake.select([rule("playing")], tmp_path)
    assert result.wanted == [] and not result.failed_sources
    (session,) = result.sessions
    assert [f.plex_path for f in session.item.files] == ["/data/media/movies/Second Movie (2019)/Second Movie (2019).mkv"]


def test_a_transcoded_episode_is_cached_with_the_episodes_after_it(fake, tmp_path):
    fake.start_session("friend", 213, transcode=True)  # Example Show S01E03
    result = fake.select([rule("playing", episodes_ahead=1)], tmp_path)
    assert files(result) == {ep("Example Show", 1, 3): ["friend"], ep("Example Show", 2, 1): ["friend"]}


def test_the_episodes_of_every_show_a_round_needs_come_in_one_listing(fake, tmp_path):
    fake.start_session("friend", 213)
    fake.start_session("kid", 301)
    rules = [rule("playing", episodes_ahead=1), rule("ondeck", name="deck", episodes_ahead=2),
             rule("watchlist", name="wl", episodes=1), rule("trakt", name="tr", list="shows/trending")]
    result = fake.select(rules, tmp_path)
    assert not result.failed_sources
    listings = [r for r in fake.requests if r.path == "/library/sections/2/all" and "show.id" in r.query]
    assert len(listings) == 1 and set(listings[0].query["show.id"][0].split(",")) == {"200", "300"}
    assert not [r for r in fake.requests if "allLeaves" in r.path or r.path.endswith("/children")]
