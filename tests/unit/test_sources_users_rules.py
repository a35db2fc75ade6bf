"""Who counts as a user: the server filter (plex.tv lists everyone the owner shares any
server with) and the activity rule (a partial play and a live session are activity too)."""

from cacherr.sources.types import HistoryEntry, Item, Session, SharedUser, User
from cacherr.sources.users import latest_activity, on_this_server

THIS, OTHER = "this-server", "other-server"
NOW = 1_000_000.0


def shared(kind, *servers, name="u"):
    return SharedUser(User(name=name, id=7, kind=kind), tuple(servers))


def test_only_users_this_server_is_shared_with_count():
    assert on_this_server(shared("friend", THIS), THIS)
    assert on_this_server(shared("home", OTHER, THIS), THIS)
    assert not on_this_server(shared("friend", OTHER), THIS)
    assert not on_this_server(shared("home", OTHER), THIS)  # a Home user of another server
    assert not on_this_server(shared("home"), THIS)  # no <Server> at all


def test_the_owner_always_counts_even_without_a_server_listed():
    assert on_this_server(shared("owner"), THIS)


def play(account, at):
    return HistoryEntry(rating_key=1, account_id=account, viewed_at=at, type="movie")


def deck_item(last_viewed_at):
    return Item(rating_key=2, type="movie", title="m", library="Movies", last_viewed_at=last_viewed_at)


def session(account, name="friend"):
    return Session(user_name=name, account_id=account, item=deck_item(None), state="playing")


FRIEND = User(name="friend", id=42, kind="friend")
OWNER = User(name="owner", id=1000, kind="owner")


def test_activity_is_the_latest_finished_play_of_the_users_own_account():
    plays = [play(42, NOW - 50), play(42, NOW - 10), play(7, NOW - 1)]
    assert latest_activity(FRIEND, plays, (), (), NOW) == NOW - 10
    assert latest_activity(OWNER, [play(1, NOW - 3)], (), (), NOW) == NOW - 3  # the owner is account 1


def test_a_film_half_watched_an_hour_ago_is_activity_though_history_has_no_row():
    assert latest_activity(FRIEND, [play(42, NOW - 90 * 86400)], [deck_item(NOW - 3600)], (), NOW) == NOW - 3600


def test_a_live_session_is_activity_now_matched_by_account_or_by_name_without_one():
    assert latest_activity(FRIEND, (), (), [session(42)], NOW) == NOW
    assert latest_activity(FRIEND, (), (), [session(None, "FRIEND")], NOW) == NOW
    assert latest_activity(FRIEND, (), (), [session(7, "someone else")], NOW) is None


def test_no_play_no_deck_and_no_session_is_no_activity():
    assert latest_activity(FRIEND, [], [deck_item(None)], [], NOW) is None
