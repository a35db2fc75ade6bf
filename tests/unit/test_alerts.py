"""Plex's alert messages: parsed from what real servers send, hostile input refused, and
what each one wakes (a session round once per new playback, an added round once per new
item)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cacherr.sources import alerts
from cacherr.sources.alerts import (
    AlertTracker,
    MalformedAlert,
    Message,
    Playback,
    TimelineEntry,
    parse_message,
)


def container(kind: str, name: str, entries: list) -> str:
    return json.dumps({"NotificationContainer": {"type": kind, "size": len(entries), name: entries}})


def playing(session_key="12", rating_key="203", state="playing", **extra) -> Message:
    return parse_message(container("playing", "PlaySessionStateNotification", [dict(
        sessionKey=session_key, ratingKey=rating_key, key=f"/library/metadata/{rating_key}",
        state=state, viewOffset=600000, **extra)]))


def timeline(item_id="104", state=0, metadata_state=None, item_type=1,
             identifier="com.plexapp.plugins.library") -> Message:
    entry = {"identifier": identifier, "sectionID": "1", "itemID": item_id, "type": item_type,
             "title": "New Movie", "state": state, "updatedAt": 1760000000}
    if metadata_state is not None:
        entry["metadataState"] = metadata_state
    return parse_message(container("timeline", "TimelineEntry", [entry]))


# -- parsing -------------------------------------------------------------------------


def test_a_playing_message_as_real_servers_send_it_becomes_a_playback():
    text = ('{"NotificationContainer":{"type":"playing","size":1,"PlaySessionStateNotification":'
            '[{"sessionKey":"23","guid":"","ratingKey":"9725","url":"","key":"/library/metadata/9725",'
            '"viewOffset":30000,"playQueueItemID":17679,"state":"paused",'
            '"transcodeSession":"18nyclub53k1ey37jjbg8ok3"}]}}')
    assert parse_message(text) == Message("playing", (Playback("23", 9725, "paused", 30000),))


def test_numbers_or_strings_both_parse_and_a_missing_rating_key_comes_from_the_key():
    message = parse_message(container("playing", "PlaySessionStateNotification", [
        {"sessionKey": 7, "key": "/library/metadata/42", "state": "playing", "viewOffset": "100"}]))
    assert message.playbacks == (Playback("7", 42, "playing", 100),)


def test_the_timeline_shape_of_recent_servers_parses_with_string_ids():
    text = ('{"NotificationContainer": {"type": "timeline", "TimelineEntry": [{"identifier": '
            '"com.plexapp.plugins.library", "sectionID": "1", "itemID": "10141", "type": 1, '
            '"state": 5, "metadataState": "created"}]}}')
    assert parse_message(text).timeline == (
        TimelineEntry(10141, 1, 5, "created", 1, "com.plexapp.plugins.library"),)


@pytest.mark.parametrize("kind, expected", [
    ("activity", "activity"), ("status", "other"), ("update.statechange", "other"),
    (5, "other"), (None, "other")])
def test_kinds_outside_the_bounded_set_count_as_other(kind, expected):
    text = json.dumps({"NotificationContainer": {"type": kind, "size": 0}})
    assert parse_message(text).kind == expected


@pytest.mark.parametrize("text", [
    "not json", "", "[1, 2]", "null", '{"NotificationContainer": 5}',
    '{"NotificationContainer": []}', '{"other": {}}', "[" * 100_000, b"\xff\xfe"])
def test_what_is_not_a_notification_is_refused_with_one_error(text):
    with pytest.raises(MalformedAlert):
        parse_message(text)


def test_hostile_entries_are_skipped_and_odd_values_become_none():
    message = parse_message(container("playing", "PlaySessionStateNotification", [
        "a string", 5, None, {"ratingKey": "1"},  # no sessionKey
        {"sessionKey": "1", "ratingKey": True, "state": "playing"},
        {"sessionKey": "2", "ratingKey": "9" * 5000, "state": "playing"},  # beyond int-from-str
        {"sessionKey": "3", "ratingKey": 1.5, "viewOffset": -4, "state": ["x"]},
        {"sessionKey": "4", "ratingKey": "٣", "state": "playing"},  # a non-ASCII digit
    ]))
    assert message.playbacks == (Playback("1", None, "playing"), Playback("2", None, "playing"),
                                 Playback("3", None, ""), Playback("4", None, "playing"))
    entries = parse_message(json.dumps({"NotificationContainer": {
        "type": "timeline", "TimelineEntry": {"itemID": "1"}}}))
    assert entries.timeline == ()  # not a list


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.sampled_from(
                        ["NotificationContainer", "type", "PlaySessionStateNotification",
                         "TimelineEntry", "sessionKey", "ratingKey", "state", "itemID", "key",
                         "metadataState", "identifier", "viewOffset"]), children, max_size=6),
                    max_leaves=30)


@given(JSON)
def test_any_json_parses_or_is_refused_and_never_breaks_the_tracker(document):
    try:
        message = parse_message(json.dumps(document))
    except MalformedAlert:
        return
    assert message.kind in alerts.KINDS + ("other",)
    AlertTracker().feed(message)


# -- what a message wakes ---------------------------------------------------------------


def test_a_new_session_wakes_once_and_its_ten_second_reports_wake_nothing():
    tracker = AlertTracker()
    first = tracker.feed(playing())
    assert first.started == (203,) and first.sessions and not first.stopped
    for _ in range(5):
        assert not tracker.feed(playing()).sessions
    assert not tracker.feed(playing(state="paused")).sessions
    assert tracker.live_sessions == 1


def test_a_session_seen_buffering_first_starts_once():
    tracker = AlertTracker()
    assert tracker.feed(playing(state="buffering")).started == (203,)
    assert not tracker.feed(playing(state="playing")).sessions


def test_the_next_episode_in_the_same_session_is_a_new_start():
    tracker = AlertTracker()
    tracker.feed(playing(rating_key="203"))
    assert tracker.feed(playing(rating_key="204")).started == (204,)


def test_a_stop_wakes_a_round_and_ends_the_session_even_if_never_seen_playing():
    tracker = AlertTracker()
    tracker.feed(playing())
    wake = tracker.feed(playing(state="stopped"))
    assert wake.stopped and wake.sessions and not wake.started
    assert tracker.live_sessions == 0
    assert tracker.feed(playing(session_key="99", state="stopped")).stopped


def test_a_start_without_an_item_still_wakes_a_round():
    tracker = AlertTracker()
    message = parse_message(container("playing", "PlaySessionStateNotification", [
        {"sessionKey": "5", "state": "playing"}]))
    wake = tracker.feed(message)
    assert wake.sessions and wake.unknown_start and wake.started == ()


def test_unknown_states_wake_nothing():
    assert not AlertTracker().feed(playing(state="transcoding")).sessions


def test_a_new_item_wakes_the_added_round_once_when_it_finishes_processing():
    tracker = AlertTracker()
    assert not tracker.feed(timeline(state=0, metadata_state="created")).added
    assert not tracker.feed(timeline(state=3)).added
    assert tracker.feed(timeline(state=5)).added
    assert not tracker.feed(timeline(state=5)).added  # an update later is not new


def test_servers_that_report_created_at_state_5_wake_the_added_round_at_once():
    assert AlertTracker().feed(timeline(state=5, metadata_state="created")).added


@pytest.mark.parametrize("message", [
    timeline(state=5),  # an update of an existing item
    timeline(state=5, metadata_state="created", item_type=2),  # a show holds no file
    timeline(state=5, metadata_state="created", identifier="tv.plex.providers.epg.cloud"),
])
def test_updates_shows_and_other_providers_wake_nothing(message):
    assert not AlertTracker().feed(message).added


def test_an_item_deleted_before_it_settled_wakes_nothing():
    tracker = AlertTracker()
    tracker.feed(timeline(state=0, metadata_state="created"))
    tracker.feed(timeline(state=9, metadata_state="deleted"))
    assert not tracker.feed(timeline(state=5)).added


def test_reset_forgets_sessions_and_items_a_restarted_server_will_reuse():
    tracker = AlertTracker()
    tracker.feed(playing())
    tracker.feed(timeline(state=0, metadata_state="created"))
    tracker.reset()
    assert tracker.live_sessions == 0
    assert tracker.feed(playing()).started == (203,)
    assert not tracker.feed(timeline(state=5)).added


def test_a_stream_inventing_sessions_cannot_grow_memory(monkeypatch):
    monkeypatch.setattr(alerts, "MAX_TRACKED", 50)
    tracker = AlertTracker()
    for number in range(500):
        tracker.feed(playing(session_key=str(number)))
        tracker.feed(timeline(item_id=str(number), metadata_state="created"))
    assert tracker.live_sessions == 50
    assert len(tracker._created) == 50
