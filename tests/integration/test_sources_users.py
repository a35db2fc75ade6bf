"""Users: include/exclude, inactivity, Home users' tokens, and what plexapi gets from the fake."""

import stat

import pytest

from cacherr.config.model import Keep, Rule, UsersConfig
from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.scenarios import Scenario

KEEP = Keep(while_selected=True)
DAY = 86400.0


@pytest.fixture
def fake():
    with FakePlex(Scenario.small_demo()) as server:
        yield server


def ondeck():
    return Rule(name="ondeck", select="ondeck", keep=KEEP)


def test_users_are_the_owner_home_users_and_friends_with_their_server_tokens(fake, tmp_path):
    result = fake.select([ondeck()], tmp_path)
    assert {(u.name, u.kind, u.token) for u in result.users} == {
        ("owner", "owner", "OWNER-TOKEN"), ("kid", "home", "KID-SERVER-TOKEN"),
        ("friend", "friend", "FRIEND-SERVER-TOKEN")}
    assert fake.count("plextv", "/api/servers/") == 1  # one shared_servers request for all tokens


def test_users_exclude_and_include_match_names_in_any_case(fake, tmp_path):
    result = fake.select([ondeck()], tmp_path, users=UsersConfig(include=None, exclude=("KID",)))
    assert {u.name for u in result.users} == {"owner", "friend"}
    result = fake.select([ondeck()], tmp_path, users=UsersConfig(include=("Friend",)))
    assert {u.name for u in result.users} == {"friend"}
    assert all(w.users == frozenset({"friend"}) for w in result.wanted)


def test_users_without_plays_for_inactive_after_are_left_out(fake, tmp_path):
    result = fake.select([ondeck()], tmp_path, users=UsersConfig(include=None, inactive_after_seconds=10 * DAY))
    assert {u.name for u in result.users} == {"owner", "friend"}  # kid last played 20 days ago
    assert "kid" not in {u for w in result.wanted for u in w.users}


def test_home_user_tokens_are_kept_in_a_private_file_in_the_state_dir(fake, tmp_path):
    fake.select([Rule(name="wl", select="watchlist", keep=KEEP)], tmp_path)
    path = tmp_path / "plex-home-tokens.json"
    assert "KID-ACCOUNT-TOKEN" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_home_user_missing_from_shared_servers_gets_a_token_by_switching(fake, tmp_path):
    kid = fake.scenario.user("kid")
    fake.scenario.extra_server_tokens[kid.server_token] = "kid"
    kid_token, kid.server_token = kid.server_token, None  # not in shared_servers any more
    result = fake.select([ondeck()], tmp_path)
    (found,) = [u for u in result.users if u.name == "kid"]
    assert found.token == kid_token
    assert fake.count("plextv", "/api/home/users/3000003/switch") == 1
    assert fake.count("plextv", "/api/v2/resources") == 1


def test_session_users_are_read_from_the_session_not_from_plextv(fake, tmp_path):
    fake.start_session("kid", 101)
    result = fake.select([Rule(name="p", select="playing", keep=KEEP)], tmp_path)
    assert [(s.user_name, s.state, s.item.rating_key) for s in result.sessions] == [("kid", "playing", 101)]
    assert fake.count("plextv") == 3  # the account, its users, shared_servers: nothing per session


def test_a_revoked_home_user_token_fails_that_user_and_is_renewed_next_cycle(fake, tmp_path):
    watchlist = Rule(name="wl", select="watchlist", keep=KEEP, users=("kid",))
    fake.select([watchlist], tmp_path)
    fake.fail("discover", "/library/sections/watchlist", status=401, token="KID-ACCOUNT-TOKEN", times=1)
    result = fake.select([watchlist], tmp_path)
    assert result.failed_rules == {"wl": ("user:kid",)}
    assert "KID-ACCOUNT-TOKEN" not in (tmp_path / "plex-home-tokens.json").read_text()
    result = fake.select([watchlist], tmp_path)
    assert not result.failed_sources and result.wanted
    assert fake.count("plextv", "/api/home/users/3000003/switch") == 2


def test_a_rule_naming_an_unknown_user_or_library_is_warned_about(fake, tmp_path):
    result = fake.select([Rule(name="o", select="ondeck", keep=KEEP, users=("bob",), libraries=("Films",))],
                         tmp_path)
    assert "rule o: user 'bob' is not an included Plex user" in result.warnings
    assert "rule o: Plex has no library 'Films'" in result.warnings
    assert not result.failed_sources


def test_friends_watchlists_without_an_rss_feed_are_a_warning(fake, tmp_path):
    result = fake.select([Rule(name="w", select="watchlist", keep=KEEP)], tmp_path, watchlist_rss=False)
    assert any("plex.watchlist_rss" in w for w in result.warnings)
    assert "friend" not in {u for w in result.wanted for u in w.users}


def test_plays_since_a_time_say_who_watched_what_for_keep_until_watched(fake, tmp_path):
    fake.mark_watched("kid", 213, at=fake.scenario.now - 60)
    result = fake.select([ondeck()], tmp_path, history_since=fake.scenario.now - 1.5 * DAY)
    assert {(p.rating_key, p.user_name) for p in result.plays} == {(213, "kid"), (211, "friend")}
    assert fake.select([ondeck()], tmp_path).plays == ()  # not asked, not fetched


def test_a_frequent_round_reuses_recent_users_instead_of_asking_plextv_again(fake, tmp_path):
    from cacherr.sources.users import UsersMemory

    playing = Rule(name="p", select="playing", keep=KEEP)
    memory = UsersMemory()
    fake.select([ondeck()], tmp_path, users_memory=memory)
    fake.start_session("kid", 101)
    fake.reset_counts()
    result = fake.select([playing], tmp_path, users_max_age_seconds=3600, users_memory=memory)
    assert fake.count("plextv") == 0
    assert [w.users for w in result.wanted] == [frozenset({"kid"})]
    assert not (tmp_path / "plex-users.json").exists()  # they carry tokens: memory only
    later = fake.select([playing], tmp_path, now=fake.scenario.now + 7200,
                        users_max_age_seconds=3600, users_memory=memory)
    assert fake.count("plextv") == 3 and later.wanted


def test_a_user_halfway_through_a_film_is_active_though_history_has_no_row_for_it(fake, tmp_path):
    users = UsersConfig(include=None, inactive_after_seconds=10 * DAY)
    fake.set_progress("kid", 102, 600_000, at=fake.scenario.now - DAY)  # an hour in, not finished
    result = fake.select([ondeck()], tmp_path, users=users)
    assert {u.name for u in result.users} == {"owner", "friend", "kid"}
    # history answered for the owner and friend; only kid's On Deck was asked, once
    on_deck = [r.token for r in fake.requests if r.path == "/library/onDeck"]
    assert sorted(on_deck) == sorted(["KID-SERVER-TOKEN", "OWNER-TOKEN", "FRIEND-SERVER-TOKEN"])
    assert fake.count("pms", "/status/sessions/history") == 1


def test_a_user_playing_now_is_active(fake, tmp_path):
    fake.start_session("kid", 103)
    result = fake.select([ondeck()], tmp_path, users=UsersConfig(include=None, inactive_after_seconds=DAY))
    assert "kid" in {u.name for u in result.users}


def test_when_every_user_is_left_out_the_warning_names_inactive_after(fake, tmp_path):
    later = fake.scenario.now + 400 * DAY
    result = fake.select([ondeck()], tmp_path, now=later,
                         users=UsersConfig(include=None, inactive_after_seconds=30 * DAY))
    assert result.users == ()
    (warning,) = [w for w in result.warnings if "inactive_after" in w]
    assert "users.inactive_after (30d)" in warning and "owner" in warning


def test_users_of_the_owners_other_servers_are_not_users_here_and_are_never_switched(fake, tmp_path):
    fake.scenario.user("kid").servers = ["another-server"]
    fake.scenario.user("friend").servers = ["another-server"]
    wl = Rule(name="wl", select="watchlist", keep=KEEP)
    for _ in range(2):
        result = fake.select([wl, ondeck()], tmp_path)
        assert [u.name for u in result.users] == ["owner"]
    assert fake.count("plextv", "/api/home/users/") == 0
    assert {r.token for r in fake.requests if r.path == "/library/onDeck"} == {"OWNER-TOKEN"}


def test_a_home_user_plextv_has_no_server_token_for_is_not_switched_every_cycle(fake, tmp_path):
    kid = fake.scenario.user("kid")
    kid.server_token = None  # neither shared_servers nor resources hand one out
    rounds = [fake.select([ondeck()], tmp_path) for _ in range(3)]
    assert fake.count("plextv", "/api/home/users/3000003/switch") == 1
    assert fake.count("plextv", "/api/v2/resources") == 1  # asked again only after a day
    said = [any("no server token for Home user kid" in w for w in r.warnings) for r in rounds]
    assert said == [True, False, False]
    assert all(next(u for u in r.users if u.name == "kid").token is None for r in rounds)
