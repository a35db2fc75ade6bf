"""How the fake Plex renders scenario objects: the XML bodies PMS and plex.tv send (the
shapes of the real responses in ../shared/plex-captures), from one user's point of view."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

from cacherr.testing.scenarios import Episode, Movie, Scenario, Season, Show

if TYPE_CHECKING:
    from cacherr.testing.fakeplex import FakePlex


def flag(value: bool) -> str:
    return "1" if value else "0"


def container(**attrs) -> ET.Element:
    root = ET.Element("MediaContainer")
    for k, v in attrs.items():
        if v is not None:
            root.set(k, str(v))
    return root


def versions_xml(parent: ET.Element, versions, rating_key: int, selected: bool = False,
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


class Renderer:
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
        versions_xml(el, movie.versions, movie.rating_key, duration_ms=5_400_000)
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
        versions_xml(el, episode.versions, episode.rating_key, duration_ms=episode.duration_ms)
        self._labels_guids(el, [], episode.external_guids)
        return el


# ---------------------------------------------------------------------- HTTP handler



def section_meta(section) -> ET.Element:
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


def without_section(el: ET.Element) -> ET.Element:
    """An item as container-level listings send it: its library named only on the container."""
    for name in ("librarySectionID", "librarySectionTitle", "librarySectionKey"):
        el.attrib.pop(name, None)
    return el


def label_id(label: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(label)) % 100000 + 1


def today(fake: FakePlex) -> str:
    return date.fromtimestamp(fake.scenario.now).isoformat()


def account_xml(user, scenario: Scenario) -> ET.Element:
    el = ET.Element("user", {
        "id": str(user.id), "uuid": user.uuid, "username": user.name if user.kind != "home" else "",
        "title": user.name, "email": f"{user.name}@example.com", "friendlyName": user.name,
        "locale": "", "confirmed": "1", "joinedAt": "1500000000", "emailOnlyAuth": "0",
        "hasPassword": "1", "protected": "0", "thumb": f"https://plex.tv/users/{user.uuid}/avatar",
        "authToken": user.account_token or "", "mailingListStatus": "unsubscribed",
        "mailingListActive": "0", "scrobbleTypes": "", "country": "US", "restricted": "0",
        "home": "1", "guest": "0", "homeSize": "2", "homeAdmin": flag(user.kind == "owner"),
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
