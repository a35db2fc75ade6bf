"""Meaning checks that JSON Schema cannot express, and checks against this host.

Each check takes the parsed document (which may still have schema problems, so every
lookup is defensive) and returns problems; `offline=True` skips those that look at this
host (existence of paths, devices, file system types).
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Any

from cacherr.config.errors import Problem, dotted
from cacherr.config.schema import SIZE_OR_PERCENT_PATTERN
from cacherr.config.units import parse_size
from cacherr.config.yamlpos import Positions

_WINDOWS_PATH = re.compile(r"^([A-Za-z]:[\\/]|\\\\)")
_GLOB_CHARS = re.compile(r"[*?\[]")

# Which rule keys each selector takes (beyond name, select, keep, priority, filters).
_COMMON_RULE_KEYS = {"name", "select", "keep", "priority", "users", "libraries", "versions",
                     "max_file_size"}
_SELECTOR_KEYS = {
    "ondeck": {"within", "episodes_ahead", "ahead", "ahead_max"},
    "watchlist": {"episodes"},
    "playing": {"when", "within", "episodes_ahead", "ahead", "ahead_max"},
    "recently_added": {"within"},
    "pinned": {"label", "paths"},
    "trakt": {"list", "limit", "episodes"},
}


class _Checker:
    def __init__(self, document: dict, positions: Positions):
        self.doc = document
        self.positions = positions
        self.problems: list[Problem] = []

    def problem(self, path: tuple, message: str, *, at_key: bool = False) -> None:
        where = self.positions.of_key(path) if at_key else self.positions.of_value(path)
        self.problems.append(Problem(*where, dotted(path), message))

    def get(self, *path: Any) -> Any:
        node: Any = self.doc
        for part in path:
            if isinstance(node, dict) and isinstance(part, str):
                node = node.get(part)
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                return None
        return node


def check_meaning(document: Any, positions: Positions) -> list[Problem]:
    """Problems of meaning that hold on any host."""
    if not isinstance(document, dict):
        return []
    checker = _Checker(document, positions)
    _check_layout_blocks(checker)
    _check_sizes(checker)
    _check_windows_paths(checker)
    _check_rules(checker)
    _check_notify_urls(checker)
    _check_listen(checker)
    return checker.problems


def _check_listen(c: _Checker) -> None:
    listen = c.get("server", "listen")
    if isinstance(listen, str) and listen.rpartition(":")[2].isdigit():
        port = int(listen.rpartition(":")[2])
        if not 0 <= port < 65536:
            c.problem(("server", "listen"), f"port {port} is out of range (0-65535; 0 picks a free port)")


def _check_layout_blocks(c: _Checker) -> None:
    layout = c.get("cache", "layout")
    if layout in ("union", "symlink") and not isinstance(c.get("cache", layout), dict):
        c.problem(("cache", layout) if c.get("cache", layout) is not None else ("cache",),
                  f"layout: {layout} needs a '{layout}' block"
                  + (" (view, fast, slow)" if layout == "union" else " (dir, plex_dir)"))
    other = {"union": "symlink", "symlink": "union"}.get(layout)
    if other and c.get("cache", other) is not None:
        c.problem(("cache", other), f"a '{other}' block has no effect with layout: {layout}",
                  at_key=True)
    if layout == "symlink" and c.get("cache", "original") == "shadow":
        c.problem(("cache", "original"),
                  "original: shadow needs a merged view; use backup or move with layout: symlink")


def _check_sizes(c: _Checker) -> None:
    for key in ("max_size", "min_free"):
        value = c.get("cache", key)
        # Only the range of a well-formed percentage: the schema reports the rest.
        if isinstance(value, str) and re.match(SIZE_OR_PERCENT_PATTERN, value):
            try:
                parse_size(value)
            except ValueError as error:
                c.problem(("cache", key), str(error))


def _check_windows_paths(c: _Checker) -> None:
    for index, mapping in enumerate(c.get("paths") or []):
        plex = mapping.get("plex") if isinstance(mapping, dict) else None
        if isinstance(plex, str) and _WINDOWS_PATH.match(plex):
            c.problem(("paths", index, "plex"),
                      f"{plex!r} is a Windows path; cacherr needs Plex paths as a Linux Plex "
                      "(or Plex in Docker) reports them, e.g. /data/media")


def _check_rules(c: _Checker) -> None:
    seen: dict[str, int] = {}
    rules = c.get("rules")
    if not isinstance(rules, list):
        return
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        name = rule.get("name")
        if isinstance(name, str):
            if name in seen:
                first_line = c.positions.of_value(("rules", seen[name], "name"))[0]
                c.problem(("rules", index, "name"),
                          f"duplicate rule name '{name}' (first at line {first_line})")
            else:
                seen[name] = index
        select = rule.get("select")
        if select in _SELECTOR_KEYS:
            allowed = _COMMON_RULE_KEYS | _SELECTOR_KEYS[select]
            for key in rule:
                if key not in allowed and key in _all_selector_keys():
                    c.problem(("rules", index, key),
                              f"'{key}' does not apply to select: {select}", at_key=True)
        if select == "trakt":
            if "list" not in rule:
                c.problem(("rules", index), "select: trakt needs a 'list' "
                          "(e.g. movies/trending)")
            if c.get("trakt", "client_id") is None:
                c.problem(("rules", index, "select"),
                          "select: trakt needs trakt.client_id")
        if select == "pinned" and not rule.get("label") and not rule.get("paths"):
            c.problem(("rules", index), "select: pinned needs a 'label' or 'paths'")
        if select == "playing" and rule.get("when") == "complete" and "within" not in rule:
            c.problem(("rules", index), "select: playing with when: complete needs 'within'")
        if "ahead" in rule and "episodes_ahead" in rule:
            c.problem(("rules", index, "ahead"), "use either 'ahead' or 'episodes_ahead', "
                      "not both", at_key=True)
        if "ahead_max" in rule and rule.get("ahead") != "auto":
            c.problem(("rules", index, "ahead_max"), "'ahead_max' goes with 'ahead: auto'",
                      at_key=True)
        _check_keep(c, index, rule.get("keep"))


def _all_selector_keys() -> set[str]:
    return set().union(*_SELECTOR_KEYS.values())


def _check_keep(c: _Checker, index: int, keep: Any) -> None:
    if not isinstance(keep, dict):
        return
    path = ("rules", index, "keep")
    forms = [key for key in ("while", "for", "until") if key in keep]
    if len(forms) != 1:
        c.problem(path, "keep needs exactly one of 'while: selected', 'for: D' or "
                  "'until: watched'" + (f" (found {', '.join(forms)})" if forms else ""))
    if "min" in keep and "while" not in keep:
        c.problem(path + ("min",), "'min' goes with 'while: selected'", at_key=True)
    if "grace" in keep and "until" not in keep:
        c.problem(path + ("grace",), "'grace' goes with 'until: watched'", at_key=True)


def _check_notify_urls(c: _Checker) -> None:
    urls = c.get("notify", "urls")
    if not isinstance(urls, list):
        return
    from cacherr.notify.schemes import url_is_valid

    for index, url in enumerate(urls):
        if isinstance(url, str) and url and not url_is_valid(url):
            c.problem(("notify", "urls", index),
                      f"Apprise cannot use this URL: {_redacted(url)}")


def _redacted(url: str) -> str:
    from cacherr.logs import redact

    return redact(url)


# -- checks against this host ---------------------------------------------------------


def check_host(document: Any, positions: Positions) -> list[Problem]:
    """Problems that need this host: paths exist, branches are on distinct devices."""
    if not isinstance(document, dict):
        return []
    c = _Checker(document, positions)
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
    _check_state_dir(c)
    return c.problems


def expand_branches(patterns: list[str]) -> list[Path]:
    """Given slow-branch patterns (globs allowed), return the existing folders, sorted."""
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if _GLOB_CHARS.search(pattern) else [pattern]
        found += [Path(match) for match in matches if os.path.isdir(match)]
    return list(dict.fromkeys(found))


def _check_union_branches(c: _Checker) -> None:
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


def _check_state_dir(c: _Checker) -> None:
    from cacherr.state.statedir import StateDirError, check_state_dir

    state_dir = c.get("state_dir")
    if not isinstance(state_dir, str) or not state_dir:
        return
    try:
        check_state_dir(state_dir)
    except StateDirError as error:
        c.problem(("state_dir",), str(error))
