"""The fake Plex's alert stream: `/:/websockets/notifications`, a small RFC 6455 server
(standard library only: the fake also runs inside `cacherr demo`).

The fake pushes what a real server pushes when its state changes (the shapes below; ids
as strings and offsets as numbers, as real servers send them):

* a session starts, changes state, or is reported again (real players report their
  timeline about every 10 seconds; `repeat_seconds` here), and when it stops:

      {"NotificationContainer": {"type": "playing", "size": 1,
        "PlaySessionStateNotification": [{"sessionKey": "1", "clientIdentifier": "player-0001",
          "guid": "", "ratingKey": "203", "url": "", "key": "/library/metadata/203",
          "viewOffset": 60000, "playQueueItemID": 1, "state": "playing"}]}}

* an item is added: a library scan starts (`activity`), the item is created (timeline
  state 0 with metadataState "created"), it finishes processing (state 5), the scan ends:

      {"NotificationContainer": {"type": "timeline", "size": 1, "TimelineEntry": [{
          "identifier": "com.plexapp.plugins.library", "sectionID": "1", "itemID": "104",
          "type": 1, "title": "New Movie", "state": 0, "metadataState": "created",
          "updatedAt": 1760000000}]}}
      {"NotificationContainer": {"type": "activity", "size": 1, "ActivityNotification": [{
          "event": "ended", "uuid": "...", "Activity": {"uuid": "...", "type":
          "library.update.section", "cancellable": false, "userID": 1, "title": "Scanning
          Movies", "subtitle": "", "progress": 100, "Context": {"librarySectionID": "1"}}}]}}

Where the shapes come from: ../shared/research/plex-api-facts.md §2 and §8.2 (the
endpoint, the token, type `playing` with sessionKey, ratingKey, state, viewOffset);
plexapi 4.18.3 `plexapi/alert.py` (the NotificationContainer wrapper and the timeline
states 0-5 and 9); the public clients that parse real servers' messages: Tautulli
(`plexpy/activity_handler.py`: a new item is state 0 + metadataState "created", done at
state 5; the token as an `X-Plex-Token` header), jrudio/go-plex-client
(`websocket_client.go`: the fields of PlaySessionStateNotification, TimelineEntry and
ActivityNotification), Taxel/PlexTraktSync (`plextraktsync/watch/events.py`:
clientIdentifier, Activity.Context) and jjlawren/python-plexwebsocket (sessions end with
state "stopped"; buffering is transient).

Test controls (also on FakePlex): `kill()` drops every open stream at once, `muted`
keeps streams open but silent, `answer_pings` off makes them unresponsive; faults and
hangs on the path (`FakePlex.fail("pms", "/:/websockets")`) refuse or stall new ones.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import uuid
from collections import deque
from collections.abc import Callable

PATH = "/:/websockets/notifications"
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_CLIENT_FRAME_BYTES = 64 * 1024
SEND_TIMEOUT_SECONDS = 2.0
LIBRARY_IDENTIFIER = "com.plexapp.plugins.library"
TYPE_NUMBERS = {"movie": 1, "show": 2, "season": 3, "episode": 4}


def accept_key(client_key: str) -> str:
    """Given a client's Sec-WebSocket-Key, return the Sec-WebSocket-Accept value."""
    return base64.b64encode(hashlib.sha1((client_key + _GUID).encode()).digest()).decode()


def frame(opcode: int, payload: bytes) -> bytes:
    """A final, unmasked frame (servers never mask)."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return header + payload


class _Stream:
    """One open websocket: a socket, a send lock, and the file its frames are read from."""

    def __init__(self, connection: socket.socket, reader) -> None:
        self.connection = connection
        self.reader = reader
        self.lock = threading.Lock()
        self.closed = False

    def send(self, opcode: int, payload: bytes) -> bool:
        with self.lock:
            if self.closed:
                return False
            try:
                self.connection.sendall(frame(opcode, payload))
                return True
            except OSError:
                self.drop()
                return False

    def drop(self) -> None:
        """Close abruptly (no close frame), as a crashed server or a cut network would."""
        self.closed = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.connection.close()

    def read_frame(self) -> tuple[int, bytes] | None:
        """The next frame from the client, or None when the stream ends or misbehaves."""
        head = self.reader.read(2)
        if len(head) < 2:
            return None
        opcode, masked, length = head[0] & 0x0F, head[1] & 0x80, head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", self.reader.read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self.reader.read(8))[0]
        if not masked or length > MAX_CLIENT_FRAME_BYTES:
            return None  # RFC 6455 §5.1: a client frame must be masked
        mask = self.reader.read(4)
        payload = self.reader.read(length)
        if len(mask) < 4 or len(payload) < length:
            return None
        return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class AlertHub:
    """Every open alert stream of one fake server, and what is pushed on them.

    `live_sessions()` returns the fake's live sessions (dicts with session_key, user,
    rating_key, state, offset_ms), repeated every `repeat_seconds` as real players do.
    """

    def __init__(self, live_sessions: Callable[[], list[dict]] = list,
                 repeat_seconds: float = 10.0) -> None:
        self.live_sessions = live_sessions
        self._repeat_seconds = repeat_seconds
        self._rescheduled = threading.Event()
        self.muted = False
        self.answer_pings = True
        self.sent: deque[dict] = deque(maxlen=1000)  # the last containers pushed (tests)
        self._streams: set[_Stream] = set()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._repeater = threading.Thread(target=self._repeat, name="fakeplex-alerts",
                                          daemon=True)

    def start(self) -> AlertHub:
        self._repeater.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._rescheduled.set()
        self.kill()
        if self._repeater.is_alive():
            self._repeater.join(timeout=5)

    # -- serving ---------------------------------------------------------------------

    def serve(self, handler) -> None:
        """Upgrade a BaseHTTPRequestHandler's request to a websocket and hold it open until
        the client leaves or the stream is killed (runs on the handler's own thread)."""
        headers = handler.headers
        key = headers.get("Sec-WebSocket-Key")
        upgrade = (headers.get("Upgrade") or "").lower() == "websocket"
        if not key or not upgrade or headers.get("Sec-WebSocket-Version") != "13":
            handler.send_error(400, "websocket upgrade expected")
            return
        handler.close_connection = True
        stream = _Stream(handler.connection, handler.rfile)
        stream.connection.settimeout(None)
        # Listed before the client can know it is connected, so nothing pushed after that
        # is missed; the stream's lock holds those pushes until the handshake is out.
        with stream.lock:
            with self._changed:
                self._streams.add(stream)
                self._changed.notify_all()
            handler.send_response(101, "Switching Protocols")
            handler.send_header("Upgrade", "websocket")
            handler.send_header("Connection", "Upgrade")
            handler.send_header("Sec-WebSocket-Accept", accept_key(key))
            handler.end_headers()
            handler.wfile.flush()
        try:
            self._hold(stream)
        finally:
            with self._changed:
                self._streams.discard(stream)
                self._changed.notify_all()
            stream.drop()

    def _hold(self, stream: _Stream) -> None:
        while not stream.closed:
            try:
                received = stream.read_frame()
            except (OSError, struct.error, ValueError):
                return
            if received is None:
                return
            opcode, payload = received
            if opcode == OP_PING and self.answer_pings:
                stream.send(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                stream.send(OP_CLOSE, payload[:2])
                return

    # -- state -----------------------------------------------------------------------

    @property
    def connected(self) -> int:
        with self._lock:
            return len(self._streams)

    def wait_connected(self, count: int = 1, timeout_seconds: float = 30.0) -> bool:
        """Wait until at least `count` streams are open; return whether they are."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._streams) >= count, timeout_seconds)

    def kill(self) -> int:
        """Drop every open stream at once; return how many there were."""
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.drop()
        return len(streams)

    # -- what is pushed --------------------------------------------------------------

    def publish(self, kind: str, entries_name: str, entries: list[dict]) -> int:
        """Push one NotificationContainer to every open stream; return how many got it."""
        container = {"type": kind, "size": len(entries), entries_name: entries}
        return self.send_raw(json.dumps({"NotificationContainer": container}),
                             record=container)

    def send_raw(self, text: str, record: dict | None = None) -> int:
        """Push any text (hostile-input tests); return how many streams got it."""
        if self.muted:
            return 0
        with self._lock:
            streams = list(self._streams)
            self.sent.append(record if record is not None else {"raw": text})
        return sum(stream.send(OP_TEXT, text.encode()) for stream in streams)

    def playing(self, session: dict, state: str | None = None) -> int:
        """Push a PlaySessionStateNotification for one of the fake's sessions."""
        number = int(session["session_key"])
        rating_key = int(session["rating_key"])
        return self.publish("playing", "PlaySessionStateNotification", [{
            "sessionKey": str(number), "clientIdentifier": f"player-{number:04d}", "guid": "",
            "ratingKey": str(rating_key), "url": "", "key": f"/library/metadata/{rating_key}",
            "viewOffset": int(session.get("offset_ms", 0)), "playQueueItemID": number,
            "state": state or session.get("state", "playing")}])

    def item_added(self, item_id: int, kind: str, section_id: int, title: str,
                   updated_at: int) -> None:
        """Push what a scan that finds one new movie or episode pushes."""
        activity = str(uuid.uuid4())
        entry = {"identifier": LIBRARY_IDENTIFIER, "sectionID": str(section_id),
                 "itemID": str(item_id), "type": TYPE_NUMBERS[kind], "title": title,
                 "updatedAt": updated_at}
        self._scan(activity, section_id, "started", 0)
        self.publish("timeline", "TimelineEntry", [dict(entry, state=0, metadataState="created")])
        self.publish("timeline", "TimelineEntry", [dict(entry, state=5)])
        self._scan(activity, section_id, "ended", 100)

    def _scan(self, activity: str, section_id: int, event: str, progress: int) -> None:
        self.publish("activity", "ActivityNotification", [{
            "event": event, "uuid": activity, "Activity": {
                "uuid": activity, "type": "library.update.section", "cancellable": False,
                "userID": 1, "title": f"Scanning section {section_id}", "subtitle": "",
                "progress": progress, "Context": {"librarySectionID": str(section_id)}}}])

    @property
    def repeat_seconds(self) -> float:
        return self._repeat_seconds

    @repeat_seconds.setter
    def repeat_seconds(self, seconds: float) -> None:
        """Change how often live sessions are reported again (takes effect at once)."""
        self._repeat_seconds = seconds
        self._rescheduled.set()

    def _repeat(self) -> None:
        while not self._stop.is_set():
            if self._rescheduled.wait(self._repeat_seconds):
                self._rescheduled.clear()
                continue
            for session in self.live_sessions():
                self.playing(session)
