"""The alert stream client (websocket-client) against the fake Plex's real websocket:
what a session or a new item pushes, and every way the stream can fail: killed, refused,
stalled, silent, deaf to pings, fed garbage, or asked with the wrong token."""

from __future__ import annotations

import threading
import time

import pytest

from cacherr.sources.alerts import AlertTracker, Message
from cacherr.sources.alertstream import AlertStream, Backoff, Liveness, stream_url
from cacherr.testing.fakealerts import PATH
from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.scenarios import Movie, Version
from cacherr.testing.world import small_world
from tests.helpers import wait_for


class Listener:
    """An AlertStream on the fake with quick backoff, recording messages and health."""

    def __init__(self, fake: FakePlex, token: str | None = None, *, sessions: bool = False,
                 liveness: Liveness | None = None, connect_timeout_seconds: float = 5.0):
        self.messages: list[Message] = []
        self.health: list[bool] = []
        self.lock = threading.Lock()
        self.stream = AlertStream(
            stream_url(fake.pms_url), token or fake.owner_token, on_message=self._message,
            on_health=self.health.append, sessions_exist=lambda: sessions,
            liveness=liveness, connect_timeout_seconds=connect_timeout_seconds,
            tick_seconds=0.1)
        self.stream.backoff = Backoff(initial_seconds=0.05, cap_seconds=0.2)

    def _message(self, message: Message) -> None:
        with self.lock:
            self.messages.append(message)

    def kinds(self) -> list[str]:
        with self.lock:
            return [m.kind for m in self.messages]

    def playbacks(self):
        with self.lock:
            return [p for m in self.messages for p in m.playbacks]

    def __enter__(self) -> Listener:
        self.stream.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stream.stop()


@pytest.fixture
def fake():
    with FakePlex(small_world()) as running:
        yield running


def test_sessions_starting_and_stopping_arrive_as_plex_sends_them(fake):
    with Listener(fake) as listener:
        wait_for(listener.stream.healthy, what="the stream connected")
        fake.start_session("owner", 103)
        fake.stop_session("owner")
        wait_for(lambda: len(listener.playbacks()) == 2, timeout_seconds=10, what="two messages")
        first, last = listener.playbacks()
        assert (first.rating_key, first.state, first.view_offset_ms) == (103, "playing", 60_000)
        assert (last.rating_key, last.state) == (103, "stopped")
        assert first.session_key == last.session_key


def test_a_session_is_reported_again_every_few_seconds_like_a_real_player(fake):
    fake.alerts.repeat_seconds = 0.1
    with Listener(fake) as listener:
        wait_for(listener.stream.healthy, what="the stream connected")
        fake.start_session("owner", 103)
        wait_for(lambda: len(listener.playbacks()) >= 4, timeout_seconds=10, what="repeats")
        tracker = AlertTracker()
        with listener.lock:
            wakes = [tracker.feed(m) for m in listener.messages]
        assert sum(w.sessions for w in wakes) == 1, "repeats wake nothing"


def test_a_new_movie_is_announced_by_the_timeline_and_wakes_the_added_round(fake):
    with Listener(fake) as listener:
        wait_for(listener.stream.healthy, what="the stream connected")
        fake.add_movie(Movie(150, "New Movie", 2024, [Version([("/data/media/Movies/New.mkv", 1)])]))
        wait_for(lambda: listener.kinds().count("activity") == 2, timeout_seconds=10,
                 what="the scan's start and end")
        assert listener.kinds() == ["activity", "timeline", "timeline", "activity"]
        tracker = AlertTracker()
        with listener.lock:
            assert [tracker.feed(m).added for m in listener.messages] == [False, False, True, False]


def test_the_wrong_token_is_refused_and_the_stream_never_counts_as_up(fake, caplog):
    with Listener(fake, token="NOT-A-TOKEN") as listener:
        wait_for(lambda: fake.count("pms", PATH) >= 3, timeout_seconds=10, what="retries")
        assert not listener.stream.healthy() and listener.health == []
    assert "HTTP 401: check plex.token" in caplog.text
    assert "NOT-A-TOKEN" not in caplog.text


def test_a_killed_stream_is_seen_down_at_once_and_reconnects(fake):
    with Listener(fake) as listener:
        wait_for(listener.stream.healthy, what="the stream connected")
        assert fake.alerts.kill() == 1
        wait_for(lambda: False in listener.health, timeout_seconds=5, what="the stream seen down")
        wait_for(lambda: listener.stream.connections == 2 and listener.stream.healthy(),
                 timeout_seconds=10, what="a reconnect")
        fake.start_session("owner", 101)
        wait_for(lambda: [p.rating_key for p in listener.playbacks()] == [101],
                 timeout_seconds=10, what="a message on the new connection")


def test_a_refused_stream_is_retried_with_backoff_until_plex_accepts_again(fake):
    fake.fail("pms", PATH, status=503)
    with Listener(fake) as listener:
        wait_for(lambda: fake.count("pms", PATH) >= 4, timeout_seconds=10, what="retries")
        assert not listener.stream.healthy()
        fake.clear_faults()
        wait_for(listener.stream.healthy, timeout_seconds=10, what="connected after the outage")


def test_a_stalled_upgrade_times_out_and_stop_is_still_prompt(fake):
    fake.hang("pms", PATH, seconds=30)
    with Listener(fake, connect_timeout_seconds=0.3) as listener:
        wait_for(lambda: fake.count("pms", PATH) >= 2, timeout_seconds=10,
                 what="a second attempt after the first timed out")
        assert not listener.stream.healthy()
        started = time.monotonic()
    assert time.monotonic() - started < 3
    fake.release_hangs()


def test_a_stream_silent_while_sessions_exist_is_dropped_and_reconnected(fake):
    fake.alerts.muted = True
    quick = Liveness(stale_after_seconds=0.5)
    with Listener(fake, sessions=True, liveness=quick) as listener:
        wait_for(lambda: listener.stream.connections >= 2, timeout_seconds=10,
                 what="a reconnect of the silent stream")
        assert False in listener.health


def test_a_stream_that_answers_no_ping_is_dropped_and_reconnected(fake):
    fake.alerts.answer_pings = False
    quick = Liveness(ping_after_seconds=0.2, pong_within_seconds=0.3)
    with Listener(fake, liveness=quick) as listener:
        wait_for(lambda: listener.stream.connections >= 2, timeout_seconds=10,
                 what="a reconnect of the deaf stream")
        fake.alerts.answer_pings = True


def test_a_stream_that_answers_pings_stays_connected_while_idle(fake):
    quick = Liveness(ping_after_seconds=0.1, pong_within_seconds=2.0)
    with Listener(fake, liveness=quick) as listener:
        wait_for(listener.stream.healthy, what="the stream connected")
        time.sleep(1.0)  # ten ping rounds; nothing to observe but that nothing changed
        assert listener.stream.connections == 1 and listener.health == [True]


@pytest.mark.parametrize("garbage", [
    "not json", "{}", '{"NotificationContainer": "x"}', "[" * 50_000,
    '{"NotificationContainer": {"type": "playing", "PlaySessionStateNotification": [{"sessionKey": {}}]}}',
    "\u0000" * 100])
def test_garbage_on_the_stream_counts_as_other_and_the_next_message_still_arrives(fake, garbage):
    with Listener(fake) as listener:
        wait_for(listener.stream.healthy, what="the stream connected")
        fake.alerts.send_raw(garbage)
        fake.start_session("owner", 102)
        wait_for(lambda: listener.playbacks(), timeout_seconds=10, what="the good message")
        assert len(listener.kinds()) == 2, "the garbage was received, and ignored"
        assert [p.rating_key for p in listener.playbacks()] == [102]
        assert listener.stream.connections == 1
