"""The fake's internet services: plex.tv (users, shared servers, Home switches, the
account), Discover (watchlists), the metadata provider, the friends' watchlist RSS feed
and Trakt. A mixin of the fake's request handler: each method answers one service."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from cacherr.testing.fake_xml import account_xml, container, flag, today

TYPE_NUMBERS = {"movie": 1, "show": 2, "season": 3, "episode": 4}


class HTTPError(Exception):
    """Answer the request with this status and body."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class OnlineServices:
    """plex.tv, Discover, the metadata provider, RSS and Trakt, for `_Handler`."""

    def _plextv(self, method: str, token: str | None) -> None:
        fake = self.fake
        scenario = fake.scenario
        path = self.path_only
        account = fake.user_by_account_token(token)
        if account is None:
            raise HTTPError(401, "<html>401 Unauthorized</html>")
        if path == "/api/v2/user":
            self._xml(account_xml(account, scenario))
        elif path == "/api/v2/ping":
            self._xml(ET.Element("pong"))
        elif path == "/api/users" or path == "/api/users/":
            if account.kind != "owner":
                self._xml(container(size=0))
                return
            others = [u for u in scenario.users if u.kind != "owner"]
            # plex.tv lists everyone the owner shares any server with; the container's
            # machineIdentifier is plex.tv's own, not this server's (ha_plextv_shared_users.xml)
            root = container(friendlyName="myPlex", identifier="com.plexapp.plugins.myplex",
                              machineIdentifier="85a28b6ea2b35c1a10cbdd967b74117a45e8694f",
                              size=len(others), totalSize=len(others))
            for u in others:
                home = u.kind == "home"
                attrs = {
                    "id": str(u.id), "title": u.name, "username": "" if home else u.name,
                    "email": "" if home else f"{u.name}@example.com",
                    "thumb": f"https://plex.tv/users/{u.uuid}/avatar", "protected": flag(u.restricted),
                    "restricted": flag(u.restricted), "allowSync": "0",
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
                raise HTTPError(401, "not the owner of this server")
            root = container(friendlyName="myPlex", identifier="com.plexapp.plugins.myplex",
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
                raise HTTPError(404, "no such home user")
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
                "owned": flag(account.kind == "owner"),
                "home": flag(account.kind == "home"), "synced": "0", "relay": "0", "presence": "1",
                "httpsRequired": "0", "publicAddressMatches": "1", "dnsRebindingProtection": "0",
                "natLoopbackSupported": "0"})
            conns = ET.SubElement(res, "connections")
            host, port = fake._servers["pms"].server_address[:2]
            ET.SubElement(conns, "connection", {"protocol": "http", "address": host, "port": str(port),
                                                "uri": f"http://{host}:{port}", "local": "1",
                                                "relay": "0", "IPv6": "0"})
            self._xml(root)
        else:
            raise HTTPError(404, "not found")

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
            raise HTTPError(401, "unauthorized")
        parts = self.path_only.strip("/").split("/")
        if parts[:3] != ["library", "sections", "watchlist"]:
            raise HTTPError(404, "Section not found")
        with_guids = self._q("includeGuids") == "1"
        type_filter = self._q("type")
        elements = []
        for guid in fake.scenario.watchlists.get(account.name, []):
            el = self._discover_item(guid, with_guids)
            if el is None:
                continue
            if type_filter and TYPE_NUMBERS[el.get("type")] != int(type_filter):
                continue
            if len(parts) > 3 and parts[3] == "released" and el.get("originallyAvailableAt", "") > today(fake):
                continue
            elements.append(el)
        self._page(elements, identifier="tv.plex.provider.discover")

    def _metadata_provider(self, method: str, token: str | None) -> None:
        fake = self.fake
        if fake.user_by_account_token(token) is None:
            raise HTTPError(401, "unauthorized")
        path = self.path_only.rstrip("/") or "/"
        if path == "/":
            self._xml(container(size=0, identifier="tv.plex.provider.metadata"))
            return
        parts = path.strip("/").split("/")
        if parts[:2] == ["library", "metadata"] and len(parts) == 3:
            for guid in list(fake.guid_to_key) + [d.guid for d in fake.scenario.discover_only]:
                if guid.rsplit("/", 1)[-1] == parts[2]:
                    root = container(size=1, identifier="tv.plex.provider.metadata")
                    root.append(self._discover_item(guid, True))
                    self._xml(root)
                    return
        raise HTTPError(404, "not found")

    # -- friends' watchlist RSS (JSON form)

    def _rss(self, method: str, token: str | None) -> None:
        fake = self.fake
        scenario = fake.scenario
        if self.path_only.strip("/") != scenario.rss_id:
            raise HTTPError(404, "no such feed")
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
            raise HTTPError(403, "invalid api key")
        path = self.path_only.strip("/")
        for suffix in ("/items", "/items/movies", "/items/shows", "/items/movie,show"):
            if path.startswith("users/") and "/lists/" in path and path.endswith(suffix):
                path = path[: -len(suffix)]
        for suffix in ("/movies", "/shows"):
            if path.startswith("users/") and path.endswith("/watchlist" + suffix):
                path = path[: -len(suffix)]
        if path not in scenario.trakt_lists:
            raise HTTPError(404, "not found")
        items = scenario.trakt_lists[path]
        page = int(self._q("page") or 1)
        limit = int(self._q("limit") or 10)
        chunk = items[(page - 1) * limit: page * limit]
        page_count = max(1, -(-len(items) // limit))
        self._json(chunk, {"X-Pagination-Page": str(page), "X-Pagination-Limit": str(limit),
                           "X-Pagination-Page-Count": str(page_count),
                           "X-Pagination-Item-Count": str(len(items))})
