"""`/status/sessions` as real Plex Media Server sends it, for the fake (`fakeplex.py`).

Each shape follows a captured response in `../shared/plex-captures/` (SOURCES.md there):

- direct play: the item as the library has it, one `Media` (the version playing, with the
  library's `Media id`), its `Part` with `file`, `size`, `key` and `decision="directplay"`;
- transcoding (`plexopedia_sessions.xml`, `ha_session_base.xml`): the `Media`/`Part`
  describe the transcoder's output: the `Part` has `decision="transcode"` and no `file`,
  `size` or `key`; a `<TranscodeSession>` follows;
- Live TV (`ha_livetv_sessions.xml`): `live="1"`, `key="/livetv/sessions/<uuid>"`, a
  `ratingKey` of the guide, no grandparent/parent keys, no library, `Media
  origin="livetv" protocol="hls"` and a `Part` without a file;
- music (`Track`, direct play with the file) and clips (`Video type="movie" subtype="clip"`
  in a library of other videos);
- and, for hostile-input tests, a session without `<User>` (`fuzeman_sessions.xml` has one
  without a user id).
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

LIVE_TV_RATING_KEY = 203216  # the guide's item in ha_livetv_sessions.xml


def render_session(fake, renderer, session: dict, number: int) -> ET.Element | None:
    """Given the fake, a `_Renderer` of the owner's view and one scenario session dict,
    return the session's element, or None if its item is not in the library."""
    kind = session.get("kind", "library")
    if kind == "live":
        el = _live_tv(session, number)
    elif kind in ("track", "clip"):
        el = _file_session(session, kind)
    else:
        rating_key = session["rating_key"]
        if rating_key not in fake.nodes:
            return None
        el = _library_session(renderer.item(rating_key), session)
    el.set("sessionKey", str(number))
    el.set("viewOffset", str(session.get("offset_ms", 0)))
    person = fake.scenario.user(session["user"])
    account_id = fake.account_id(person)
    if not session.get("no_user"):
        ET.SubElement(el, "User", {"id": str(account_id), "title": person.name,
                                   "thumb": f"https://plex.tv/users/{person.uuid}/avatar"})
    ET.SubElement(el, "Player", {
        "address": "192.168.1.50", "machineIdentifier": f"player-{number:04d}", "platform": "Chrome",
        "product": "Plex Web", "state": session.get("state", "playing"), "title": "Chrome",
        "local": "1", "relayed": "0", "secure": "1", "userID": str(account_id)})
    ET.SubElement(el, "Session", {"id": f"sess-{number:04d}", "bandwidth": "4000", "location": "lan"})
    if session.get("transcode") or kind == "live":
        ET.SubElement(el, "TranscodeSession", {
            "key": f"/transcode/sessions/fake-{number:04d}", "throttled": "0", "complete": "0",
            "progress": "5.3", "speed": "6.9", "context": "streaming",
            "videoDecision": "copy" if kind == "live" else "transcode",
            "audioDecision": "copy" if kind == "live" else "transcode", "protocol": "dash",
            "container": "mp4", "videoCodec": "h264", "audioCodec": "aac"})
    return el


def _library_session(el: ET.Element, session: dict) -> ET.Element:
    """A library movie or episode being played: one version, direct or transcoded."""
    for child in list(el):
        if child.tag == "Label":
            el.remove(child)
    for attr in ("viewCount", "lastViewedAt"):
        el.attrib.pop(attr, None)
    medias = el.findall("Media")
    playing = medias[min(int(session.get("version", 0)), len(medias) - 1)] if medias else None
    for media in medias:
        if media is not playing:
            el.remove(media)  # a session plays one version
    if playing is None:
        return el
    playing.set("selected", "1")
    if session.get("media_id") is not None:
        playing.set("id", str(session["media_id"]))  # e.g. the item was re-analysed since
    parts = playing.findall("Part")
    for part in parts[1:]:
        playing.remove(part)  # the part playing now
    for part in parts[:1]:
        part.set("selected", "1")
        if session.get("transcode"):
            for attr in ("file", "size", "key"):
                part.attrib.pop(attr, None)
            part.set("decision", "transcode")
            part.set("protocol", "dash")
            playing.set("protocol", "dash")
            playing.set("videoResolution", "720p")  # what the transcoder sends
        else:
            part.set("decision", "directplay")
    return el


def _live_tv(session: dict, number: int) -> ET.Element:
    uuid = f"live_tv_{number}"
    el = ET.Element("Video", {
        "ratingKey": str(session.get("rating_key", LIVE_TV_RATING_KEY)),
        "guid": "plex://episode/6083464579af59002d1e35bc", "type": "episode",
        "title": session.get("title", "The Price Is Right"), "summary": "", "index": "105",
        "year": "2021", "addedAt": "1619538677", "grandparentTitle": session.get("title", "The Price Is Right"),
        "grandparentThumb": "https://metadata-static.plex.tv/5/gracenote/live.jpg",
        "key": f"/livetv/sessions/{uuid}", "live": "1", "parentIndex": "49"})
    media = ET.SubElement(el, "Media", {
        "id": "382631", "width": "1920", "height": "1080", "videoCodec": "mpeg2video",
        "videoResolution": "1080", "container": "mpegts", "origin": "livetv", "protocol": "hls",
        "uuid": uuid})
    ET.SubElement(media, "Part", {"id": "383069", "container": "mpegts", "protocol": "hls"})
    return el


def _file_session(session: dict, kind: str) -> ET.Element:
    """A track (music library) or a clip (a library of other videos), as plexopedia's
    capture has them."""
    section_id, section_title = session.get("section", (8, "Music") if kind == "track" else (14, "Other videos"))
    rating_key = str(session["rating_key"])
    attrs = {"ratingKey": rating_key, "key": f"/library/metadata/{rating_key}",
             "title": session.get("title", "Untitled"), "librarySectionID": str(section_id),
             "librarySectionTitle": section_title, "librarySectionKey": f"/library/sections/{section_id}",
             "addedAt": "1668524601", "duration": "248066"}
    if kind == "track":
        el = ET.Element("Track", {**attrs, "type": "track", "grandparentTitle": "Artist",
                                  "parentTitle": "Album", "index": "1", "parentIndex": "1",
                                  "grandparentRatingKey": str(int(rating_key) - 2),
                                  "grandparentKey": f"/library/metadata/{int(rating_key) - 2}",
                                  "parentRatingKey": str(int(rating_key) - 1),
                                  "parentKey": f"/library/metadata/{int(rating_key) - 1}"})
    else:
        el = ET.Element("Video", {**attrs, "type": "movie", "subtype": "clip", "year": "2022"})
    media = ET.SubElement(el, "Media", {"id": str(int(rating_key) * 10), "container": "mp4", "selected": "1"})
    part = ET.SubElement(media, "Part", {"id": str(int(rating_key) * 100), "container": "mp4", "selected": "1"})
    if session.get("transcode"):
        part.set("decision", "transcode")
    else:
        part.attrib.update({"file": session["file"], "size": str(session.get("size", 28656120)),
                            "key": f"/library/parts/{int(rating_key) * 100}/1558059964/file",
                            "decision": "directplay"})
    return el
