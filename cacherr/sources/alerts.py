"""What Plex's alert stream says, as cacherr types, and what it means for cacherr.

Plex Media Server pushes JSON notifications on its websocket `/:/websockets/notifications`
(`alertstream.py` holds the connection). Each message is one `NotificationContainer`:

    {"NotificationContainer": {"type": "playing", "size": 1, "PlaySessionStateNotification": [
        {"sessionKey": "12", "ratingKey": "203", "key": "/library/metadata/203",
         "state": "playing", "viewOffset": 600000, "clientIdentifier": "...", ...}]}}
    {"NotificationContainer": {"type": "timeline", "size": 1, "TimelineEntry": [
        {"identifier": "com.plexapp.plugins.library", "sectionID": "1", "itemID": "104",
         "type": 1, "state": 0, "metadataState": "created", "title": "...", ...}]}}

Values arrive as strings or numbers depending on the server's version, and the server is
not trusted to be well formed: `parse_message` accepts both and turns anything else into
`MalformedAlert` or skips the entry. `AlertTracker` remembers the live sessions and the
items being added, and answers each message with a `Wake`: which targeted round to run.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass

# `type` values acted on or counted; everything else (status, progress, preference, ...)
# is "other" (the metric's bounded label set).
KINDS = ("playing", "timeline", "activity")
LIBRARY_IDENTIFIER = "com.plexapp.plugins.library"
# Plex's metadata type numbers of items that hold files (movie, episode).
FILE_ITEM_TYPES = {1: "movie", 4: "episode"}
# Timeline states (plexapi's AlertListener documents them): 0 created ... 5 processed, 9 deleted.
STATE_PROCESSED = 5
STATE_DELETED = 9
LIVE_STATES = ("playing", "paused", "buffering")
MAX_TRACKED = 10_000  # sessions and items being added; a hostile stream cannot grow memory
_KEY_PATH = re.compile(r"^/library/metadata/(\d+)")


class MalformedAlert(ValueError):
    """A message that is not a Plex notification (not JSON, no NotificationContainer)."""


@dataclass(frozen=True)
class Playback:
    """One PlaySessionStateNotification: a session's state changed (or was reported again)."""

    session_key: str
    rating_key: int | None
    state: str  # playing | paused | buffering | stopped
    view_offset_ms: int = 0


@dataclass(frozen=True)
class TimelineEntry:
    """One TimelineEntry: a library item moved through scanning, matching and processing."""

    item_id: int | None
    item_type: int | None  # 1 movie, 2 show, 3 season, 4 episode, ...
    state: int | None
    metadata_state: str | None = None  # "created" when the item is new, "deleted", ...
    section_id: int | None = None
    identifier: str = ""


@dataclass(frozen=True)
class Message:
    """One notification message: its kind (KINDS or "other") and the entries cacherr reads."""

    kind: str
    playbacks: tuple[Playback, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()


def parse_message(text: str | bytes) -> Message:
    """Given one websocket text message, return the Message; raise MalformedAlert if it is
    not a notification container. Entries that are not objects, or lack their key, are
    skipped."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise MalformedAlert(f"not JSON: {type(error).__name__}") from None
    container = document.get("NotificationContainer") if isinstance(document, dict) else None
    if not isinstance(container, dict):
        raise MalformedAlert("no NotificationContainer object")
    kind = container.get("type")
    kind = kind if isinstance(kind, str) and kind in KINDS else "other"
    playbacks = tuple(p for p in map(_playback, _entries(container, "PlaySessionStateNotification"))
                      if p is not None)
    timeline = tuple(t for t in map(_timeline, _entries(container, "TimelineEntry"))
                     if t is not None)
    return Message(kind, playbacks, timeline)


def _entries(container: dict, name: str) -> list[dict]:
    entries = container.get(name)
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _int(value) -> int | None:
    """An id or number as Plex sends it (42 or "42"); anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.strip().lstrip("-").isdigit():
        try:
            return int(value)
        except ValueError:  # longer than Python's int-from-str limit
            return None
    return None


def _string(value) -> str:
    return value if isinstance(value, str) else str(value) if isinstance(value, int) else ""


def _playback(entry: dict) -> Playback | None:
    session_key = _string(entry.get("sessionKey"))
    if not session_key:
        return None
    rating_key = _int(entry.get("ratingKey"))
    if rating_key is None:
        match = _KEY_PATH.match(_string(entry.get("key")))
        rating_key = int(match.group(1)) if match else None
    return Playback(session_key, rating_key, _string(entry.get("state")),
                    max(0, _int(entry.get("viewOffset")) or 0))


def _timeline(entry: dict) -> TimelineEntry | None:
    item_id = _int(entry.get("itemID"))
    if item_id is None:
        return None
    metadata_state = entry.get("metadataState")
    return TimelineEntry(item_id, _int(entry.get("type")), _int(entry.get("state")),
                         metadata_state if isinstance(metadata_state, str) else None,
                         _int(entry.get("sectionID")), _string(entry.get("identifier")))


@dataclass(frozen=True)
class Wake:
    """What a message asks for: a session round (a playback began, changed item or ended),
    and an `added` round (a new library item finished processing)."""

    started: tuple[int, ...] = ()  # rating keys of playbacks that began or changed item
    stopped: bool = False
    added: bool = False
    unknown_start: bool = False  # a new session whose item the message did not name

    @property
    def sessions(self) -> bool:
        return bool(self.started) or self.stopped or self.unknown_start


class AlertTracker:
    """Live sessions and items being added, as seen on the stream (not thread-safe: one
    stream thread feeds it). `reset()` on every new connection: a restarted server reuses
    session keys."""

    def __init__(self) -> None:
        self._sessions: OrderedDict[str, int | None] = OrderedDict()
        self._created: OrderedDict[int, None] = OrderedDict()

    def reset(self) -> None:
        self._sessions.clear()
        self._created.clear()

    @property
    def live_sessions(self) -> int:
        """Sessions reported playing, paused or buffering and not stopped since."""
        return len(self._sessions)

    def feed(self, message: Message) -> Wake:
        """Given a parsed message, update what is live and return what it wakes."""
        started: list[int] = []
        stopped = unknown_start = added = False
        for playback in message.playbacks:
            if playback.state == "stopped":
                self._sessions.pop(playback.session_key, None)
                stopped = True
            elif playback.state in LIVE_STATES:
                known = playback.session_key in self._sessions
                if not known or self._sessions[playback.session_key] != playback.rating_key:
                    if playback.rating_key is None:
                        unknown_start = True
                    else:
                        started.append(playback.rating_key)
                _remember(self._sessions, playback.session_key, playback.rating_key)
        for entry in message.timeline:
            added |= self._settled_new_item(entry)
        return Wake(tuple(dict.fromkeys(started)), stopped, added, unknown_start)

    def _settled_new_item(self, entry: TimelineEntry) -> bool:
        """True when `entry` is the last step of a new movie or episode being added.

        A new item first appears with metadataState "created" (state 0 on the servers
        Tautulli observed; some report "created" with state 5 directly) and is ready once
        its state reaches 5. Updates of existing items also reach state 5 without having
        been "created", and start nothing.
        """
        if entry.identifier != LIBRARY_IDENTIFIER or entry.item_type not in FILE_ITEM_TYPES:
            return False
        if entry.state == STATE_DELETED or entry.metadata_state == "deleted":
            self._created.pop(entry.item_id, None)
            return False
        if entry.metadata_state == "created":
            _remember(self._created, entry.item_id, None)
        if entry.state == STATE_PROCESSED and entry.item_id in self._created:
            del self._created[entry.item_id]
            return True
        return False


def _remember(table: OrderedDict, key, value) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > MAX_TRACKED:
        table.popitem(last=False)
