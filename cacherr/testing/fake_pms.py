"""The fake's request handler: one per port, recording each request, applying the faults a
test set, and answering Plex Media Server's routes itself (its library, sessions, history
and the alert stream); plex.tv and the other online services come from `fake_online`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree as ET

from cacherr.testing.fake_online import TYPE_NUMBERS, HTTPError, OnlineServices
from cacherr.testing.fake_sessions import render_session
from cacherr.testing.fake_xml import (
    Renderer,
    container,
    label_id,
    section_meta,
    without_section,
)
from cacherr.testing.fakealerts import PATH as ALERTS_PATH
from cacherr.testing.scenarios import Season, Show

if TYPE_CHECKING:
    from cacherr.testing.fakeplex import FakePlex


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
class Node:
    """A library item as the fake stores it: movie, show, season or episode."""

    type: str
    obj: object
    section: int
    show: Show | None = None
    season: Season | None = None


def handler_for(fake: FakePlex, service: str):
    class Handler(_Handler):
        pass

    Handler.fake = fake
    Handler.service = service
    return Handler


class _Handler(OnlineServices, BaseHTTPRequestHandler):
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
        except HTTPError as error:
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
            root = container(size=len(chunk), **attrs)
        else:
            start, size = paging
            chunk = elements[start:] if size is None else elements[start:start + size]
            root = container(size=len(chunk), totalSize=len(elements), offset=start, **attrs)
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
            raise HTTPError(401, "<html><head><title>Unauthorized</title></head></html>")
        r = Renderer(fake, user)
        path = self.path_only.rstrip("/") or "/"
        parts = path.strip("/").split("/")
        owner = user.kind == "owner"
        if path == "/":
            root = container(
                size=0, friendlyName=scenario.server_name, machineIdentifier=scenario.machine_identifier,
                version="1.41.3.9314-a0bfb8370", platform="Linux", platformVersion="6.1.0",
                myPlex="1", myPlexUsername=f"{scenario.owner.name}@example.com", multiuser="1",
                allowSharing="1", allowSync="1", transcoderActiveVideoSessions="0",
                updatedAt=int(scenario.now))
            self._xml(root)
        elif path == "/library":
            root = container(size=3, identifier="com.plexapp.plugins.library", title1="Plex Library")
            for key in ("sections", "recentlyAdded", "onDeck"):
                ET.SubElement(root, "Directory", {"key": key, "title": key})
            self._xml(root)
        elif path == "/library/sections":
            root = container(size=len(scenario.sections), title1="Plex Library")
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
                raise HTTPError(404, "no such section")
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
            root = container(size=len(labels))
            for label in labels:
                ET.SubElement(root, "Directory", {
                    "key": str(label_id(label)), "title": label,
                    "fastKey": f"/library/sections/{parts[2]}/all?label={label_id(label)}"})
            self._xml(root)
        elif len(parts) == 4 and parts[:2] == ["library", "sections"] and parts[3] == "collections":
            self._xml(container(size=0))
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
                raise HTTPError(401, "sessions need the admin token")
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
            self._xml(container(size=0))
        else:
            raise HTTPError(404, "<html>404 Not Found</html>")

    def _section_all(self, r: Renderer, section_key: int) -> None:
        fake = self.fake
        if section_key not in r.sections:
            raise HTTPError(404, "no such section")
        if self._q("includeMeta") == "1":
            section = r.sections[section_key]
            root = container(size=0, totalSize=0, librarySectionID=section_key)
            root.append(section_meta(section))
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
        render = r.item if wanted_type != "episode" else (lambda rk: without_section(r.item(rk)))
        # episode listings name their library on the container only (as PMS's recentlyAdded
        # and children listings do); movie and show listings carry it on both
        self._page(result, render, librarySectionID=section_key, librarySectionTitle=section.title)

    def _matches(self, node: Node, filters: dict[str, str]) -> bool:
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
                ids = {label_id(label) for label in getattr(obj, "labels", [])}
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

    def _library_metadata(self, r: Renderer, user, parts: list[str]) -> None:
        fake = self.fake
        try:
            keys = [int(k) for k in parts[2].split(",")]
        except ValueError:
            raise HTTPError(400, "bad key") from None
        keys = [k for k in keys if k in fake.nodes]
        if not keys:
            raise HTTPError(404, "not found")
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
            self._page([without_section(r.episode(node.show, node.obj, e)) for e in episodes],
                       key=node.obj.rating_key, parentIndex=node.obj.index, viewGroup="episode",
                       grandparentTitle=node.show.title, grandparentRatingKey=node.show.rating_key, **where)
        elif child == "allLeaves" and node.type == "show":
            self._page([without_section(r.episode(node.obj, s, e)) for s, e in fake.episodes_of(node.obj)],
                       key=node.obj.rating_key, viewGroup="episode", mixedParents="1", **where)
        else:
            raise HTTPError(404, "not found")

    def _sessions(self, r: Renderer) -> None:
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

class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # a client that timed out on a hung request closed its socket: nothing to report
        pass


_SERVICE_METHODS = {"pms": "_pms", "plextv": "_plextv", "discover": "_discover",
                    "metadata": "_metadata_provider", "trakt": "_trakt", "rss": "_rss"}
