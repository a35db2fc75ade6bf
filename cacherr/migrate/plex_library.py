"""Plex's libraries and their folders (GET /library/sections), to propose `paths`."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import requests

from cacherr.migrate.draft import Draft, PathEntry


class PlexUnreachable(Exception):
    """Plex did not answer, refused the token, or answered something else."""


@dataclass(frozen=True)
class Library:
    key: str
    title: str
    kind: str
    locations: tuple[str, ...]


def fetch_libraries(url: str, token: str, timeout_seconds: float = 5.0) -> list[Library]:
    """Given Plex's URL and a token, return its libraries; raise PlexUnreachable."""
    try:
        response = requests.get(f"{url.rstrip('/')}/library/sections",
                                headers={"X-Plex-Token": token, "Accept": "application/xml"},
                                timeout=timeout_seconds)
    except requests.RequestException as error:
        raise PlexUnreachable(type(error).__name__) from None
    if response.status_code != 200:
        raise PlexUnreachable(f"HTTP {response.status_code}")
    try:
        root = ET.fromstring(response.content)
    except ET.ParseError:
        raise PlexUnreachable("the answer is not Plex's XML") from None
    return [Library(key=str(directory.get("key", "")), title=directory.get("title", ""),
                    kind=directory.get("type", ""),
                    locations=tuple(location.get("path", "") for location in
                                    directory.findall("Location") if location.get("path")))
            for directory in root.findall("Directory")]


def _covers(prefix: str, path: str) -> bool:
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(prefix + "/") or prefix == ""


def apply_libraries(draft: Draft, libraries: list[Library]) -> None:
    """Add a `paths` entry for each library folder no entry covers; name the libraries
    that `valid_sections`-style ids referred to."""
    for library in libraries:
        for location in library.locations:
            location = location.rstrip("/") or "/"
            covering = [entry for entry in draft.paths if _covers(entry.plex, location)]
            if covering:
                draft.paths_comments.append(
                    f"Plex library '{library.title}' ({location}) is covered by "
                    f"{max(covering, key=lambda entry: len(entry.plex)).plex}")
                continue
            if os.path.isdir(location):
                draft.paths.append(PathEntry(location, location, f"Plex library '{library.title}'"))
            else:
                draft.paths.append(PathEntry(
                    location, "/mnt/user" + location,
                    f"Plex library '{library.title}': CHECK the host path (a guess)"))
    if draft.library_ids:
        by_key = {library.key: library.title for library in libraries}
        names = [by_key[key] for key in draft.library_ids if key in by_key]
        missing = [key for key in draft.library_ids if key not in by_key]
        if names:
            for rule in draft.rules:
                rule.options["libraries"] = names
            draft.notes.append(f"valid_sections {', '.join(draft.library_ids)}: written as "
                               "libraries: on every rule")
        if missing:
            draft.skip("valid_sections", ", ".join(missing), "no such library on this Plex")
        draft.library_ids = []
