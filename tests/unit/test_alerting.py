"""The alert stream wired to the service: which job each message wakes, the metrics it
counts, and the clock from a playback's first sign to its file on the fast branch."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from cacherr.cycle import alerting
from cacherr.cycle.alerting import Alerting, PlaybackClock
from cacherr.metrics import Metrics
from cacherr.sources.alerts import parse_message


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class FakeStream:
    """Stands in for AlertStream: records how it was built; health is set by the test."""

    def __init__(self, url, token, *, on_message, on_health, on_connect, sessions_exist):
        self.url, self.token = url, token
        self.on_message, self.on_health = on_message, on_health
        self.on_connect, self.sessions_exist = on_connect, sessions_exist
        self.is_healthy = False
        self.started = self.stopped = False

    def start(self):
        self.started = True
        return self

    def stop(self):
        self.stopped = True

    def healthy(self) -> bool:
        return self.is_healthy


def notification(kind: str, name: str, entry: dict):
    return parse_message(json.dumps({"NotificationContainer": {"type": kind, "size": 1,
                                                               name: [entry]}}))


def play(rating_key: int, state: str = "playing", session_key: str = "1"):
    return notification("playing", "PlaySessionStateNotification", {
        "sessionKey": session_key, "ratingKey": str(rating_key), "state": state})


def wired(polled_sessions: int = 0):
    clock, metrics = FakeClock(), Metrics()
    woken: list[tuple[str, bool | None]] = []
    config = SimpleNamespace(plex=SimpleNamespace(url="http://127.0.0.1:32400", token="T"))
    wiring = Alerting(config, metrics, PlaybackClock(clock),
                      wake_sessions=lambda stopped: woken.append(("sessions", stopped)),
                      wake_added=lambda: woken.append(("added", None)),
                      polled_sessions=lambda: polled_sessions, stream_factory=FakeStream)
    return wiring, woken, metrics, clock


def counted(metrics: Metrics, kind: str) -> float:
    return metrics["cacherr_alerts_received_total"].labels(kind)._value.get()


def test_the_stream_is_built_for_the_server_with_the_owner_token_and_reports_health():
    wiring, _, metrics, _ = wired()
    assert wiring.stream.url == "ws://127.0.0.1:32400/:/websockets/notifications"
    assert wiring.stream.token == "T"
    wiring.start()
    assert wiring.stream.started
    wiring.stream.on_health(True)
    assert metrics["cacherr_alerts_connected"]._value.get() == 1
    wiring.stop()
    assert wiring.stream.stopped and metrics["cacherr_alerts_connected"]._value.get() == 0


def test_a_new_playback_wakes_one_session_round_and_its_repeats_none():
    wiring, woken, metrics, _ = wired()
    for _ in range(4):
        wiring.on_message(play(203))
    assert woken == [("sessions", False)]
    assert counted(metrics, "playing") == 4


def test_a_stop_wakes_the_session_round_with_planning_for_complete_rules():
    wiring, woken, _, _ = wired()
    wiring.on_message(play(203))
    wiring.on_message(play(203, state="stopped"))
    assert woken == [("sessions", False), ("sessions", True)]


def test_a_new_item_wakes_the_added_round_and_other_messages_only_count():
    wiring, woken, metrics, _ = wired()
    entry = {"identifier": "com.plexapp.plugins.library", "itemID": "7", "type": 1,
             "state": 5, "metadataState": "created", "sectionID": "1"}
    wiring.on_message(notification("timeline", "TimelineEntry", entry))
    wiring.on_message(notification("status", "StatusNotification", {"title": "x"}))
    wiring.on_message(notification("activity", "ActivityNotification", {"event": "ended"}))
    assert woken == [("added", None)]
    assert (counted(metrics, "timeline"), counted(metrics, "other"),
            counted(metrics, "activity")) == (1, 1, 1)


def test_sessions_exist_when_the_stream_or_the_last_poll_saw_one():
    wiring, _, _, _ = wired()
    assert not wiring.sessions_exist()
    wiring.on_message(play(203))
    assert wiring.sessions_exist()
    polled, _, _, _ = wired(polled_sessions=2)
    assert polled.sessions_exist()


def test_a_reconnect_forgets_sessions_so_a_playing_report_starts_again():
    wiring, woken, _, _ = wired()
    wiring.on_message(play(203))
    wiring.stream.on_connect()
    wiring.on_message(play(203))
    assert woken == [("sessions", False), ("sessions", False)]


def test_the_clock_runs_from_the_alert_not_from_the_poll_that_confirmed_it():
    clock = FakeClock()
    playbacks = PlaybackClock(clock)
    playbacks.signed(203)
    clock.now += 0.3
    playbacks.signed(203)  # a repeat keeps the earliest sign
    clock.now += 0.2
    playbacks.started(203, ["TV/a.mkv", "TV/b.mkv"])
    clock.now += 0.5
    assert playbacks.cached("TV/a.mkv") == 1.0
    assert playbacks.cached("TV/a.mkv") is None, "observed once"
    assert playbacks.cached("TV/other.mkv") is None


def test_without_an_alert_the_clock_starts_at_the_poll_and_a_cached_file_waits_for_nothing():
    clock = FakeClock()
    playbacks = PlaybackClock(clock)
    playbacks.started(101, ["Movies/m.mkv"])
    clock.now += 2.0
    assert playbacks.cached("Movies/m.mkv") == 2.0
    playbacks.started(102, [])
    assert playbacks.cached("Movies/n.mkv") is None


def test_old_signs_and_old_waits_are_forgotten():
    clock = FakeClock()
    playbacks = PlaybackClock(clock)
    playbacks.signed(1)  # never confirmed by a poll
    playbacks.started(2, ["old.mkv"])
    clock.now += alerting.WAIT_FOR_CACHE_SECONDS + 1
    playbacks.started(3, ["new.mkv"])
    assert playbacks._first_signs == {}
    assert playbacks.cached("old.mkv") is None
    assert playbacks.cached("new.mkv") == 0.0


def test_signs_a_poll_does_not_confirm_are_rechecked_for_a_while_then_given_up():
    clock = FakeClock()
    playbacks = PlaybackClock(clock)
    playbacks.signed(203)
    playbacks.signed(204)
    assert playbacks.confirm({204, 999}) == [203]
    clock.now += alerting.RECHECK_WITHIN_SECONDS + 0.1
    assert playbacks.confirm(set()) == [], "not listed for too long: polling's business"
    playbacks.started(203, ["a.mkv"])
    clock.now += 1
    assert playbacks.cached("a.mkv") == pytest.approx(alerting.RECHECK_WITHIN_SECONDS + 1.1)
