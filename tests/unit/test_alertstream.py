"""The alert stream's connection logic on a fake clock: capped backoff with jitter, ping and
pong, a silent stream while sessions exist, and reconnecting after each kind of loss."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field

import pytest
import websocket

from cacherr.sources.alerts import Message
from cacherr.sources.alertstream import (
    PING_AFTER_SECONDS,
    PONG_WITHIN_SECONDS,
    STALE_AFTER_SECONDS,
    AlertStream,
    Backoff,
    Liveness,
    stream_url,
)

TEXT, CLOSE, PONG = (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_CLOSE,
                     websocket.ABNF.OPCODE_PONG)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def message(rating_key: int = 203, state: str = "playing") -> bytes:
    return json.dumps({"NotificationContainer": {"type": "playing", "size": 1,
                       "PlaySessionStateNotification": [{
                           "sessionKey": "1", "ratingKey": str(rating_key), "state": state,
                           "viewOffset": 0}]}}).encode()


@dataclass
class FakeConnection:
    """A websocket that plays a script: ("text", bytes), ("pong",), ("close",), ("lost",),
    ("wait", seconds); once the script is over every read times out after one tick (and
    after `max_reads` the connection is lost, so a regression fails instead of hanging).
    With `answers_pings`, a ping is answered by a pong on the next read."""

    clock: FakeClock
    script: list = field(default_factory=list)
    answers_pings: bool = True
    tick: float = 1.0
    pings: list = field(default_factory=list)
    shut: bool = False
    max_reads: int = 2000
    _pong_due: bool = False

    def settimeout(self, seconds: float) -> None:
        self.tick = seconds

    def ping(self, payload: bytes = b"") -> None:
        self.pings.append(self.clock.now)
        self._pong_due = self.answers_pings

    def recv_data(self, control_frame: bool = False):
        self.max_reads -= 1
        if self.max_reads < 0:
            raise websocket.WebSocketConnectionClosedException("the fake's script is exhausted")
        if self._pong_due:
            self._pong_due = False
            return PONG, b""
        step = self.script.pop(0) if self.script else ("wait", self.tick)
        if step[0] == "text":
            return TEXT, step[1]
        if step[0] == "pong":
            return PONG, b""
        if step[0] == "close":
            return CLOSE, b""
        if step[0] == "lost":
            raise websocket.WebSocketConnectionClosedException("Connection to remote host was lost.")
        self.clock.advance(step[1])
        raise websocket.WebSocketTimeoutException("timed out")

    def abort(self) -> None:
        self.shut = True

    def shutdown(self) -> None:
        self.shut = True


class Harness:
    """An AlertStream run on the test's thread: `outcomes` are what each connect attempt
    gives (a FakeConnection or an exception); when they run out the stream is stopped."""

    def __init__(self, outcomes: list, *, sessions: bool = False, seed: int = 1) -> None:
        self.clock = FakeClock()
        self.outcomes = outcomes
        self.messages: list[Message] = []
        self.health: list[tuple[float, bool]] = []
        self.sleeps: list[float] = []
        self.connects: list[float] = []
        self.stream = AlertStream(
            "ws://127.0.0.1:9/:/websockets/notifications", "TOKEN",
            on_message=self.messages.append,
            on_health=lambda healthy: self.health.append((self.clock.now, healthy)),
            sessions_exist=lambda: sessions, clock=self.clock, rng=random.Random(seed),
            open_connection=self.open, sleep=self.sleep)

    def open(self, url: str, token: str, timeout: float):
        assert token == "TOKEN" and url.endswith("/:/websockets/notifications")
        self.connects.append(self.clock.now)
        if not self.outcomes:
            self.stream._stopping.set()
            raise OSError("no more outcomes")
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)

    def run(self) -> Harness:
        self.stream._run()
        return self


# -- pure parts ---------------------------------------------------------------------


def test_the_stream_url_follows_the_server_url():
    assert stream_url("http://10.0.0.2:32400") == "ws://10.0.0.2:32400/:/websockets/notifications"
    assert stream_url("https://a.plex.direct:32400/") == (
        "wss://a.plex.direct:32400/:/websockets/notifications")
    with pytest.raises(ValueError):
        stream_url("ftp://nas")


def test_backoff_doubles_to_its_cap_with_jitter_between_half_and_all():
    seed = random.randrange(1 << 30)
    print("seed", seed)
    backoff = Backoff(initial_seconds=1.0, cap_seconds=60.0, rng=random.Random(seed))
    ceilings = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    delays = [backoff.next_delay() for _ in ceilings]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len({round(d, 6) for d in delays[-4:]}) > 1, "capped delays still differ (jitter)"
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_backoff_never_overflows_after_very_many_attempts():
    backoff = Backoff(rng=random.Random(3))
    backoff.attempts = 10_000
    assert 30.0 <= backoff.next_delay() <= 60.0


def test_liveness_pings_after_quiet_then_calls_the_connection_dead_without_an_answer():
    clock = FakeClock()
    liveness = Liveness()
    liveness.opened(clock())
    clock.advance(PING_AFTER_SECONDS - 0.1)
    assert not liveness.should_ping(clock())
    clock.advance(0.1)
    assert liveness.should_ping(clock())
    liveness.pinged(clock())
    assert not liveness.should_ping(clock()), "one ping at a time"
    clock.advance(PONG_WITHIN_SECONDS - 0.1)
    assert not liveness.dead(clock())
    clock.advance(0.1)
    assert liveness.dead(clock())
    liveness.frame(clock(), message=False)  # a late pong revives it
    assert not liveness.dead(clock())


def test_a_silent_stream_is_stale_only_while_sessions_exist_and_pongs_do_not_count():
    clock = FakeClock()
    liveness = Liveness()
    liveness.opened(clock())
    clock.advance(STALE_AFTER_SECONDS - 1)
    liveness.frame(clock(), message=False)
    clock.advance(1)
    assert liveness.stale(clock(), sessions_exist=True)
    assert not liveness.stale(clock(), sessions_exist=False)
    liveness.frame(clock(), message=True)
    assert not liveness.stale(clock(), sessions_exist=True)


# -- the loop on a fake clock -------------------------------------------------------


def test_refused_connections_back_off_exponentially_to_the_cap():
    harness = Harness([OSError("refused")] * 9).run()
    ceilings = [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert len(harness.sleeps) == 10
    for delay, ceiling in zip(harness.sleeps, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert harness.health == [] and not harness.stream.healthy()


def test_messages_are_delivered_and_health_follows_the_connection():
    clock_holder = Harness([])
    connection = FakeConnection(clock_holder.clock, [("text", message(203)), ("text", message(204)),
                                                     ("close",)])
    harness = clock_holder
    harness.outcomes = [connection]
    harness.run()
    assert [m.playbacks[0].rating_key for m in harness.messages] == [203, 204]
    assert [healthy for _, healthy in harness.health] == [True, False]
    assert connection.shut and harness.stream.connections == 1


def test_a_connection_that_delivered_resets_the_backoff_and_one_that_did_not_does_not():
    harness = Harness([])
    clock = harness.clock
    harness.outcomes = [OSError("down"), OSError("down"), OSError("down"),
                        FakeConnection(clock, [("text", message()), ("lost",)]),
                        FakeConnection(clock, [("close",)]),
                        FakeConnection(clock, [("close",)])]
    harness.run()
    # three failures (1, 2, 4), a delivering connection lost (reset: 1), two empty ones (2, 4),
    # then the end of the outcomes (8)
    ceilings = [1, 2, 4, 1, 2, 4, 8]
    assert len(harness.sleeps) == len(ceilings)
    for delay, ceiling in zip(harness.sleeps, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling


def test_a_quiet_connection_that_answers_pings_stays_up_while_nobody_plays():
    harness = Harness([])
    connection = FakeConnection(harness.clock, [("wait", 1.0)] * 200 + [("close",)])
    harness.outcomes = [connection]
    harness.run()
    assert len(connection.pings) >= 200 // int(PING_AFTER_SECONDS + 1)
    assert [healthy for _, healthy in harness.health] == [True, False], "never dropped"


def test_a_connection_that_stops_answering_pings_is_dropped_and_reconnected():
    harness = Harness([])
    dead = FakeConnection(harness.clock, answers_pings=False)
    harness.outcomes = [dead, FakeConnection(harness.clock, [("text", message()), ("close",)])]
    opened = harness.clock.now
    harness.run()
    down_at = harness.health[1][0]
    assert [healthy for _, healthy in harness.health] == [True, False, True, False]
    assert down_at - opened <= PING_AFTER_SECONDS + PONG_WITHIN_SECONDS + 2
    assert len(harness.messages) == 1, "the new connection delivers"


def test_a_stream_silent_while_sessions_exist_is_stale_and_reconnected():
    harness = Harness([], sessions=True)
    harness.outcomes = [FakeConnection(harness.clock), FakeConnection(harness.clock, [("close",)])]
    opened = harness.clock.now
    harness.run()
    assert harness.stream.connections == 2
    down_at = harness.health[1][0]
    assert STALE_AFTER_SECONDS <= down_at - opened <= STALE_AFTER_SECONDS + 2


def test_regular_messages_keep_a_stream_with_sessions_healthy():
    harness = Harness([], sessions=True)
    script = [step for _ in range(30) for step in (("wait", 10.0), ("text", message()))]
    harness.outcomes = [FakeConnection(harness.clock, script + [("close",)])]
    harness.run()
    assert [healthy for _, healthy in harness.health] == [True, False]
    assert len(harness.messages) == 30


def test_a_broken_consumer_or_a_malformed_message_does_not_end_the_stream():
    harness = Harness([])
    calls = []

    def explode(received: Message) -> None:
        calls.append(received)
        raise RuntimeError("consumer bug")

    harness.stream.on_message = explode
    harness.outcomes = [FakeConnection(harness.clock, [("text", b"not json"), ("text", message()),
                                                       ("close",)])]
    harness.run()
    assert [m.kind for m in calls] == ["other", "playing"]
    assert harness.stream.connections == 1


def test_a_bad_token_is_reported_once_per_outage_and_retried(caplog):
    refused = websocket.WebSocketBadStatusException("Handshake status %d %s", 401, "Unauthorized")
    harness = Harness([refused, refused, refused]).run()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "HTTP 401" in warnings[0] and "plex.token" in warnings[0]
    assert "TOKEN" not in caplog.text
    assert len(harness.connects) == 4


class BlockingConnection:
    """A connection whose read blocks (like a quiet socket) until it is aborted."""

    def __init__(self) -> None:
        self.aborted = threading.Event()
        self.reading = threading.Event()
        self.shut = False

    def settimeout(self, seconds: float) -> None:
        pass

    def recv_data(self, control_frame: bool = False):
        self.reading.set()
        if self.aborted.wait(10):
            raise websocket.WebSocketConnectionClosedException("aborted")
        raise websocket.WebSocketTimeoutException("timed out")

    def abort(self) -> None:
        self.aborted.set()

    def shutdown(self) -> None:
        self.shut = True


def test_stop_wakes_a_blocked_read_at_once_and_ends_the_thread():
    connection = BlockingConnection()
    health: list[bool] = []
    stream = AlertStream("ws://127.0.0.1:9/:/websockets/notifications", "TOKEN",
                         on_message=lambda m: None, on_health=health.append,
                         open_connection=lambda *a: connection, tick_seconds=30)
    stream.start()
    assert connection.reading.wait(5)
    started = time.monotonic()
    stream.stop(timeout_seconds=5)
    assert time.monotonic() - started < 2
    assert not stream._thread.is_alive() and connection.shut
    assert health == [True, False] and not stream.healthy()
