"""Meaning checks that JSON Schema cannot express: layout blocks, sizes, which keys a
`select` takes, keep forms, Apprise URLs, the listen address and token, schedules.

Each check takes the parsed document (which may still have schema problems, so every
lookup is defensive) and returns problems. Where things are (paths, branches, state_dir,
and everything that looks at this host) is checked in `places`.
"""

from __future__ import annotations

import re
from typing import Any

from cacherr.config.errors import Problem, dotted
from cacherr.config.schema import SIZE_OR_PERCENT_PATTERN
from cacherr.config.units import parse_duration, parse_size
from cacherr.config.yamlpos import Positions

WINDOWS_PATH = re.compile(r"^([A-Za-z]:[\\/]|\\\\)")

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


class Checker:
    """Collects problems about a document, at the positions its keys and values had."""

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
    """Problems of meaning that hold on any host (where things are: `places`)."""
    if not isinstance(document, dict):
        return []
    checker = Checker(document, positions)
    _check_layout_blocks(checker)
    _check_sizes(checker)
    _check_windows_paths(checker)
    _check_rules(checker)
    _check_notify_urls(checker)
    _check_listen(checker)
    _check_server_token(checker)
    _check_schedule(checker)
    return checker.problems


MIN_EVERY_SECONDS = 300
MIN_SESSIONS_EVERY_SECONDS = 2
MIN_TOKEN_LENGTH = 16
def _check_server_token(c: Checker) -> None:
    token = c.get("server", "token")
    if isinstance(token, str) and token and len(token) < MIN_TOKEN_LENGTH:
        # Never the value itself: messages end up in logs.
        c.problem(("server", "token"), f"is shorter than {MIN_TOKEN_LENGTH} characters; use a "
                  "long random one, e.g. from `openssl rand -hex 24`")


def _check_schedule(c: Checker) -> None:
    for key, minimum, what in (
            ("every", MIN_EVERY_SECONDS, "a full cycle asks Plex, plex.tv and Trakt"),
            ("sessions_every", MIN_SESSIONS_EVERY_SECONDS, "each poll asks Plex")):
        value = c.get("schedule", key)
        if not isinstance(value, str):
            continue
        try:
            seconds = parse_duration(value)
        except ValueError:
            continue  # the schema reports it
        if seconds < minimum:
            shown = f"{minimum // 60}m" if minimum >= 60 else f"{minimum}s"
            c.problem(("schedule", key), f"{value} is too often: {what}; the minimum is {shown}")


def _check_listen(c: Checker) -> None:
    listen = c.get("server", "listen")
    if isinstance(listen, str) and listen.rpartition(":")[2].isdigit():
        port = int(listen.rpartition(":")[2])
        if not 0 <= port < 65536:
            c.problem(("server", "listen"), f"port {port} is out of range (0-65535; 0 picks a free port)")


def _check_layout_blocks(c: Checker) -> None:
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


def _check_sizes(c: Checker) -> None:
    for key in ("max_size", "min_free"):
        value = c.get("cache", key)
        # Only the range of a well-formed percentage: the schema reports the rest.
        if isinstance(value, str) and re.match(SIZE_OR_PERCENT_PATTERN, value):
            try:
                parse_size(value)
            except ValueError as error:
                c.problem(("cache", key), str(error))


def _check_windows_paths(c: Checker) -> None:
    for index, mapping in enumerate(c.get("paths") or []):
        plex = mapping.get("plex") if isinstance(mapping, dict) else None
        if isinstance(plex, str) and WINDOWS_PATH.match(plex):
            c.problem(("paths", index, "plex"),
                      f"{plex!r} is a Windows path; cacherr needs Plex paths as a Linux Plex "
                      "(or Plex in Docker) reports them, e.g. /data/media")


def _check_rules(c: Checker) -> None:
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


def _check_keep(c: Checker, index: int, keep: Any) -> None:
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


def _check_notify_urls(c: Checker) -> None:
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
