"""The connection to Plex's alert stream: connect, read, notice a dead or silent stream,
reconnect with capped exponential backoff and jitter.

Why websocket-client directly, not plexapi's `AlertListener` (which wraps the same
library): the listener has no connect timeout, no ping, no "connected"/"closed" callbacks
(a closed stream is only visible as its thread ending), cannot be restarted, puts the
token in the URL and logs that URL. Here the token travels in the `X-Plex-Token` header,
each state change is reported, and a stream is judged by what it delivers.

A stream is *healthy* while it is connected, answers pings, and — while sessions exist —
delivers messages (Plex reports each playing session about every 10 seconds). Nothing
about correctness depends on it: the service polls sessions whenever it is not healthy.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests.certs
import websocket

from cacherr.sources.alerts import MalformedAlert, Message, parse_message

log = logging.getLogger(__name__)

PATH = "/:/websockets/notifications"
CONNECT_TIMEOUT_SECONDS = 10.0
TICK_SECONDS = 1.0  # how often a quiet connection checks its liveness and the stop flag
PING_AFTER_SECONDS = 15.0  # ping when nothing arrived for this long
PONG_WITHIN_SECONDS = 8.0  # no frame this long after a ping: the connection is dead
STALE_AFTER_SECONDS = 60.0  # no message this long while sessions exist: the stream is stale
STABLE_AFTER_SECONDS = 60.0  # a connection that lived this long resets the backoff
BACKOFF_INITIAL_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0


def stream_url(plex_url: str) -> str:
    """Given the Plex server URL (http:// or https://), return its alert stream's URL;
    raise ValueError for any other scheme."""
    for scheme, replacement in (("http://", "ws://"), ("https://", "wss://")):
        if plex_url.startswith(scheme):
            return replacement + plex_url[len(scheme):].rstrip("/") + PATH
    raise ValueError(f"not an http(s) URL: {plex_url!r}")


@dataclass
class Backoff:
    """Capped exponential backoff with "equal jitter": each delay is between half and all of
    min(cap, initial * 2**attempt), so many clients never reconnect in step and no delay
    collapses to zero."""

    initial_seconds: float = BACKOFF_INITIAL_SECONDS
    cap_seconds: float = BACKOFF_CAP_SECONDS
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next_delay(self) -> float:
        """Return the delay before the next attempt, and count the attempt."""
        ceiling = min(self.cap_seconds, self.initial_seconds * 2 ** min(self.attempts, 32))
        self.attempts += 1
        return ceiling * (0.5 + 0.5 * self.rng.random())

    def reset(self) -> None:
        self.attempts = 0


class Liveness:
    """When a connection should ping, is dead, or is stale, from the times frames arrived.

    Times are the caller's clock readings (seconds); nothing here reads a clock.
    """

    def __init__(self, *, ping_after_seconds: float = PING_AFTER_SECONDS,
                 pong_within_seconds: float = PONG_WITHIN_SECONDS,
                 stale_after_seconds: float = STALE_AFTER_SECONDS) -> None:
        self.ping_after_seconds = ping_after_seconds
        self.pong_within_seconds = pong_within_seconds
        self.stale_after_seconds = stale_after_seconds
        self.opened(0.0)

    def opened(self, now: float) -> None:
        """A new connection: it counts as having just delivered."""
        self.opened_at = self.last_frame_at = self.last_message_at = now
        self.ping_sent_at: float | None = None
        self.messages = 0

    def frame(self, now: float, *, message: bool) -> None:
        """Any frame (a pong too) proves the connection alive; a message also proves the
        stream is delivering."""
        self.last_frame_at = now
        self.ping_sent_at = None
        if message:
            self.last_message_at = now
            self.messages += 1

    def pinged(self, now: float) -> None:
        self.ping_sent_at = now

    def should_ping(self, now: float) -> bool:
        return self.ping_sent_at is None and now - self.last_frame_at >= self.ping_after_seconds

    def dead(self, now: float) -> bool:
        return self.ping_sent_at is not None and now - self.ping_sent_at >= self.pong_within_seconds

    def stale(self, now: float, sessions_exist: bool) -> bool:
        return sessions_exist and now - self.last_message_at >= self.stale_after_seconds

    def proved_stable(self, now: float) -> bool:
        """Whether this connection earns a fresh backoff: it delivered, or lived long."""
        return self.messages > 0 or now - self.opened_at >= STABLE_AFTER_SECONDS


def connect(url: str, token: str, timeout_seconds: float) -> websocket.WebSocket:
    """Open the alert stream (the token in a header, never in the URL); raise
    websocket.WebSocketException or OSError."""
    sslopt = {"ca_certs": requests.certs.where()} if url.startswith("wss://") else None
    return websocket.create_connection(
        url, timeout=timeout_seconds, sslopt=sslopt, enable_multithread=True,
        header=[f"X-Plex-Token: {token}", "X-Plex-Product: cacherr",
                "X-Plex-Client-Identifier: cacherr"])


class AlertStream:
    """A thread that keeps Plex's alert stream open and hands each message to `on_message`.

    `on_health(bool)` is called on every change of `healthy()`; `sessions_exist()` says
    whether anyone is playing (a silent stream is only stale then). `clock`, `rng` and
    `open_connection` are injectable for tests. Callbacks run on the stream's thread and
    must be quick.
    """

    def __init__(self, url: str, token: str, *, on_message: Callable[[Message], None],
                 on_health: Callable[[bool], None] = lambda healthy: None,
                 on_connect: Callable[[], None] = lambda: None,
                 sessions_exist: Callable[[], bool] = lambda: False,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None,
                 open_connection: Callable[[str, str, float], websocket.WebSocket] = connect,
                 liveness: Liveness | None = None,
                 sleep: Callable[[float], object] | None = None,
                 connect_timeout_seconds: float = CONNECT_TIMEOUT_SECONDS,
                 tick_seconds: float = TICK_SECONDS) -> None:
        self.url, self._token = url, token
        self.on_message, self.on_health, self.on_connect = on_message, on_health, on_connect
        self.sessions_exist = sessions_exist
        self.clock = clock
        self.backoff = Backoff(rng=rng or random.Random())
        self.liveness = liveness or Liveness()
        self.open_connection = open_connection
        self.connect_timeout_seconds = connect_timeout_seconds
        self.tick_seconds = tick_seconds
        self.connections = 0  # successful connects, for tests and logs
        self._stopping = threading.Event()
        self._sleep = sleep or self._stopping.wait  # a stop ends the wait at once
        self._announced = False
        self._lock = threading.Lock()
        self._socket: websocket.WebSocket | None = None
        self._healthy = False
        self._thread = threading.Thread(target=self._run, name="cacherr-alerts", daemon=True)

    def start(self) -> AlertStream:
        self._thread.start()
        return self

    def stop(self, timeout_seconds: float = 2.0) -> None:
        """Close the stream and wait (at most `timeout_seconds`) for its thread."""
        self._stopping.set()
        with self._lock:
            if self._socket is not None:
                self._socket.abort()  # wakes a blocked read at once
        if self._thread.is_alive():
            self._thread.join(timeout_seconds)

    def healthy(self) -> bool:
        """Connected, answering, and not silent while sessions exist."""
        return self._healthy

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        failure_logged = False
        while not self._stopping.is_set():
            try:
                connection = self.open_connection(self.url, self._token,
                                                  self.connect_timeout_seconds)
            except (websocket.WebSocketException, OSError) as error:
                # One warning per outage; a stream that stays down is the alert's business.
                (log.debug if failure_logged else log.warning)(
                    "Plex alert stream unavailable (%s); polling sessions instead",
                    _describe(error))
                failure_logged = True
                self._sleep(self.backoff.next_delay())
                continue
            failure_logged = False
            self.connections += 1
            with self._lock:
                self._socket = connection
            if self._stopping.is_set():
                connection.abort()
            reason = self._read(connection)
            with self._lock:
                self._socket = None
            connection.shutdown()
            self._set_health(False)
            if self._stopping.is_set():
                return
            if self.liveness.proved_stable(self.clock()):
                self.backoff.reset()
                log.warning("Plex alert stream lost (%s); polling sessions until it is back",
                            reason)
                self._announced = False
                failure_logged = True  # the outage is told: its failed attempts are not
            else:
                log.debug("Plex alert stream closed again (%s)", reason)
            self._sleep(self.backoff.next_delay())

    def _read(self, connection: websocket.WebSocket) -> str:
        """Read messages until the connection ends; return why it ended."""
        connection.settimeout(self.tick_seconds)
        self.liveness.opened(self.clock())
        if not self._announced:
            log.info("Plex alert stream connected")
            self._announced = True
        self.on_connect()
        while not self._stopping.is_set():
            now = self.clock()
            sessions = self.sessions_exist()
            if self.liveness.dead(now):
                return "no answer to a ping"
            if self.liveness.stale(now, sessions):
                return f"silent for {self.liveness.stale_after_seconds:g}s while sessions exist"
            self._set_health(True)
            try:
                if self.liveness.should_ping(now):
                    connection.ping()
                    self.liveness.pinged(now)
                opcode, data = connection.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketException, OSError) as error:
                return _describe(error)
            text = opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY)
            self.liveness.frame(self.clock(), message=text)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return "closed by the server"
            if text:
                self._deliver(data)
        return "stopping"

    def _deliver(self, data: bytes | str) -> None:
        try:
            message = parse_message(data)
        except MalformedAlert as error:
            log.debug("ignored a message on the alert stream: %s", error)
            message = Message("other")
        try:
            self.on_message(message)
        except Exception:  # noqa: BLE001 - a consumer's bug must not end the stream
            log.exception("handling an alert failed")

    def _set_health(self, healthy: bool) -> None:
        if healthy != self._healthy:
            self._healthy = healthy
            self.on_health(healthy)


def _describe(error: BaseException) -> str:
    status = getattr(error, "status_code", None)
    if status is not None:
        return f"HTTP {status}" + (": check plex.token" if status in (401, 403) else "")
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
