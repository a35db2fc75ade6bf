"""Live sessions as Plex reports them, resolved to the files being read (SPEC §4, invariant 6).

A direct-played session names its file. A transcoded one describes the transcoder's
output: its `Part` has `decision="transcode"` and no `file`, `size` or `key` (or a bare
file name). Such a session is resolved by its `ratingKey`: the library's item (one
batched `/library/metadata/k1,k2,...` for every session of a poll) gives the files of the
version whose Media `id` the session names, or of every version when none matches (Plex
re-analysed the item, or the version is gone): protecting too much is safe, too little
is not. Live TV has no file; tracks, clips and photos are protected but never cached.

`parse_session` and `resolve` are pure, so a notification (a websocket's ratingKey) can
be resolved the same way: fetch the item, then `resolve([...], items)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from xml.etree.ElementTree import Element

from cacherr.sources.convert import is_absolute, number, to_item
from cacherr.sources.types import Item, MediaFile, MediaVersion, Session


@dataclass(frozen=True)
class PlayingRecord:
    """One `/status/sessions` element before resolution."""

    session: Session  # its item carries only the files the session names
    rating_key: int | None
    media_id: int | None  # the selected Media's id (the version being played)
    needs_source: bool  # the session names no file on disk: look the item up


def kind_of(element: Element) -> str:
    """movie, episode, clip, track, photo, live or other."""
    media = element.find("Media")
    if element.get("live") == "1" or (media is not None and media.get("origin") == "livetv"):
        return "live"
    if element.tag == "Track" or element.get("type") == "track":
        return "track"
    if element.get("subtype") == "clip" or element.get("type") == "clip":
        return "clip"
    if element.tag == "Photo" or element.get("type") == "photo":
        return "photo"
    kind = element.get("type")
    return kind if kind in ("movie", "episode") else "other"


def _selected_media(element: Element) -> Element | None:
    medias = element.findall("Media")
    return next((m for m in medias if m.get("selected") == "1"), medias[0] if medias else None)


def parse_session(element: Element, container: Element | None = None) -> PlayingRecord | None:
    """Given one child of `/status/sessions`, return its PlayingRecord (None for Live TV,
    which reads no library file). A missing `<User>` or `<Player>` is tolerated; an
    element naming no item raises ValueError."""
    kind = kind_of(element)
    if kind == "live":
        return None
    user = element.find("User")
    player = element.find("Player")
    media = _selected_media(element)
    parts = media.findall("Part") if media is not None else []
    files = tuple(MediaFile(p.get("file"), number(p, "size", 0) or 0)
                  for p in parts if is_absolute(p.get("file")))
    base = to_item(element, container)  # raises for an element naming no item
    versions = (MediaVersion(files, media.get("videoResolution") if media is not None else None,
                             number(media, "id") if media is not None else None),) if files else ()
    transcoding = element.find("TranscodeSession") is not None or any(
        p.get("decision") == "transcode" for p in parts)
    session = Session(
        user_name=(user.get("title") or "") if user is not None else "",
        account_id=number(user, "id") if user is not None else None,
        item=replace(base, versions=versions),
        state=((player.get("state") if player is not None else None) or "playing"),
        view_offset_ms=number(element, "viewOffset", 0) or 0,
        kind=kind, session_key=element.get("sessionKey"), transcoding=transcoding)
    return PlayingRecord(session, base.rating_key,
                         number(media, "id") if media is not None else None,
                         needs_source=not parts or len(files) < len(parts))


def source_versions(item: Item | None, media_id: int | None) -> tuple[MediaVersion, ...]:
    """The versions a session with this Media id reads: the matching one, else all."""
    if item is None:
        return ()
    matched = tuple(v for v in item.versions if media_id is not None and v.media_id == media_id)
    return matched or item.versions


def resolve(records: list[PlayingRecord], items: Mapping[int, Item]) -> list[Session]:
    """Sessions with their source files: a record that names no file on disk takes them
    from its library item (`items`: rating key → Item, as the owner sees it)."""
    sessions = []
    for record in records:
        session = record.session
        if record.needs_source and record.rating_key is not None:
            found = source_versions(items.get(record.rating_key), record.media_id)
            versions = _merge(session.item.versions, found)
            session = replace(session, item=replace(session.item, versions=versions))
        sessions.append(session)
    return sessions


def _merge(named: tuple[MediaVersion, ...], found: tuple[MediaVersion, ...]) -> tuple[MediaVersion, ...]:
    paths = {f.plex_path for v in found for f in v.files}
    extra = tuple(v for v in named if any(f.plex_path not in paths for f in v.files))
    return found + extra


def needing_source(records: list[PlayingRecord]) -> set[int]:
    """Rating keys to look up for the sessions that name no file."""
    return {r.rating_key for r in records if r.needs_source and r.rating_key is not None}
