"""Where things are: host paths taken from the rules file's folder, path mappings that
overlap, branches outside the merged view, a state_dir that keeps a database safe, and
the checks against this host (paths exist, branches are distinct devices, the state
directory's file system). Like `checks`, every lookup is defensive: the document may
still have schema problems.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Any

from cacherr.config.checks import WINDOWS_PATH, Checker
from cacherr.config.errors import Problem
from cacherr.config.yamlpos import Positions

_GLOB_CHARS = re.compile(r"[*?\[]")
# Paths on this host that a relative value is taken relative to the rules file's folder.
# Plex's paths (paths[].plex, symlink.plex_dir) and pinned paths are not host paths.
HOST_PATH_KEYS = (
    ("cache", "union", "view"), ("cache", "union", "fast"), ("cache", "symlink", "dir"),
    ("cache", "mover_exclude_file"), ("state_dir",), ("host", "mover_pid_file"),
    ("host", "emhttp_dir"), ("host", "boot_config_dir"), ("notify", "unraid_script"),
)
# Unraid's user shares are a FUSE file system; the flash drive is mounted at /boot.
_UNRAID_FUSE = ("/mnt/user", "/mnt/user0")
_FLASH = "/boot"




def check_places(document: Any, positions: Positions, *,
                 base: Path | None = None) -> list[Problem]:
    """Problems of where things are that hold on any host. `base` is the rules file's
    folder (the default state_dir is beside it); None when there is no file yet."""
    if not isinstance(document, dict):
        return []
    checker = Checker(document, positions)
    _check_path_mappings(checker)
    _check_branches_outside_view(checker)
    _check_state_dir_path(checker, base)
    return checker.problems


def absolute_paths(document: dict, base: Path) -> dict:
    """Given a substituted document and the rules file's folder, return the document with
    every relative host path made absolute from that folder (never the current one)."""
    def fix(value: Any) -> Any:
        if isinstance(value, str) and value and not value.startswith("/") \
                and not WINDOWS_PATH.match(value):
            return os.path.normpath(os.path.join(base, value))
        return value

    def at(path: tuple) -> tuple[dict | None, str]:
        node: Any = document
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        return (node if isinstance(node, dict) else None), path[-1]

    for path in HOST_PATH_KEYS:
        parent, key = at(path)
        if parent is not None and key in parent:
            parent[key] = fix(parent[key])
    slow = (document.get("cache") or {}).get("union") if isinstance(document.get("cache"),
                                                                     dict) else None
    if isinstance(slow, dict) and isinstance(slow.get("slow"), list):
        slow["slow"] = [fix(pattern) for pattern in slow["slow"]]
    if isinstance(document.get("paths"), list):
        for mapping in document["paths"]:
            if isinstance(mapping, dict) and "host" in mapping:
                mapping["host"] = fix(mapping["host"])
    return document


def _inside(path: str, folder: str) -> bool:
    """True if `path` is `folder` or below it (both normalised, no file system access)."""
    path, folder = os.path.normpath(path), os.path.normpath(folder)
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _check_path_mappings(c: Checker) -> None:
    mappings = c.get("paths")
    if not isinstance(mappings, list):
        return
    seen_plex: dict[str, int] = {}
    seen_host: list[tuple[int, str]] = []
    for index, mapping in enumerate(mappings):
        if not isinstance(mapping, dict):
            continue
        plex, host = mapping.get("plex"), mapping.get("host")
        if isinstance(plex, str) and plex:
            normal = os.path.normpath(plex)
            if normal in seen_plex:
                c.problem(("paths", index, "plex"), f"{plex} is already mapped by paths."
                          f"{seen_plex[normal]}; give each Plex prefix once")
            else:
                seen_plex[normal] = index
        if isinstance(host, str) and host:
            for other, earlier in seen_host:
                if _inside(host, earlier) or _inside(earlier, host):
                    c.problem(("paths", index, "host"),
                              f"{host} overlaps paths.{other}.host {earlier}: a file there "
                              "would have two Plex paths; keep one entry (the longest "
                              "Plex prefix already wins inside a shorter one)")
                    break
            seen_host.append((index, host))


def _check_branches_outside_view(c: Checker) -> None:
    view = c.get("cache", "union", "view")
    if c.get("cache", "layout") != "union" or not isinstance(view, str) or not view:
        return
    fast = c.get("cache", "union", "fast")
    if isinstance(fast, str) and fast and _inside(fast, view):
        what = "is the merged view" if os.path.normpath(fast) == os.path.normpath(view) \
            else f"is inside the merged view {view}"
        c.problem(("cache", "union", "fast"), f"{fast} {what}, not a branch; give the pool's "
                  "own path (e.g. /mnt/cache, not /mnt/user/...)")
    for index, pattern in enumerate(c.get("cache", "union", "slow") or []):
        if isinstance(pattern, str) and pattern and _inside(pattern, view):
            c.problem(("cache", "union", "slow", index), f"{pattern} is inside the merged view "
                      f"{view}, not a branch; give the disks' own paths (e.g. /mnt/disk*)")


def _state_dir_of(c: Checker, base: Path | None) -> tuple[str | None, bool]:
    """(the effective state_dir, whether the file gives it), None when unknown."""
    state_dir = c.get("state_dir")
    if isinstance(state_dir, str) and state_dir:
        return state_dir, True
    if state_dir is None and base is not None:
        return str(Path(base) / "state"), False
    return None, False


def _state_dir_problem(c: Checker, given: bool, message: str) -> None:
    if given:
        c.problem(("state_dir",), message)
    else:
        c.problem(("state_dir",), f"not set, so it defaults to a `state` folder beside the "
                  f"rules file: {message}", at_key=True)


def _check_state_dir_path(c: Checker, base: Path | None) -> None:
    state_dir, given = _state_dir_of(c, base)
    if state_dir is None:
        return
    if _inside(state_dir, _FLASH):
        _state_dir_problem(c, given, f"{state_dir} is on the flash drive, which wears out and "
                           "does not keep SQLite safe; set state_dir: /mnt/cache/appdata/cacherr "
                           "(a pool)")
    elif any(_inside(state_dir, share) for share in _UNRAID_FUSE):
        below = os.path.normpath(state_dir).split("/")[3:]
        pool_path = "/".join(["/mnt/cache", *below])
        _state_dir_problem(c, given, f"{state_dir} is on Unraid's user shares (FUSE), where "
                           "SQLite's locks and fsync are not reliable; use the pool's own "
                           f"path, e.g. {pool_path}")


# -- checks against this host ---------------------------------------------------------


def check_host(document: Any, positions: Positions, *,
               base: Path | None = None) -> list[Problem]:
    """Problems that need this host: paths exist, branches are on distinct devices, the
    state directory's file system keeps a database safe."""
    if not isinstance(document, dict):
        return []
    c = Checker(document, positions)
    for index, mapping in enumerate(c.get("paths") or []):
        host = mapping.get("host") if isinstance(mapping, dict) else None
        if isinstance(host, str) and host and not os.path.isdir(host):
            c.problem(("paths", index, "host"), f"{host} does not exist on this host")
    layout = c.get("cache", "layout")
    if layout == "union" and isinstance(c.get("cache", "union"), dict):
        _check_union_branches(c)
    if layout == "symlink" and isinstance(c.get("cache", "symlink"), dict):
        folder = c.get("cache", "symlink", "dir")
        if isinstance(folder, str) and not os.path.isdir(folder):
            c.problem(("cache", "symlink", "dir"), f"{folder} does not exist on this host")
    _check_state_dir(c, base)
    return c.problems


def expand_branches(patterns: list[str]) -> list[Path]:
    """Given slow-branch patterns (globs allowed), return the existing folders, sorted."""
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if _GLOB_CHARS.search(pattern) else [pattern]
        found += [Path(match) for match in matches if os.path.isdir(match)]
    return list(dict.fromkeys(found))


def _check_union_branches(c: Checker) -> None:
    base = ("cache", "union")
    devices: dict[str, int] = {}
    for key in ("view", "fast"):
        value = c.get("cache", "union", key)
        if isinstance(value, str) and value:
            if not os.path.isdir(value):
                c.problem(base + (key,), f"{value} does not exist on this host")
            else:
                devices[key] = os.stat(value).st_dev
    slow = c.get("cache", "union", "slow")
    if not isinstance(slow, list):
        return
    for index, pattern in enumerate(slow):
        if not isinstance(pattern, str) or not pattern:
            continue
        branches = expand_branches([pattern])
        if not branches:
            what = "matches no folder" if _GLOB_CHARS.search(pattern) else "does not exist"
            c.problem(base + ("slow", index), f"{pattern} {what} on this host")
        for branch in branches:
            if "fast" in devices and os.stat(branch).st_dev == devices["fast"]:
                c.problem(base + ("slow", index),
                          f"slow branch {branch} is on the same device as the fast branch "
                          f"{c.get('cache', 'union', 'fast')}; caching would gain nothing")
            if os.path.realpath(branch) == os.path.realpath(str(c.get(*base, "view"))):
                c.problem(base + ("slow", index), f"{branch} is the merged view, not a branch")
    fast = c.get(*base, "fast")
    view = c.get(*base, "view")
    if isinstance(fast, str) and isinstance(view, str) and fast and view and \
            os.path.realpath(fast) == os.path.realpath(view):
        c.problem(base + ("fast",), f"{fast} is the merged view, not a branch")


def _check_state_dir(c: Checker, base: Path | None) -> None:
    from cacherr.state.statedir import StateDirError, check_state_dir

    state_dir, given = _state_dir_of(c, base)
    if state_dir is None or _inside(state_dir, _FLASH) or \
            any(_inside(state_dir, share) for share in _UNRAID_FUSE):
        return  # unknown, or reported offline already
    try:
        check_state_dir(state_dir)
    except StateDirError as error:
        _state_dir_problem(c, given, str(error).removeprefix(f"state_dir {state_dir} ")
                           if not given else str(error))
