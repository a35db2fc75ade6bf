"""Plex as it really answers: responses captured from real servers (../shared/plex-captures,
SOURCES.md there) served from a local HTTP server to the real adapter and `select_all`.

Each test names the captures it serves and asserts the files selected and the live files
protected. Where cacherr asks for something no capture answers (a transcoded item's
library entry), the answer is made from the capture itself, and says so.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree as ET

import pytest

from cacherr.config.model import Keep, PathMapping, Rule
from cacherr.cycle.once import live_host_paths
from cacherr.sources.convert import to_item
from cacherr.sources.http import RetryPolicy
from cacherr.sources.select import select_all
from cacherr.testing.fakeplex import make_config

CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "plex-captures"
MACHINE = "unique_id_123"  # what HA's tests put in ha_plex_server_base.xml; its users share it
KEEP = Keep(while_selected=True)
WINDOWS = (PathMapping(plex="M:\\Media", host="/mnt/user/media"),
           PathMapping(plex="I:\\Music", host="/mnt/user/music"),
           PathMapping(plex="/home/jrudio/media/music", host="/mnt/user/music"))
NOW_2022 = 1_671_053_495.0  # the plexopedia session's timeStamp (December 2022)


def capture(file_name: str, **fill: str) -> str:
    """A capture's text, with HA's `str.format` placeholders filled the way HA's tests do."""
    text = (CAPTURES / file_name).read_text(encoding="utf-8")
    for key, value in fill.items():
        text = text.replace("{" + key + "}", value)
    return text


def library_answer(session_capture: str, rating_key: str, files: dict[str, str], **fill: str) -> str:
    """`/library/metadata/<rating_key>` for an item a session capture transcodes: no capture
    of it exists, so it is made from the session's own element (the item's metadata),
    without the session's children, with `files` (Media id -> file) as the library's
    Media/Part. Media ids not in the session are other versions of the same item."""
    root = ET.fromstring(capture(session_capture, **fill).strip())
    video = next(v for v in root if v.get("ratingKey") == rating_key)
    for child in list(video):
        if child.tag in ("User", "Player", "Session", "TranscodeSession", "Media"):
            video.remove(child)
    for number, (media_id, path) in enumerate(files.items()):
        media = ET.SubElement(video, "Media", {"id": media_id, "videoResolution": "1080", "container": "mkv"})
        ET.SubElement(media, "Part", {"id": str(90000 + number), "key": f"/library/parts/{90000 + number}/file.mkv",
                                      "file": path, "size": str(1_000_000 + number)})
    container = ET.Element("MediaContainer", {"size": "1", "librarySectionID": video.get("librarySectionID") or ""})
    container.append(video)
    return ET.tostring(container, encoding="unicode")


class CaptureServer:
    """Serves bodies by path (PMS and plex.tv alike, on one port); unknown paths are 404.

    `routes` maps a path to a body, or to a function of the query giving a body (or None
    for 404). Requests are recorded as (path, query)."""

    def __init__(self, routes: dict) -> None:
        self.routes = routes
        self.requests: list[tuple[str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                split = urlsplit(self.path)
                path, query = unquote(split.path), parse_qs(split.query, keep_blank_values=True)
                server.requests.append((path, query))
                route = server.routes.get(path) or server.routes.get(path.rstrip("/"))
                body = route(query) if callable(route) else route
                data = (body or "<html>404 Not Found</html>").encode()
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/xml" if body is not None else "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> CaptureServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def asked(self, prefix: str) -> list[tuple[str, dict]]:
        return [r for r in self.requests if r[0].startswith(prefix)]


def base_routes(sessions: str = '<MediaContainer size="0"/>', **extra) -> dict:
    """A server HA's captures describe (its identity, libraries, owner and users), with
    `sessions` as `/status/sessions` and nothing playing or watched otherwise."""
    empty = '<MediaContainer size="0"/>'
    return {
        "/": capture("ha_plex_server_base.xml", name="Plex Server 1", machine_identifier=MACHINE),
        "/library/sections": capture("ha_library_sections.xml"),
        "/api/v2/user": capture("ha_plextv_account.xml"),
        "/api/users": capture("ha_plextv_shared_users.xml"),
        f"/api/servers/{MACHINE}/shared_servers": capture("goplex_shared_servers.xml"),
        "/status/sessions": sessions,
        "/status/sessions/history/all": empty,
        "/library/onDeck": empty,
        **{f"/library/sections/{key}/all": empty for key in (1, 2, 3)},
        **extra,
    }


def run(server: CaptureServer, tmp_path, rules, *, now: float = NOW_2022, paths=WINDOWS, **kwargs):
    config = make_config(server.url, "faketoken", rules, state_dir=tmp_path, paths=paths)
    env = {"CACHERR_PLEXTV_URL": server.url, "CACHERR_DISCOVER_URL": server.url,
           "CACHERR_METADATA_URL": server.url}
    result = select_all(config, tmp_path, now, env=env, retry=RetryPolicy(attempts=1), **kwargs)
    return result, config


def wanted(result) -> set[str]:
    return {w.host_path for w in result.wanted}


def test_a_transcoded_clip_is_resolved_to_its_file_and_protected_and_music_is_protected_not_cached(tmp_path):
    clip_file = "M:\\Media\\Other videos\\tos-1720x720-cfg01.mkv"
    routes = base_routes(capture("plexopedia_sessions.xml"), **{
        "/library/metadata/286254": library_answer("plexopedia_sessions.xml", "286254",
                                                   {"350106": clip_file})})
    with CaptureServer(routes) as server:
        result, config = run(server, tmp_path, [Rule("now", "playing", KEEP, episodes_ahead=2)])
    assert not result.failed_sources, result.failed_sources
    by_kind = {s.kind: s for s in result.sessions}
    assert set(by_kind) == {"clip", "track"}
    assert by_kind["clip"].transcoding and by_kind["clip"].user_name == "APlexUser"
    assert sorted(live_host_paths(config, result)) == [
        "/mnt/user/media/Other videos/tos-1720x720-cfg01.mkv",
        "/mnt/user/music/U2/All That You Can't Leave Behind/01 Beautiful Day.flac"]
    assert result.wanted == []  # neither a clip nor a track is cached
    assert [p for p, _ in server.asked("/library/metadata/")] == ["/library/metadata/286254"]


@pytest.mark.parametrize("library_ids, protected", [
    (("2637", "2638"), ["/mnt/user/media/Movies/Movie 1 (2000)/Movie 1 (2000) - Extended.mkv"]),
    (("7001", "7002"), ["/mnt/user/media/Movies/Movie 1 (2000)/Movie 1 (2000) - Extended.mkv",
                        "/mnt/user/media/Movies/Movie 1 (2000)/Movie 1 (2000).mkv"]),
], ids=["the version playing", "every version when the Media id matches none"])
def test_a_transcoded_movie_protects_the_version_it_plays_and_is_cached_by_a_playing_rule(
        tmp_path, library_ids, protected):
    files = {library_ids[0]: "M:\\Media\\Movies\\Movie 1 (2000)\\Movie 1 (2000) - Extended.mkv",
             library_ids[1]: "M:\\Media\\Movies\\Movie 1 (2000)\\Movie 1 (2000).mkv"}
    routes = base_routes(capture("ha_session_base.xml", user_id="1001"), **{
        "/library/metadata/1": library_answer("ha_session_base.xml", "1", files, user_id="1001")})
    with CaptureServer(routes) as server:
        result, config = run(server, tmp_path, [Rule("now", "playing", KEEP)])
    (session,) = result.sessions
    assert (session.kind, session.transcoding, session.account_id) == ("movie", True, 1001)
    assert sorted(live_host_paths(config, result)) == protected
    # user 1001 has this server (its <Server machineIdentifier>): the rule caches for them
    assert wanted(result) == set(protected)
    assert all(w.users == frozenset({"User 1001"}) for w in result.wanted)


def test_a_user_the_rules_leave_out_still_has_their_transcoded_file_protected(tmp_path):
    from cacherr.config.model import UsersConfig

    files = {"2637": "M:\\Media\\Movies\\Movie 1 (2000)\\Movie 1 (2000) - Extended.mkv"}
    routes = base_routes(capture("ha_session_base.xml", user_id="1001"), **{
        "/library/metadata/1": library_answer("ha_session_base.xml", "1", files, user_id="1001")})
    with CaptureServer(routes) as server:
        config = make_config(server.url, "faketoken", [Rule("now", "playing", KEEP)], state_dir=tmp_path,
                             paths=WINDOWS, users=UsersConfig(include=None, exclude=("User 1001",)))
        env = {"CACHERR_PLEXTV_URL": server.url}
        result = select_all(config, tmp_path, NOW_2022, env=env, retry=RetryPolicy(attempts=1))
    assert result.wanted == []
    assert live_host_paths(config, result) == ["/mnt/user/media/Movies/Movie 1 (2000)/Movie 1 (2000) - Extended.mkv"]


def test_live_tv_is_ignored_without_failing_the_playing_rule(tmp_path):
    with CaptureServer(base_routes(capture("ha_livetv_sessions.xml"))) as server:
        result, config = run(server, tmp_path, [Rule("now", "playing", KEEP, episodes_ahead=2)])
    assert not result.failed_sources and not result.failed_rules
    assert result.sessions == () and result.wanted == []
    assert not any("None" in path for path, _ in server.requests)
    assert not server.asked("/library/metadata/")


def test_sessions_naming_no_item_are_skipped_and_counted_never_raised(tmp_path):
    # fuzeman's fixture: no ratingKey, no Media, a <User> without id
    with CaptureServer(base_routes(capture("fuzeman_sessions.xml"))) as server:
        result, _ = run(server, tmp_path, [Rule("now", "playing", KEEP)])
    assert not result.failed_sources and not result.failed_rules
    assert result.sessions == ()
    assert result.status["plex"].skipped_elements == 3


def test_a_track_and_a_partly_transcoded_episode_with_a_bare_file_name(tmp_path):
    # go-plex-client: the episode's Part names "2chainz.mp4" (no folder) and its ratingKey and
    # key disagree; the library has no such item (404): nothing to protect, nothing fails
    with CaptureServer(base_routes(capture("goplex_sessions.xml"))) as server:
        result, config = run(server, tmp_path, [Rule("now", "playing", KEEP, episodes_ahead=1)])
    assert not result.failed_sources
    assert {(s.kind, s.state) for s in result.sessions} == {("track", "paused"), ("episode", "paused")}
    assert live_host_paths(config, result) == ["/mnt/user/music/Views/13 Grammys (feat. Future).m4a"]
    assert [p for p, _ in server.asked("/library/metadata/")] == ["/library/metadata/1264"]
    assert result.wanted == []


def test_history_rows_of_deleted_items_are_skipped(tmp_path):
    routes = base_routes(**{"/status/sessions/history/all": capture("plexopedia_history.xml")})
    with CaptureServer(routes) as server:
        result, _ = run(server, tmp_path, [Rule("done", "playing", KEEP, when="complete",
                                                within_seconds=30 * 365 * 86400.0)],
                        history_since=0.0)
    assert {(p.rating_key, p.viewed_at) for p in result.plays} == {(218860, 1419652344.0), (917, 1419652401.0)}
    assert result.status["plex"].skipped_elements == 0  # a deleted item's play is not an error
    (fetch,) = server.asked("/library/metadata/")
    assert fetch[0] == "/library/metadata/917,218860"  # the two plays, in one request


def test_an_episode_listing_that_names_its_library_only_on_the_container(tmp_path):
    listing = capture("plexopedia_recently_added_tv.xml")
    sections = ('<MediaContainer size="1"><Directory key="4" type="show" title="TV Shows" hidden="0">'
                '<Location id="4" path="M:\\Media\\TV Shows"/></Directory></MediaContainer>')
    routes = base_routes(**{"/library/sections": sections, "/library/sections/4/all":
                            lambda q: listing if q.get("type") == ["4"] else '<MediaContainer size="0"/>'})
    with CaptureServer(routes) as server:
        result, _ = run(server, tmp_path, [Rule("new", "recently_added", KEEP, libraries=("TV Shows",),
                                                within_seconds=30 * 86400.0)], now=1_660_700_000.0)
    (found,) = result.wanted
    assert found.host_path == ("/mnt/user/media/TV Shows/Men in Kilts - A Roadtrip with Sam and Graham/Season 1/"
                               "Men.in.Kilts.A.Roadtrip.with.Sam.and.Graham.S01E01.Food.and.Drink.1080p.AMZN."
                               "WEB-DL.DDP.5.1.H.264-FLUX[eztv.re].mkv")
    assert found.size_bytes == 2149536961 and found.item == "Men in Kilts: A Roadtrip with Sam and Graham S01E01"


def test_season_children_take_library_and_show_from_the_container():
    root = ET.fromstring(capture("plexopedia_season_children.xml"))
    item = to_item(root[0], root)
    assert (item.library, item.library_id, item.show_rating_key, item.season_index, item.episode_index) == (
        "TV Shows", 4, 275479, 1, 1)
    assert item.files[0].plex_path.startswith("M:\\Media\\TV Shows\\The Joy of Painting\\")


def test_a_movie_with_two_versions_one_stacked_gives_every_file_under_a_pinned_folder(tmp_path):
    listing = capture("derived_movies_listing.xml")
    sections = ('<MediaContainer size="1"><Directory key="2" type="movie" title="Movies" hidden="0">'
                '<Location id="2" path="M:\\Media\\Movies"/></Directory></MediaContainer>')
    routes = base_routes(**{"/library/sections": sections, "/library/sections/2/all": listing})
    with CaptureServer(routes) as server:
        result, _ = run(server, tmp_path, [Rule("pin", "pinned", KEEP, paths=("M:\\Media\\Movies\\Aladin (1992)",))])
    folder = "/mnt/user/media/Movies/Aladin (1992)"
    assert wanted(result) == {f"{folder}/Aladin (1992) [480p h.264][AAC AC3].mkv",
                              f"{folder}/Aladin (1992) DERIVED [480p].mkv",
                              f"{folder}/Aladin (1992) - cd1.mkv", f"{folder}/Aladin (1992) - cd2.mkv"}


def test_the_movie_capture_reads_as_one_item_with_its_guids_and_windows_file():
    root = ET.fromstring(capture("plexopedia_movie_aladdin.xml"))
    item = to_item(root[0], root)
    assert (item.rating_key, item.library, item.released) == (65547, "Movies", "1992-11-25")
    assert {"imdb://tt0103639", "tmdb://812", "plex://movie/5d776827eb5d26001f1ddab7"} <= item.guids
    assert [f.size_bytes for f in item.files] == [1639520577]


def test_plextv_users_of_this_server_without_a_home_attribute_are_friends(tmp_path):
    with CaptureServer(base_routes()) as server:
        result, _ = run(server, tmp_path, [Rule("deck", "ondeck", KEEP)])
    assert [(u.name, u.kind, u.token) for u in result.users] == [
        ("User 1", "owner", "faketoken"), ("User 1000", "friend", None), ("User 1001", "friend", None)]
    # goplex's shared_servers lists another user: no token for these two, a warning each
    assert sum("no server token" in w for w in result.warnings) == 2


def test_a_home_user_of_another_server_is_not_a_user_here_and_is_never_switched(tmp_path):
    routes = base_routes(**{"/api/users": capture("plexapidev_users_home.xml")})
    with CaptureServer(routes) as server:
        result, _ = run(server, tmp_path, [Rule("wl", "watchlist", KEEP)])
        again, _ = run(server, tmp_path, [Rule("wl", "watchlist", KEEP)])
    assert [u.name for u in result.users] == [u.name for u in again.users] == ["User 1"]
    assert not server.asked("/api/home/users/")


def test_library_sections_keep_their_folders_and_music_is_not_a_cached_library(tmp_path):
    with CaptureServer(base_routes()) as server:
        result, _ = run(server, tmp_path, [Rule("new", "recently_added", KEEP)], paths=())
    assert not result.failed_sources
    listed = {re.sub(r"\?.*", "", p) for p, _ in server.asked("/library/sections/")}
    assert listed == {"/library/sections/1/all", "/library/sections/2/all"}  # not 3 (Music)
