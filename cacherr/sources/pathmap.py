"""Plex paths to host paths (and back): longest prefix wins, nothing is ever guessed."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

_WINDOWS = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


def is_windows_path(path: str) -> bool:
    """True for `D:\\Media\\x.mkv`, `D:/Media/x.mkv` and UNC `\\\\nas\\share\\x.mkv`."""
    return bool(_WINDOWS.match(path))


def _normalise(path: str) -> tuple[str, bool]:
    """Return (comparable form, windows?). Windows paths compare case-insensitively with
    `/` separators; POSIX paths compare exactly, without a trailing slash."""
    if is_windows_path(path):
        return path.replace("\\", "/").rstrip("/").casefold(), True
    return (path.rstrip("/") or "/"), False


def within(path: str, folder: str) -> bool:
    """True when `path` is `folder` or inside it (Windows paths: any case, either slash)."""
    wanted, windows = _normalise(path)
    prefix, prefix_windows = _normalise(folder)
    if windows != prefix_windows:
        return False
    return wanted == prefix or prefix == "/" or wanted.startswith(prefix.rstrip("/") + "/")


class PathMapper:
    """Given the rules file's `paths` (objects with `.plex` and `.host`), map paths."""

    def __init__(self, mappings: Iterable) -> None:
        self.mappings = sorted(mappings, key=lambda m: len(m.plex), reverse=True)

    def to_host(self, plex_path: str) -> str | None:
        """Return the host path for a Plex path, or None when no mapping covers it."""
        wanted, windows = _normalise(plex_path)
        separated = plex_path.replace("\\", "/") if windows else plex_path
        for mapping in self.mappings:
            prefix, prefix_windows = _normalise(mapping.plex)
            if prefix_windows != windows:
                continue
            if wanted == prefix or wanted.startswith(prefix.rstrip("/") + "/") or prefix == "/":
                rest = separated[len(prefix):] if prefix != "/" else separated
                host = mapping.host.rstrip("/") + "/" + rest.lstrip("/")
                return posixpath.normpath(host) if ".." not in rest.split("/") else None
        return None

    def to_plex(self, host_path: str) -> str | None:
        """Return the Plex path for a host path, or None when no mapping covers it."""
        best = None
        for mapping in self.mappings:
            host = mapping.host.rstrip("/") or "/"
            covers = host_path == host or host_path.startswith(host.rstrip("/") + "/")
            if covers and (best is None or len(mapping.host) > len(best.host)):
                best = mapping
        if best is None:
            return None
        rest = host_path[len(best.host.rstrip("/")):].lstrip("/")
        if is_windows_path(best.plex):
            sep = "\\" if "\\" in best.plex else "/"
            return best.plex.rstrip("\\/") + sep + rest.replace("/", sep)
        return posixpath.join(best.plex, rest) if rest else best.plex

    def suggestion(self, plex_path: str, library_roots: Iterable[str] = ()) -> str:
        """Say which `paths` entry the user should add for an unmapped Plex path: the
        library folder that holds it (or its parent folder), with the host side left
        for the user to fill in — never guessed."""
        folder = None
        for root in sorted(library_roots, key=len, reverse=True):
            norm_root, _ = _normalise(root)
            norm_path, _ = _normalise(plex_path)
            if norm_path.startswith(norm_root.rstrip("/") + "/"):
                folder = root
                break
        if folder is None:
            folder = plex_path.replace("\\", "/").rsplit("/", 1)[0] if "/" in plex_path.replace(
                "\\", "/") else plex_path
            if is_windows_path(plex_path) and "\\" in plex_path:
                folder = folder.replace("/", "\\")
        kind = "a Windows-style path" if is_windows_path(plex_path) else "a path"
        return (f"Plex reports {kind} no `paths` entry covers: {plex_path!r}; add "
                f"`- {{plex: {folder!r}, host: <the same folder as this host sees it>}}` to `paths`")
