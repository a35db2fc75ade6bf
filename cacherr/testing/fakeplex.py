"""A scenario-driven fake of Plex Media Server, plex.tv, Discover, the metadata provider,
the friends' watchlist RSS feed and Trakt, on loopback, for the real plexapi.

Each service listens on its own port (so that paths mean what they mean on the real
host); all share one `Scenario` and one lock. Use it as a context manager:

    with FakePlex(Scenario.small_demo()) as fake:
        env = fake.env()   # CACHERR_PLEXTV_URL etc.; fake.pms_url, fake.owner_token

Control (Python methods, or POST /_fakeplex/<method> with a JSON object of arguments on
any of the ports): start_session, stop_session, mark_watched, set_progress,
watchlist_add, watchlist_remove, fail, hang, clear_faults, release_hangs, and
`requests` / `count()` to count what clients asked. Session and library changes are also
pushed on the PMS alert stream (`fake.alerts`, see fakealerts.py).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree as ET

from cacherr.testing.fake_sessions import render_session
from cacherr.testing.fakealerts import PATH as ALERTS_PATH
from cacherr.testing.fakealerts import AlertHub
from cacherr.testing.scenarios import Episode, Movie, Scenario, Season, Show

SERVICES = ("pms", "plextv", "discover", "metadata", "trakt", "rss")
TYPE_NUMBERS = {"movie": 1, "show": 2, "season": 3, "episode": 4}


@dataclass
class RecordedRequest:
    service: str
    method: str
    path: str
    query: dict[str, list[str]]
    token: str | None


@dataclass
class Fault:
    service: str
    path_prefix: str
    status: int = 500
    times: int | None = None  # None = until cleared
    retry_after: float | None = None
    hang_seconds: float = 0.0
    token: str | None = None  # only requests made with this token
    hits: int = 0


@dataclass
class _Node:
    """A library item as the fake stores it: movie, show, season or episode."""

    type: str
    obj: object
    section: int
    show: Show | None = None
    season: Season | None = None


class FakePlex:
    """Serve a Scenario on loopback. Thread-safe; state changes take effect immediately."""

    def __init__(self, scenario: Scenario | None = None) -> None:
        self.scenario = scenario or Scenario.small_demo()
        self.lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self._release = threading.Event()
        self._servers: dict[str, ThreadingHTTPServer] = {}
        self._threads: list[threading.Thread] = []
        self._session_counter = 0
        self.alerts = AlertHub(self._live_sessions)
        self._index()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakePlex:
        for service in SERVICES:
            server = _QuietServer(("127.0.0.1", 0), _handler_for(self, service))
            server.daemon_threads = True
            self._servers[service] = server
            thread = threading.Thread(target=server.serve_forever, args=(0.02,),
                                      name=f"fakeplex-{service}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        self.alerts.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.alerts.close()
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FakePlex:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def url(self, service: str) -> str:
        host, port = self._servers[service].server_address[:2]
        return f"http://{host}:{port}"

    @property
    def pms_url(self) -> str:
        return self.url("pms")

    @property
    def owner_token(self) -> str:
        return self.scenario.owner.server_token or ""

    @property
    def rss_url(self) -> str:
        return f"{self.url('rss')}/{self.scenario.rss_id}"

    def env(self) -> dict[str, str]:
        """The CACHERR_* overrides (SPEC §8) that point cacherr at this fake."""
        return {
            "CACHERR_PLEXTV_URL": self.url("plextv"),
            "CACHERR_DISCOVER_URL": self.url("discover"),
            "CACHERR_METADATA_URL": self.url("metadata"),
            "CACHERR_TRAKT_URL": self.url("trakt"),
        }

    def config(self, rules, *, state_dir, paths=None, users=None, timeout_seconds: float = 5.0,
               watchlist_rss: bool = True, user_tokens: dict | None = None, trakt: bool = True):
        """A `cacherr.config.model.Config` pointing at this fake (for tests and the demo):
        `rules` are `Rule`s; `paths` defaults to /data/media -> /mnt/user/media."""
        return make_config(self.pms_url, self.owner_token, rules, state_dir=state_dir, paths=paths,
                           users=users, timeout_seconds=timeout_seconds,
                           watchlist_rss=self.rss_url if watchlist_rss else None,
                           user_tokens=user_tokens,
                           trakt_client_id=self.scenario.trakt_client_id if trakt else None)

    def select(self, rules, state_dir, *, now: float | None = None, retry=None,
               history_since: float | None = None, users_max_age_seconds: float | None = None,
               users_memory=None, **config):
        """Run `select_all` against this fake with quick retries (for tests and benchmarks)."""
        from cacherr.sources.http import RetryPolicy
        from cacherr.sources.select import select_all

        retry = retry or RetryPolicy(attempts=3, backoff_seconds=0.01, max_wait_seconds=0.05)
        return select_all(self.config(rules, state_dir=state_dir, **config), state_dir,
                          self.scenario.now if now is None else now, env=self.env(), retry=retry,
                          history_since=history_since, users_max_age_seconds=users_max_age_seconds,
                          users_memory=users_memory)

    # ------------------------------------------------------------------ control API

    def start_session(self, user: str, rating_key: int, state: str = "playing",
                      offset_ms: int = 60_000, **shape) -> None:
        """Start a playback. `shape` (see `fake_sessions`): transcode=True (the Part then
        names no file), version=N (which Media plays), media_id=N (a Media id the library
        no longer has), kind="live"|"track"|"clip" (with title, file, section), no_user=True."""
        with self.lock:
            session = {"user": user, "rating_key": int(rating_key), "state": state,
                       "offset_ms": offset_ms, **shape}
            self.scenario.sessions.append(session)
            self.session_key(session)
        self.alerts.playing(session)

    def stop_session(self, user: str, rating_key: int | None = None) -> None:
        with self.lock:
            ending = [s for s in self.scenario.sessions if s["user"] == user and (
                rating_key is None or s["rating_key"] == int(rating_key))]
            self.scenario.sessions = [s for s in self.scenario.sessions if s not in ending]
        for session in ending:
            self.alerts.playing(dict(session, session_key=self.session_key(session)),
                                state="stopped")

    def session_key(self, session: dict) -> int:
        """A session's key, stable while it lives (given on first use, like PMS's)."""
        with self.lock:
            if "session_key" not in session:
                self._session_counter += 1
                session["session_key"] = self._session_counter
            return session["session_key"]

    def _live_sessions(self) -> list[dict]:
        with self.lock:
            return [dict(s, session_key=self.session_key(s)) for s in self.scenario.sessions]

    def mark_watched(self, user: str, rating_key: int, at: float | None = None) -> None:
        with self.lock:
            at = self.scenario.now if at is None else at
            self.scenario.viewed.setdefault(user, {})[int(rating_key)] = at
            self.scenario.progress.get(user, {}).pop(int(rating_key), None)

    def set_progress(self, user: str, rating_key: int, offset_ms: int, at: float | None = None) -> None:
        with self.lock:
            at = self.scenario.now if at is None else at
            self.scenario.progress.setdefault(user, {})[int(rating_key)] = (int(offset_ms), at)

    def watchlist_add(self, user: str, guid: str) -> None:
        with self.lock:
            self.scenario.watchlists.setdefault(user, []).insert(0, guid)

    def watchlist_remove(self, user: str, guid: str) -> None:
        with self.lock:
            items = self.scenario.watchlists.get(user, [])
            if guid in items:
                items.remove(guid)

    def fail(self, service: str, path_prefix: str = "/", status: int = 500,
             times: int | None = None, retry_after: float | None = None,
             token: str | None = None) -> None:
        """Answer requests to `service` whose path starts with `path_prefix` (and, if given,
        that carry `token`) with `status`, `times` times or until cleared."""
        with self.lock:
            self.faults.append(Fault(service, path_prefix, status, times, retry_after, token=token))

    def hang(self, service: str, path_prefix: str = "/", seconds: float = 30.0,
             times: int | None = None) -> None:
        """Hold matching requests for `seconds` (or until release_hangs/stop), then answer."""
        with self.lock:
            self._release.clear()
            self.faults.append(Fault(service, path_prefix, 0, times, hang_seconds=seconds))

    def release_hangs(self) -> None:
        self._release.set()

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()
        self._release.set()

    def count(self, service: str | None = None, path_prefix: str = "") -> int:
        with self.lock:
            return sum(1 for r in self.requests
                       if (service is None or r.service == service) and r.path.startswith(path_prefix))

    def reset_counts(self) -> None:
        with self.lock:
            self.requests.clear()

    # ------------------------------------------------------------------ model helpers

    def _index(self) -> None:
        with self.lock:
            self.nodes: dict[int, _Node] = {}
            for movie in self.scenario.movies:
                self.nodes[movie.rating_key] = _Node("movie", movie, movie.section)
            for show in self.scenario.shows:
                self.nodes[show.rating_key] = _Node("show", show, show.section)
                for season in show.seasons:
                    self.nodes[season.rating_key] = _Node("season", season, show.section, show)
                    for episode in season.episodes:
                        self.nodes[episode.rating_key] = _Node("episode", episode, show.section,
                                                               show, season)
            self.guid_to_key = {n.obj.guid: k for k, n in self.nodes.items()
                                if n.type in ("movie", "show")}

    def add_movie(self, movie: Movie) -> None:
        """Add a movie to the library (as a scan would, telling the alert stream)."""
        with self.lock:
            self.scenario.movies.append(movie)
            self.scenario.__post_init__()
            self._index()
        self.alerts.item_added(movie.rating_key, "movie", movie.section, movie.title,
                               int(movie.added_at))

    def user_by_server_token(self, token: str | None):
        for user in self.scenario.users:
            if token and user.server_token == token:
                return user
        extra = self.scenario.extra_server_tokens
        if token in extra:
            return self.scenario.user(extra[token])
        return None

    def user_by_account_token(self, token: str | None):
        for user in self.scenario.users:
            if token and user.account_token == token:
                return user
        return None

    def account_id(self, user) -> int:
        return 1 if user.kind == "owner" else user.id

    def episodes_of(self, show: Show) -> list[tuple[Season, Episode]]:
        return [(s, e) for s in sorted(show.seasons, key=lambda s: s.index)
                for e in sorted(s.episodes, key=lambda e: e.index)]

    def on_deck(self, user) -> list[int]:
        """Plex's On Deck for a user: items in progress, and the next episode of shows
        watched, newest activity first."""
        viewed = self.scenario.viewed.get(user.name, {})
        progress = self.scenario.progress.get(user.name, {})
        entries: dict[int, float] = {}
        for rk, (_offset, at) in progress.items():
            if rk in self.nodes:
                entries[rk] = at
        for show in self.scenario.shows:
            episodes = self.episodes_of(show)
            last_index, last_at = -1, 0.0
            for i, (_s, e) in enumerate(episodes):
                at = viewed.get(e.rating_key) or progress.get(e.rating_key, (0, 0.0))[1]
                if at:
                    last_index, last_at = i, max(last_at, at)
            if last_index < 0:
                continue
            if episodes[last_index][1].rating_key in progress:
                continue  # already listed as in progress
            for _s, e in episodes[last_index + 1:]:
                if e.rating_key not in viewed:
                    entries[e.rating_key] = last_at
                    break
        return [rk for rk, _ in sorted(entries.items(), key=lambda kv: -kv[1])]

    def history(self) -> list[tuple[str, int, float]]:
        rows = [(name, rk, at) for name, seen in self.scenario.viewed.items() for rk, at in seen.items()]
        return sorted(rows, key=lambda r: -r[2])


# ---------------------------------------------------------------------- XML building


def _b(value: bool) -> str:
    return "1" if value else "0"


def _container(**attrs) -> ET.Element:
    root = ET.Element("MediaContainer")
    for k, v in attrs.items():
        if v is not None:
            root.set(k, str(v))
    return root


def _versions_xml(parent: ET.Element, versions, rating_key: int, selected: bool = False,
                  duration_ms: int = 1_500_000) -> None:
    for vi, version in enumerate(versions):
        media = ET.SubElement(parent, "Media", {
            "id": str(rating_key * 10 + vi), "duration": str(duration_ms), "videoResolution": version.resolution,
            "container": "mkv", "videoCodec": "hevc" if version.resolution == "4k" else "h264",
            "audioCodec": "aac", "width": "3840" if version.resolution == "4k" else "1920",
            "height": "2160" if version.resolution == "4k" else "1080",
        })
        if selected and vi == 0:
            media.set("selected", "1")
        for pi, (path, size) in enumerate(version.files):
            part_id = rating_key * 100 + vi * 10 + pi
            ET.SubElement(media, "Part", {
                "id": str(part_id), "key": f"/library/parts/{part_id}/1690000000/file.mkv",
                "duration": str(duration_ms), "file": path, "size": str(size), "container": "mkv",
            })


class _Renderer:
    """Renders scenario objects as the XML PMS sends, from one user's point of view."""

    def __init__(self, fake: FakePlex, user) -> None:
        self.fake = fake
        self.user = user
        self.sections = {s.key: s for s in fake.scenario.sections}

    def _state(self, el: ET.Element, rk: int) -> None:
        if self.user is None:
            return
        viewed = self.fake.scenario.viewed.get(self.user.name, {})
        progress = self.fake.scenario.progress.get(self.user.name, {})
        if rk in viewed:
            el.set("viewCount", "1")
            el.set("lastViewedAt", str(int(viewed[rk])))
        if rk in progress:
            el.set("viewOffset", str(progress[rk][0]))
            el.set("lastViewedAt", str(int(progress[rk][1])))

    def _section_attrs(self, el: ET.Element, section_key: int) -> None:
        section = self.sections[section_key]
        el.set("librarySectionID", str(section.key))
        el.set("librarySectionTitle", section.title)
        el.set("librarySectionKey", f"/library/sections/{section.key}")

    def item(self, rk: int, *, full: bool = True, on_deck: bool = False) -> ET.Element:
        node = self.fake.nodes[rk]
        if node.type == "movie":
            return self.movie(node.obj)
        if node.type == "show":
            return self.show(node.obj, on_deck=on_deck)
        if node.type == "season":
            return self.season(node.show, node.obj)
        return self.episode(node.show, node.season, node.obj)

    def _labels_guids(self, el: ET.Element, labels, guids) -> None:
        for label in labels:
            ET.SubElement(el, "Label", {"id": str(abs(hash(label)) % 100000), "tag": label})
        for guid in guids:
            ET.SubElement(el, "Guid", {"id": guid})

    def movie(self, movie: Movie) -> ET.Element:
        el = ET.Element("Video", {
            "ratingKey": str(movie.rating_key), "key": f"/library/metadata/{movie.rating_key}",
            "guid": movie.guid, "type": "movie", "title": movie.title, "titleSort": movie.title,
            "year": str(movie.year), "duration": "5400000", "originallyAvailableAt": movie.released,
            "addedAt": str(int(movie.added_at)), "updatedAt": str(int(movie.updated_at)),
        })
        self._section_attrs(el, movie.section)
        self._state(el, movie.rating_key)
        _versions_xml(el, movie.versions, movie.rating_key, duration_ms=5_400_000)
        self._labels_guids(el, movie.labels, movie.external_guids)
        return el

    def show(self, show: Show, on_deck: bool = False) -> ET.Element:
        episodes = self.fake.episodes_of(show)
        viewed = self.fake.scenario.viewed.get(self.user.name, {}) if self.user else {}
        el = ET.Element("Directory", {
            "ratingKey": str(show.rating_key), "key": f"/library/metadata/{show.rating_key}/children",
            "guid": show.guid, "type": "show", "title": show.title, "year": str(show.year),
            "index": "1", "leafCount": str(len(episodes)), "childCount": str(len(show.seasons)),
            "viewedLeafCount": str(sum(1 for _s, e in episodes if e.rating_key in viewed)),
            "addedAt": str(int(show.added_at)), "updatedAt": str(int(show.updated_at)),
            "originallyAvailableAt": f"{show.year}-01-01",
        })
        self._section_attrs(el, show.section)
        self._labels_guids(el, show.labels, show.external_guids)
        ET.SubElement(el, "Location", {"path": f"{self.sections[show.section].location}/{show.title}"})
        if on_deck and self.user is not None:
            deck = [rk for rk in self.fake.on_deck(self.user)
                    if self.fake.nodes[rk].show is show]
            if deck:
                holder = ET.SubElement(el, "OnDeck")
                holder.append(self.item(deck[0]))
        return el

    def season(self, show: Show, season: Season) -> ET.Element:
        el = ET.Element("Directory", {
            "ratingKey": str(season.rating_key), "key": f"/library/metadata/{season.rating_key}/children",
            "parentRatingKey": str(show.rating_key), "guid": f"{show.guid}/season/{season.index}",
            "parentGuid": show.guid, "type": "season", "title": f"Season {season.index}",
            "parentKey": f"/library/metadata/{show.rating_key}", "parentTitle": show.title,
            "index": str(season.index), "parentIndex": "1", "leafCount": str(len(season.episodes)),
            "addedAt": str(int(show.added_at)), "updatedAt": str(int(show.updated_at)),
        })
        self._section_attrs(el, show.section)
        return el

    def episode(self, show: Show, season: Season, episode: Episode) -> ET.Element:
        el = ET.Element("Video", {
            "ratingKey": str(episode.rating_key), "key": f"/library/metadata/{episode.rating_key}",
            "parentRatingKey": str(season.rating_key), "grandparentRatingKey": str(show.rating_key),
            "guid": f"{show.guid}/episode/{season.index}/{episode.index}",
            "parentGuid": f"{show.guid}/season/{season.index}", "grandparentGuid": show.guid,
            "type": "episode", "title": episode.title,
            "grandparentKey": f"/library/metadata/{show.rating_key}",
            "parentKey": f"/library/metadata/{season.rating_key}",
            "grandparentTitle": show.title, "parentTitle": f"Season {season.index}",
            "index": str(episode.index), "parentIndex": str(season.index), "year": str(show.year),
            "duration": str(episode.duration_ms), "originallyAvailableAt": episode.released,
            "addedAt": str(int(episode.added_at)), "updatedAt": str(int(episode.added_at)),
        })
        self._section_attrs(el, show.section)
        self._state(el, episode.rating_key)
        _versions_xml(el, episode.versions, episode.rating_key, duration_ms=episode.duration_ms)
        self._labels_guids(el, [], episode.external_guids)
        return el


# ---------------------------------------------------------------------- HTTP handler


def _handler_for(fake: FakePlex, service: str):
    class Handler(_Handler):
        pass

    Handler.fake = fake
    Handler.service = service
    return Handler


class _Handler(BaseHTTPRequestHandler):
    fake: FakePlex
    service: str
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stalls

    def log_message(self, format, *args):  # noqa: A002 - silence stderr access logs
        pass

    # -- plumbing

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        self.path_only = unquote(split.path)
        self.query = parse_qs(split.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        if self.path_only.startswith("/_fakeplex/"):
            self._control(self.path_only[len("/_fakeplex/"):])
            return
        token = self.headers.get("X-Plex-Token") or (self.query.get("X-Plex-Token") or [None])[0]
        fake = self.fake
        with fake.lock:
            fake.requests.append(RecordedRequest(self.service, method, self.path_only, self.query, token))
            fault = None
            for f in fake.faults:
                if f.service == self.service and self.path_only.startswith(f.path_prefix) and (
                        f.times is None or f.hits < f.times) and f.token in (None, token):
                    f.hits += 1
                    fault = f
                    break
        if fault is not None and fault.hang_seconds:
            fake._release.wait(fault.hang_seconds)
        elif fault is not None:
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            self._send(fault.status, b"<html>fault injected</html>", "text/html", headers)
            return
        if self.service == "pms" and self.path_only == ALERTS_PATH:
            self._alert_stream(token)
            return
        try:
            with fake.lock:
                getattr(self, _SERVICE_METHODS[self.service])(method, token)
        except _HTTPError as error:
            self._send(error.status, error.body.encode(), "text/html")

    def _alert_stream(self, token: str | None) -> None:
        """The PMS notification websocket: the owner's token only (it shows every session)."""
        user = self.fake.user_by_server_token(token)
        if user is None or user.kind != "owner":
            self._send(401, b"<html><head><title>Unauthorized</title></head></html>", "text/html")
            return
        self.fake.alerts.serve(self)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _xml(self, root: ET.Element, headers: dict | None = None) -> None:
        body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")
        self._send(200, body, "application/xml;charset=utf-8", headers)

    def _json(self, data, headers: dict | None = None) -> None:
        self._send(200, json.dumps(data).encode(), "application/json", headers)

    def _q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def _paging(self) -> tuple[int, int | None] | None:
        """(start, size) of a paged request, or None when the client asked for everything.

        PMS reads the two values from headers or from query parameters; a query-parameter
        size without a start is ignored, as PMS ignores it."""
        start = self.headers.get("X-Plex-Container-Start")
        size = self.headers.get("X-Plex-Container-Size")
        if start is None and size is None and self._q("X-Plex-Container-Start") is not None:
            start, size = self._q("X-Plex-Container-Start"), self._q("X-Plex-Container-Size")
        if start is None and size is None:
            return None
        return int(start or 0), (int(size) if size is not None else None)

    def _page(self, elements: list, render=None, **attrs) -> None:
        """Send one page of `elements` (rendered by `render` when given: only the page is).

        Like PMS, a paged answer says `size` (this page), `totalSize` and `offset`; an
        unpaged one carries everything and only `size`, which is then the total."""
        paging = self._paging()
        if paging is None:
            chunk = elements
            root = _container(size=len(chunk), **attrs)
        else:
            start, size = paging
            chunk = elements[start:] if size is None else elements[start:start + size]
            root = _container(size=len(chunk), totalSize=len(elements), offset=start, **attrs)
        for el in chunk:
            root.append(render(el) if render is not None else el)
        self._xml(root)

    def _control(self, name: str) -> None:
        allowed = {"start_session", "stop_session", "mark_watched", "set_progress", "watchlist_add",
                   "watchlist_remove", "fail", "hang", "clear_faults", "release_hangs", "count",
                   "reset_counts"}
        if name not in allowed:
            self._send(404, b"unknown control", "text/plain")
            return
        kwargs = json.loads(self.body or b"{}")
        result = getattr(self.fake, name)(**kwargs)
        self._json({"result": result})

    # -- Plex Media Server

    def _pms(self, method: str, token: str | None) -> None:
        fake = self.fake
        scenario = fake.scenario
        user = fake.user_by_server_token(token)
        if user is None:
            raise _HTTPError(401, "<html><head><title>Unauthorized</title></head></html>")
        r = _Renderer(fake, user)
        path = self.path_only.rstrip("/") or "/"
        parts = path.strip("/").split("/")
        owner = user.kind == "owner"
        if path == "/":
            root = _container(
                size=0, friendlyName=scenario.server_name, machineIdentifier=scenario.machine_identifier,
                version="1.41.3.9314-a0bfb8370", platform="Linux", platformVersion="6.1.0",
                myPlex="1", myPlexUsername=f"{scenario.owner.name}@example.com", multiuser="1",
                allowSharing="1", allowSync="1", transcoderActiveVideoSessions="0",
                updatedAt=int(scenario.now))
            self._xml(root)
        elif path == "/library":
            root = _container(size=3, identifier="com.plexapp.plugins.library", title1="Plex Library")
            for key in ("sections", "recentlyAdded", "onDeck"):
                ET.SubElement(root, "Directory", {"key": key, "title": key})
            self._xml(root)
        elif path == "/library/sections":
            root = _container(size=len(scenario.sections), title1="Plex Library")
            for s in scenario.sections:
                d = ET.SubElement(root, "Directory", {
                    "key": str(s.key), "type": s.type, "title": s.title,
                    "agent": "tv.plex.agents.movie" if s.type == "movie" else "tv.plex.agents.series",
                    "scanner": "Plex Movie", "language": "en-US", "uuid": f"uuid-{s.key}",
                    "updatedAt": str(int(scenario.now)), "createdAt": "1690000000",
                    "scannedAt": str(int(scenario.now)), "allowSync": "1", "filters": "1",
                    "refreshing": "0", "content": "1", "directory": "1", "hidden": str(s.hidden)})
                ET.SubElement(d, "Location", {"id": str(s.key), "path": s.location})
            self._xml(root)
        elif path == "/library/onDeck" or (len(parts) == 4 and parts[:2] == ["library", "sections"]
                                           and parts[3] == "onDeck"):
            section = int(parts[2]) if len(parts) == 4 else None
            if section is not None and section not in r.sections:
                raise _HTTPError(404, "no such section")
            # the server-wide list leaves out libraries hidden from Home (PlexCache-D #151)
            shown = {s.key for s in scenario.sections if not s.hidden}
            keys = [rk for rk in fake.on_deck(user)
                    if fake.nodes[rk].section == section or (section is None and fake.nodes[rk].section in shown)]
            attrs = {} if section is None else {"librarySectionID": section,
                                                "librarySectionTitle": r.sections[section].title}
            self._page([r.item(rk) for rk in keys], mixedParents="1", **attrs)
        elif path == "/hubs/continueWatching/items":
            progress = scenario.progress.get(user.name, {})
            keys = sorted(progress, key=lambda rk: -progress[rk][1])
            self._page([r.item(rk) for rk in keys if rk in fake.nodes])
        elif len(parts) == 4 and parts[:2] == ["library", "sections"] and parts[3] == "all":
            self._section_all(r, int(parts[2]))
        elif len(parts) == 4 and parts[:2] == ["library", "sections"] and parts[3] == "label":
            labels = sorted({label for n in fake.nodes.values() if n.section == int(parts[2])
                             and n.type in ("movie", "show") for label in n.obj.labels})
            root = _container(size=len(labels))
            for label in labels:
                ET.SubElement(root, "Directory", {
                    "key": str(_label_id(label)), "title": label,
                    "fastKey": f"/library/sections/{parts[2]}/all?label={_label_id(label)}"})
            self._xml(root)
        elif len(parts) == 4 and parts[:2] == ["library", "sections"] and parts[3] == "collections":
            self._xml(_container(size=0))
        elif parts[:2] == ["library", "metadata"] and len(parts) >= 3:
            self._library_metadata(r, user, parts)
        elif path == "/library/recentlyAdded":
            keys = [rk for rk, n in fake.nodes.items() if n.type in ("movie", "episode")]
            keys.sort(key=lambda rk: -fake.nodes[rk].obj.added_at)
            self._page(keys, r.item)
        elif path == "/library/all":
            guid = self._q("guid")
            keys = [rk for rk, n in fake.nodes.items() if n.type in ("movie", "show")
                    and (guid is None or n.obj.guid == guid)]
            self._page([r.item(rk) for rk in keys])
        elif path == "/status/sessions":
            if not owner:
                raise _HTTPError(401, "sessions need the admin token")
            self._sessions(r)
        elif path == "/status/sessions/history/all":
            self._history(user)
        elif path in ("/:/scrobble", "/:/unscrobble", "/:/progress"):
            rk = int(self._q("key") or 0)
            if path == "/:/scrobble":
                fake.mark_watched(user.name, rk)
            elif path == "/:/unscrobble":
                scenario.viewed.get(user.name, {}).pop(rk, None)
            else:
                fake.set_progress(user.name, rk, int(self._q("time") or 0))
            self._xml(_container(size=0))
        else:
            raise _HTTPError(404, "<html>404 Not Found</html>")

    def _section_all(self, r: _Renderer, section_key: int) -> None:
        fake = self.fake
        if section_key not in r.sections:
            raise _HTTPError(404, "no such section")
        if self._q("includeMeta") == "1":
            section = r.sections[section_key]
            root = _container(size=0, totalSize=0, librarySectionID=section_key)
            root.append(_meta(section))
            self._xml(root)
            return
        section = r.sections[section_key]
        type_number = int(self._q("type") or (1 if section.type == "movie" else 2))
        wanted_type = {v: k for k, v in TYPE_NUMBERS.items()}[type_number]
        nodes = [(rk, n) for rk, n in fake.nodes.items() if n.section == section_key and n.type == wanted_type]
        filters = {}
        for key, values in self.query.items():
            filters[key] = values[0]
        result = []
        for rk, n in nodes:
            if not self._matches(n, filters):
                continue
            result.append(rk)
        result.sort(key=lambda rk: (fake.nodes[rk].obj.title, rk) if wanted_type != "episode" else rk)
        for sort in reversed((filters.get("sort") or "").split(",")):
            field_name, _, direction = sort.rpartition(".")[2].partition(":")
            attribute = {"addedAt": "added_at", "updatedAt": "updated_at", "titleSort": "title",
                         "title": "title", "index": "index"}.get(field_name)
            if attribute:
                result.sort(key=lambda rk, a=attribute: getattr(fake.nodes[rk].obj, a, 0),
                            reverse=direction == "desc")
        render = r.item if wanted_type != "episode" else (lambda rk: _without_section(r.item(rk)))
        # episode listings name their library on the container only (as PMS's recentlyAdded
        # and children listings do); movie and show listings carry it on both
        self._page(result, render, librarySectionID=section_key, librarySectionTitle=section.title)

    def _matches(self, node: _Node, filters: dict[str, str]) -> bool:
        obj = node.obj
        added = getattr(obj, "added_at", 0.0)
        updated = getattr(obj, "updated_at", added)
        for key, value in filters.items():
            # `addedAt>>=5` parses as key `addedAt>>`, value `5` (PMS: "is after")
            field_name, after = key.rstrip(">="), key.endswith(">") or key.endswith(">=")
            value = value.lstrip("=")
            if after and field_name == "addedAt" and not added >= float(value):
                return False
            if after and field_name == "updatedAt" and not max(updated, added) >= float(value):
                return False
            if key == "label":
                ids = {_label_id(label) for label in getattr(obj, "labels", [])}
                if not {int(v) for v in value.split(",")} & ids:
                    return False
            if key == "guid" and getattr(obj, "guid", None) != value:
                return False
            if key in ("id", "show.id", "season.id", "episode.id"):
                # rating keys; a comma means OR; `show.id` on an episode listing is its show
                holder = {"show.id": node.show, "season.id": node.season}.get(key, obj)
                wanted = {int(v) for v in value.split(",") if v.strip().isdigit()}
                if holder is None or holder.rating_key not in wanted:
                    return False
        return True

    def _library_metadata(self, r: _Renderer, user, parts: list[str]) -> None:
        fake = self.fake
        try:
            keys = [int(k) for k in parts[2].split(",")]
        except ValueError:
            raise _HTTPError(400, "bad key") from None
        keys = [k for k in keys if k in fake.nodes]
        if not keys:
            raise _HTTPError(404, "not found")
        if len(parts) == 3:
            on_deck = self._q("includeOnDeck") == "1"
            self._page([r.item(k, on_deck=on_deck) for k in keys])
            return
        node = fake.nodes[keys[0]]
        child = parts[3]
        section = r.sections[node.section]
        where = {"librarySectionID": section.key, "librarySectionTitle": section.title}
        if child == "children" and node.type == "show":
            seasons = sorted(node.obj.seasons, key=lambda s: s.index)
            self._page([r.season(node.obj, s) for s in seasons], key=node.obj.rating_key,
                       parentTitle=node.obj.title, viewGroup="season", **where)
        elif child == "children" and node.type == "season":
            episodes = sorted(node.obj.episodes, key=lambda e: e.index)
            self._page([_without_section(r.episode(node.show, node.obj, e)) for e in episodes],
                       key=node.obj.rating_key, parentIndex=node.obj.index, viewGroup="episode",
                       grandparentTitle=node.show.title, grandparentRatingKey=node.show.rating_key, **where)
        elif child == "allLeaves" and node.type == "show":
            self._page([_without_section(r.episode(node.obj, s, e)) for s, e in fake.episodes_of(node.obj)],
                       key=node.obj.rating_key, viewGroup="episode", mixedParents="1", **where)
        else:
            raise _HTTPError(404, "not found")

    def _sessions(self, r: _Renderer) -> None:
        elements = []
        for session in self.fake.scenario.sessions:
            el = render_session(self.fake, r, session, self.fake.session_key(session))
            if el is not None:
                elements.append(el)
        self._page(elements)

    def _history(self, user) -> None:
        """Plays, newest first. Like PMS, a play of an item deleted since keeps only
        `historyKey`, `title`, `type`, `viewedAt`, `accountID` and `librarySectionID`
        (no `ratingKey`, no `key`: plexopedia_history.xml)."""
        fake = self.fake
        account = self._q("accountID")
        since = None
        for key, values in self.query.items():
            if key.startswith("viewedAt>"):
                since = float(values[0].lstrip("="))
        rk_filter = self._q("metadataItemID")
        section_filter = self._q("librarySectionID")
        rows = [(at, name, rk, None) for name, rk, at in fake.history()]
        rows += [(float(d["viewed_at"]), d["user"], None, d) for d in fake.scenario.deleted_history]
        rows.sort(key=lambda row: -row[0])
        elements = []
        for number, (at, name, rk, deleted) in enumerate(rows, 1):
            person = fake.scenario.user(name)
            account_id = fake.account_id(person)
            if user.kind != "owner" and person is not user:
                continue  # a shared token only sees its own history
            if account is not None and int(account) != account_id:
                continue
            if since is not None and at < since:
                continue
            node = fake.nodes.get(rk) if rk is not None else None
            if rk_filter is not None and (node is None or int(rk_filter) != rk):
                continue
            attrs = {"historyKey": f"/status/sessions/history/{number}", "viewedAt": str(int(at)),
                     "accountID": str(account_id)}
            if node is None:
                deleted = deleted or {"title": "Deleted item", "type": "movie", "section": 1}
                attrs.update({"librarySectionID": str(deleted.get("section", 1)),
                              "title": deleted["title"], "type": deleted.get("type", "movie")})
            else:
                attrs.update({"key": f"/library/metadata/{rk}", "ratingKey": str(rk),
                              "librarySectionID": str(node.section), "type": node.type,
                              "title": node.obj.title, "deviceID": "5"})
                if node.type == "episode":
                    attrs.update({"grandparentTitle": node.show.title,
                                  "parentTitle": f"Season {node.season.index}",
                                  "grandparentKey": f"/library/metadata/{node.show.rating_key}",
                                  "parentKey": f"/library/metadata/{node.season.rating_key}",
                                  "index": str(node.obj.index), "parentIndex": str(node.season.index)})
            if section_filter is not None and attrs["librarySectionID"] != str(section_filter):
                continue
            elements.append(ET.Element("Video", attrs))
        self._page(elements)

    # -- plex.tv

    def _plextv(self, method: str, token: str | None) -> None:
        fake = self.fake
        scenario = fake.scenario
        path = self.path_only
        account = fake.user_by_account_token(token)
        if account is None:
            raise _HTTPError(401, "<html>401 Unauthorized</html>")
        if path == "/api/v2/user":
            self._xml(_account_xml(account, scenario))
        elif path == "/api/v2/ping":
            self._xml(ET.Element("pong"))
        elif path == "/api/users" or path == "/api/users/":
            if account.kind != "owner":
                self._xml(_container(size=0))
                return
            others = [u for u in scenario.users if u.kind != "owner"]
            # plex.tv lists everyone the owner shares any server with; the container's
            # machineIdentifier is plex.tv's own, not this server's (ha_plextv_shared_users.xml)
            root = _container(friendlyName="myPlex", identifier="com.plexapp.plugins.myplex",
                              machineIdentifier="85a28b6ea2b35c1a10cbdd967b74117a45e8694f",
                              size=len(others), totalSize=len(others))
            for u in others:
                home = u.kind == "home"
                attrs = {
                    "id": str(u.id), "title": u.name, "username": "" if home else u.name,
                    "email": "" if home else f"{u.name}@example.com",
                    "thumb": f"https://plex.tv/users/{u.uuid}/avatar", "protected": _b(u.restricted),
                    "restricted": _b(u.restricted), "allowSync": "0",
                    "allowCameraUpload": "0", "allowChannels": "0", "allowTuners": "0",
                    "allowSubtitleAdmin": "0", "filterAll": "", "filterMovies": "",
                    "filterMusic": "", "filterPhotos": "", "filterTelevision": "",
                    "recommendationsPlaylistId": ""}
                if home:
                    attrs["home"] = "1"  # friends carry no `home` attribute at all
                el = ET.SubElement(root, "User", attrs)
                for n, machine in enumerate(u.servers if u.servers is not None
                                            else [scenario.machine_identifier]):
                    ET.SubElement(el, "Server", {
                        "id": str(7000 + u.id % 1000 + n), "serverId": str(5001 + n),
                        "machineIdentifier": machine,
                        "name": scenario.server_name if machine == scenario.machine_identifier
                        else f"Other Server {n}",
                        "lastSeenAt": str(int(scenario.now)), "numLibraries": str(len(scenario.sections)),
                        "allLibraries": "1", "owned": "1", "pending": "0"})
            self._xml(root)
        elif path.startswith("/api/servers/") and path.endswith("/shared_servers"):
            if account.kind != "owner" or path.split("/")[3] != scenario.machine_identifier:
                raise _HTTPError(401, "not the owner of this server")
            root = _container(friendlyName="myPlex", identifier="com.plexapp.plugins.myplex",
                              machineIdentifier=scenario.machine_identifier)
            count = 0
            for u in scenario.users:
                if u.kind == "owner" or u.server_token is None or not u.has_server(scenario.machine_identifier):
                    continue
                count += 1
                ET.SubElement(root, "SharedServer", {
                    "id": str(7000 + u.id % 1000), "username": u.name if u.kind == "friend" else "",
                    "email": "", "userID": str(u.id), "accessToken": u.server_token,
                    "name": scenario.server_name, "acceptedAt": "1600000000", "invitedAt": "1599999999",
                    "allowSync": "0", "owned": "0", "allLibraries": "1"})
            root.set("size", str(count))
            self._xml(root)
        elif path.startswith("/api/home/users/") and path.endswith("/switch") and method == "POST":
            user_id = int(path.split("/")[4])
            target = next((u for u in scenario.users if u.id == user_id), None)
            if target is None or target.kind != "home" or account.kind != "owner":
                raise _HTTPError(404, "no such home user")
            el = ET.Element("user", {"id": str(target.id), "uuid": target.uuid, "title": target.name,
                                     "username": "", "email": "",
                                     "authenticationToken": target.account_token or ""})
            self._xml(el)
        elif path == "/api/v2/resources":
            root = ET.Element("resources", {"size": "1"})
            res = ET.SubElement(root, "resource", {
                "name": scenario.server_name, "product": "Plex Media Server",
                "productVersion": "1.41.3.9314-a0bfb8370", "platform": "Linux",
                "platformVersion": "6.1.0", "device": "PC",
                "clientIdentifier": scenario.machine_identifier,
                "createdAt": "2023-01-01T00:00:00Z", "lastSeenAt": "2024-01-01T00:00:00Z",
                "provides": "server", "publicAddress": "127.0.0.1",
                "accessToken": account.server_token or next(
                    (t for t, n in scenario.extra_server_tokens.items() if n == account.name), ""),
                "owned": _b(account.kind == "owner"),
                "home": _b(account.kind == "home"), "synced": "0", "relay": "0", "presence": "1",
                "httpsRequired": "0", "publicAddressMatches": "1", "dnsRebindingProtection": "0",
                "natLoopbackSupported": "0"})
            conns = ET.SubElement(res, "connections")
            host, port = fake._servers["pms"].server_address[:2]
            ET.SubElement(conns, "connection", {"protocol": "http", "address": host, "port": str(port),
                                                "uri": f"http://{host}:{port}", "local": "1",
                                                "relay": "0", "IPv6": "0"})
            self._xml(root)
        else:
            raise _HTTPError(404, "not found")

    # -- Discover and the metadata provider

    def _discover_item(self, guid: str, with_guids: bool) -> ET.Element | None:
        fake = self.fake
        key = fake.guid_to_key.get(guid)
        if key is not None:
            obj = fake.nodes[key].obj
            kind = fake.nodes[key].type
            title, year, guids = obj.title, obj.year, obj.external_guids
            released = getattr(obj, "released", f"{year}-01-01")
        else:
            item = next((d for d in fake.scenario.discover_only if d.guid == guid), None)
            if item is None:
                return None
            kind, title, year, guids, released = item.type, item.title, item.year, item.external_guids, item.released
        hex_key = guid.rsplit("/", 1)[-1]
        el = ET.Element("Video" if kind == "movie" else "Directory", {
            "ratingKey": hex_key, "key": f"/library/metadata/{hex_key}", "guid": guid, "type": kind,
            "title": title, "year": str(year), "originallyAvailableAt": released,
        })
        if kind == "show":
            el.set("childCount", str(len(obj.seasons)) if key is not None else "1")
            el.set("leafCount", str(len(fake.episodes_of(obj))) if key is not None else "1")
        if with_guids:
            for g in guids:
                ET.SubElement(el, "Guid", {"id": g})
        return el

    def _discover(self, method: str, token: str | None) -> None:
        fake = self.fake
        account = fake.user_by_account_token(token)
        if account is None:
            raise _HTTPError(401, "unauthorized")
        parts = self.path_only.strip("/").split("/")
        if parts[:3] != ["library", "sections", "watchlist"]:
            raise _HTTPError(404, "Section not found")
        with_guids = self._q("includeGuids") == "1"
        type_filter = self._q("type")
        elements = []
        for guid in fake.scenario.watchlists.get(account.name, []):
            el = self._discover_item(guid, with_guids)
            if el is None:
                continue
            if type_filter and TYPE_NUMBERS[el.get("type")] != int(type_filter):
                continue
            if len(parts) > 3 and parts[3] == "released" and el.get("originallyAvailableAt", "") > _today(fake):
                continue
            elements.append(el)
        self._page(elements, identifier="tv.plex.provider.discover")

    def _metadata_provider(self, method: str, token: str | None) -> None:
        fake = self.fake
        if fake.user_by_account_token(token) is None:
            raise _HTTPError(401, "unauthorized")
        path = self.path_only.rstrip("/") or "/"
        if path == "/":
            self._xml(_container(size=0, identifier="tv.plex.provider.metadata"))
            return
        parts = path.strip("/").split("/")
        if parts[:2] == ["library", "metadata"] and len(parts) == 3:
            for guid in list(fake.guid_to_key) + [d.guid for d in fake.scenario.discover_only]:
                if guid.rsplit("/", 1)[-1] == parts[2]:
                    root = _container(size=1, identifier="tv.plex.provider.metadata")
                    root.append(self._discover_item(guid, True))
                    self._xml(root)
                    return
        raise _HTTPError(404, "not found")

    # -- friends' watchlist RSS (JSON form)

    def _rss(self, method: str, token: str | None) -> None:
        fake = self.fake
        scenario = fake.scenario
        if self.path_only.strip("/") != scenario.rss_id:
            raise _HTTPError(404, "no such feed")
        items = []
        for user in scenario.users:
            if user.kind != "friend":
                continue
            for guid in scenario.watchlists.get(user.name, []):
                el = self._discover_item(guid, True)
                if el is None:
                    continue
                guids = [g.get("id") for g in el.findall("Guid")]
                items.append({
                    "title": el.get("title"), "pubDate": "2025-01-01T00:00:00Z",
                    "link": f"https://watch.plex.tv/{el.get('type')}/{el.get('ratingKey')}",
                    "guids": guids, "description": "", "category": el.get("type"),
                    "author": user.uuid, "keywords": [], "credits": [],
                })
        self._json({"title": "Friends' Watchlists", "links": {"self": self.path},
                    "description": "", "items": items})

    # -- Trakt

    def _trakt(self, method: str, token: str | None) -> None:
        scenario = self.fake.scenario
        if self.headers.get("trakt-api-key") != scenario.trakt_client_id:
            raise _HTTPError(403, "invalid api key")
        path = self.path_only.strip("/")
        for suffix in ("/items", "/items/movies", "/items/shows", "/items/movie,show"):
            if path.startswith("users/") and "/lists/" in path and path.endswith(suffix):
                path = path[: -len(suffix)]
        for suffix in ("/movies", "/shows"):
            if path.startswith("users/") and path.endswith("/watchlist" + suffix):
                path = path[: -len(suffix)]
        if path not in scenario.trakt_lists:
            raise _HTTPError(404, "not found")
        items = scenario.trakt_lists[path]
        page = int(self._q("page") or 1)
        limit = int(self._q("limit") or 10)
        chunk = items[(page - 1) * limit: page * limit]
        page_count = max(1, -(-len(items) // limit))
        self._json(chunk, {"X-Pagination-Page": str(page), "X-Pagination-Limit": str(limit),
                           "X-Pagination-Page-Count": str(page_count),
                           "X-Pagination-Item-Count": str(len(items))})


_SERVICE_METHODS = {"pms": "_pms", "plextv": "_plextv", "discover": "_discover",
                    "metadata": "_metadata_provider", "trakt": "_trakt", "rss": "_rss"}


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # a client that timed out on a hung request closed its socket: nothing to report
        pass


class _HTTPError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _meta(section) -> ET.Element:
    """The filter metadata plexapi loads before `section.search(<filter>=...)` (sample B9)."""
    meta = ET.Element("Meta")
    prefix = "" if section.type == "movie" else "show."
    types = [(section.type, 1 if section.type == "movie" else 2)]
    if section.type == "show":
        types.append(("episode", 4))
    for kind, number in types:
        p = prefix if kind == "show" else ("" if kind == "movie" else "episode.")
        el = ET.SubElement(meta, "Type", {"key": f"/library/sections/{section.key}/all?type={number}",
                                          "type": kind, "title": kind.title(), "active": "1"})
        for name, kind_of in (("title", "string"), ("unwatched", "boolean"), ("addedAt", "date"),
                              ("updatedAt", "date"), ("label", "tag")):
            ET.SubElement(el, "Field", {"key": f"{p}{name}", "title": name, "type": kind_of})
            if kind_of in ("boolean", "tag"):
                ET.SubElement(el, "Filter", {"filter": f"{p}{name}", "filterType": kind_of,
                                             "key": f"/library/sections/{section.key}/{name}",
                                             "title": name, "type": "filter"})
        for name in ("titleSort", "addedAt", "updatedAt"):
            ET.SubElement(el, "Sort", {"defaultDirection": "asc", "descKey": f"{p}{name}:desc",
                                       "key": f"{p}{name}", "title": name})
    for kind_of, operators in (("string", ("=", "!=", "==", "!==")), ("boolean", ("=", "!=")),
                               ("date", ("<<=", ">>=")), ("tag", ("=", "!="))):
        field_type = ET.SubElement(meta, "FieldType", {"type": kind_of})
        for op in operators:
            ET.SubElement(field_type, "Operator", {"key": op, "title": op})
    return meta


def make_config(pms_url: str, token: str, rules, *, state_dir, paths=None, users=None,
                timeout_seconds: float = 5.0, watchlist_rss: str | None = None,
                user_tokens: dict | None = None, trakt_client_id: str | None = None):
    """A `cacherr.config.model.Config` for a Plex server at `pms_url` with a symlink-layout
    cache in `state_dir` (for tests against this fake or any other local server)."""
    from pathlib import Path

    from cacherr.config import model

    cache = model.CacheConfig(
        layout="symlink", original="backup", union=None,
        symlink=model.SymlinkLayout(dir=Path(state_dir) / "cache", plex_dir="/cache"),
        max_size=model.Size(percent=80), min_free=model.Size(bytes=0), sidecars="none",
        verify="size", transfers=model.Transfers(), mover_exclude_file=Path(state_dir) / "exclude.txt",
        defer_while_playing="never")
    return model.Config(
        source_path=Path(state_dir) / "rules.yaml",
        plex=model.PlexConfig(url=pms_url, token=token, watchlist_rss=watchlist_rss,
                              user_tokens=dict(user_tokens or {}), timeout_seconds=timeout_seconds),
        paths=tuple(paths if paths is not None else
                    (model.PathMapping(plex="/data/media", host="/mnt/user/media"),)),
        cache=cache,
        users=users if users is not None else model.UsersConfig(include=None),
        rules=tuple(rules),
        trakt=model.TraktConfig(client_id=trakt_client_id),
        schedule=model.ScheduleConfig(), notify=model.NotifyConfig(), server=model.ServerConfig(),
        host=model.HostConfig(), state_dir=Path(state_dir))


def _without_section(el: ET.Element) -> ET.Element:
    """An item as container-level listings send it: its library named only on the container."""
    for name in ("librarySectionID", "librarySectionTitle", "librarySectionKey"):
        el.attrib.pop(name, None)
    return el


def _label_id(label: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(label)) % 100000 + 1


def _today(fake: FakePlex) -> str:
    return date.fromtimestamp(fake.scenario.now).isoformat()


def _account_xml(user, scenario: Scenario) -> ET.Element:
    el = ET.Element("user", {
        "id": str(user.id), "uuid": user.uuid, "username": user.name if user.kind != "home" else "",
        "title": user.name, "email": f"{user.name}@example.com", "friendlyName": user.name,
        "locale": "", "confirmed": "1", "joinedAt": "1500000000", "emailOnlyAuth": "0",
        "hasPassword": "1", "protected": "0", "thumb": f"https://plex.tv/users/{user.uuid}/avatar",
        "authToken": user.account_token or "", "mailingListStatus": "unsubscribed",
        "mailingListActive": "0", "scrobbleTypes": "", "country": "US", "restricted": "0",
        "home": "1", "guest": "0", "homeSize": "2", "homeAdmin": _b(user.kind == "owner"),
        "maxHomeSize": "15", "experimentalFeatures": "0", "twoFactorEnabled": "0",
        "backupCodesCreated": "0"})
    sub = ET.SubElement(el, "subscription", {"active": "1", "subscribedAt": "2023-01-01 00:00:00 UTC",
                                             "status": "Active", "paymentService": "", "plan": "lifetime"})
    ET.SubElement(ET.SubElement(sub, "features"), "feature", {"id": "webhooks"})
    ET.SubElement(el, "profile", {"autoSelectAudio": "1", "defaultAudioLanguage": "en",
                                  "defaultSubtitleLanguage": "en", "autoSelectSubtitle": "0",
                                  "defaultSubtitleAccessibility": "0", "defaultSubtitleForces": "0"})
    ET.SubElement(ET.SubElement(el, "entitlements"), "entitlement", {"id": "all"})
    ET.SubElement(ET.SubElement(el, "roles"), "role", {"id": "plexpass"})
    return el


def serve_forever(scenario: Scenario | None = None) -> None:  # pragma: no cover - manual use
    """Run the fake until interrupted, printing its addresses (for `cacherr demo` and poking).

    `python -m cacherr.testing.fakeplex [ITEMS USERS | SCENARIO.json]`: the small demo,
    a generated one, or one saved with `Scenario.to_dict()`."""
    with FakePlex(scenario) as fake:
        print(json.dumps({"pms": fake.pms_url, "token": fake.owner_token, "rss": fake.rss_url,
                          **fake.env()}, indent=2))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


__all__ = ["FakePlex", "Fault", "RecordedRequest", "Scenario", "SERVICES", "make_config"]

if __name__ == "__main__":  # pragma: no cover
    import sys

    if len(sys.argv) == 3:
        serve_forever(Scenario.generate(items=int(sys.argv[1]), users=int(sys.argv[2])))
    elif len(sys.argv) == 2:
        with open(sys.argv[1]) as handle:
            serve_forever(Scenario.from_dict(json.load(handle)))
    else:
        serve_forever()
