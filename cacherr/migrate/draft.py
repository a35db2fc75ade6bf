"""A starter rules file as plain data (`Draft`), and its rendering as commented YAML text.

The converters fill a Draft; `render` writes it by hand (not yaml.dump) so that the file
carries comments: where each value came from, what to check, and, at the top, every
setting that could not be converted, so nothing is dropped silently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import yaml

from cacherr.logs import redact

_PLAIN = re.compile(r"[A-Za-z0-9_/.][A-Za-z0-9_./:@%+=-]*")


@dataclass(frozen=True)
class Ref:
    """A `${NAME}` reference: the value comes from the environment when cacherr runs."""

    name: str


Value = str | Ref


def scalar(value: Value | int | bool) -> str:
    """Given a value, return it as a YAML scalar that reads back as exactly that value.

    Literal strings from a user's file get `${` escaped as `$${`, so cacherr's
    environment substitution leaves them alone.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Ref):
        return f'"${{{value.name}}}"'
    text = value.replace("${", "$${")
    if _PLAIN.fullmatch(text) and yaml.safe_load(text) == text \
            and yaml.safe_load(f"[{text}]") == [text]:
        return text
    return json.dumps(text, ensure_ascii=False)


def flow(items: dict[str, Value | int] | list[Value]) -> str:
    """A one-line flow mapping or sequence of scalars: {a: 1, b: x} or [x, y]."""
    if isinstance(items, dict):
        return "{" + ", ".join(f"{key}: {scalar(value)}" for key, value in items.items()) + "}"
    return "[" + ", ".join(scalar(item) for item in items) + "]"


def _comment(text: str) -> str:
    return f"  # {' '.join(text.split())}" if text else ""


GUESSED_PLEX_URL = "http://127.0.0.1:32400"
TOKEN_HELP = ("PLEX_TOKEN from the environment or the .env beside this file. Find it in "
              "Plex Web: an item's ... menu > Get Info > View XML; the address ends with "
              "X-Plex-Token=...")
# A value that may be a secret whatever its setting is called: long token-like text.
_TOKEN_LIKE = re.compile(r"^(?=.*[0-9])(?=.*[A-Za-z])[A-Za-z0-9_\-.:+/=]{12,}$")


@dataclass
class PathEntry:
    plex: str
    host: str
    comment: str = ""


@dataclass
class RuleDraft:
    name: str
    select: str
    priority: int
    options: dict[str, Value | int | list[str]] = field(default_factory=dict)
    keep: dict[str, str] = field(default_factory=lambda: {"while": "selected"})
    comment: str = ""


@dataclass
class Unmapped:
    setting: str
    value: str
    reason: str


@dataclass
class Draft:
    """Everything `cacherr init` writes. Optional values left None are not written."""

    source: str = "no earlier tool's settings"
    plex_url: Value = GUESSED_PLEX_URL
    plex_url_comment: str = ("CHECK: a guess (Plex on this host); write your Plex server's "
                             "address")
    plex_token: Value = Ref("PLEX_TOKEN")
    plex_token_comment: str = TOKEN_HELP
    watchlist_rss: Value | None = None
    paths: list[PathEntry] = field(default_factory=list)
    paths_comments: list[str] = field(default_factory=list)
    paths_are_example: bool = False
    layout: str = "union"
    union_view: str = "/mnt/user"
    union_fast: str = "/mnt/cache"
    union_fast_comment: str = "your pool: /mnt/cache, /mnt/nvme, ..."
    union_slow: list[str] = field(default_factory=lambda: ["/mnt/disk*"])
    symlink_dir: str = ""
    symlink_plex_dir: str = ""
    symlink_comment: str = ""
    original: str | None = None
    original_comment: str = ""
    max_size: str | None = None
    min_free: str | None = None
    sidecars: str | None = None
    transfers: dict[str, int] = field(default_factory=dict)
    defer_while_playing: str | None = None
    users_include: str | list[str] = "all"
    users_include_comment: str = ""
    users_exclude: list[str] = field(default_factory=list)
    inactive_after: str | None = None
    rules: list[RuleDraft] = field(default_factory=list)
    trakt_client_id: Value | None = None
    sessions_every: str | None = None
    notify_urls: list[Value] = field(default_factory=list)
    listen: str | None = None
    state_dir: str | None = None
    state_dir_comment: str = ""
    library_ids: list[str] = field(default_factory=list)
    empty_settings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)
    references: dict[str, str] = field(default_factory=dict)

    @property
    def plex_url_guessed(self) -> bool:
        return self.plex_url == GUESSED_PLEX_URL and self.plex_url_comment.startswith("CHECK")

    def secrets(self) -> dict[str, str]:
        """NAME -> value of every `${NAME}` the file refers to whose value is known."""
        used = {value.name for value in self._values() if isinstance(value, Ref)}
        return {name: value for name, value in self.references.items()
                if name in used and value}

    def _values(self) -> list:
        return [self.plex_token, self.watchlist_rss, self.trakt_client_id, *self.notify_urls]

    def skip(self, setting: str, value: object, reason: str, *, secret: bool = False) -> None:
        """Record a setting that is not converted (listed at the top of the file). A
        secret's value is never written: neither a secret setting's, nor one that looks
        like a token; URLs show only their scheme and host."""
        shown = "(hidden)" if secret or _looks_secret(value) else _short(value)
        self.unmapped.append(Unmapped(setting, shown, reason))

    def skip_unless_empty(self, setting: str, value: object, reason: str, *,
                          secret: bool = False) -> None:
        """Like skip, but an empty or zero value (nothing lost) only goes in one note line."""
        if not isinstance(value, bool) and (value in ("", 0, None) or value in ([], {})):
            self.empty_settings.append(setting)
        else:
            self.skip(setting, value, reason, secret=secret)


def _looks_secret(value: object) -> bool:
    texts = [value] if isinstance(value, str) else (
        [str(item) for item in value] if isinstance(value, list | tuple) else [])
    if isinstance(value, dict):
        return any(_looks_secret(item) for item in value.values())
    return any(_TOKEN_LIKE.match(text.strip()) and "://" not in text
               and not text.strip().startswith("/") for text in texts)


def _short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = redact(" ".join(str(text).split()))
    return text if len(text) <= 60 else text[:57] + "..."


def _header(draft: Draft) -> list[str]:
    lines = [
        "# cacherr rules, written by `cacherr init` from",
        f"# {draft.source}.",
        "# dry_run is on: check the file with `cacherr validate`, see what would move with",
        "# `cacherr plan`, and set dry_run: false when the plan looks right.",
    ]
    if draft.unmapped:
        lines += ["#", f"# Not converted ({len(draft.unmapped)}): decide what you need of these."]
        for item in draft.unmapped:
            lines.append(f"#   {item.setting} = {item.value}: {item.reason}")
    notes = list(draft.notes)
    if draft.empty_settings:
        notes.append("empty or zero, nothing to convert: " + ", ".join(draft.empty_settings))
    if notes:
        lines += ["#", "# Notes:"]
        lines += [f"#   {note}" for note in notes]
    return lines


def render(draft: Draft) -> str:
    """Given a Draft, return the text of the rules file."""
    out = _header(draft) + ["version: 1", "", "plex:"]
    out.append(f"  url: {scalar(draft.plex_url)}{_comment(draft.plex_url_comment)}")
    out.append(f"  token: {scalar(draft.plex_token)}{_comment(draft.plex_token_comment)}")
    if draft.watchlist_rss is not None:
        out.append(f"  watchlist_rss: {scalar(draft.watchlist_rss)}")

    out += ["", "# Plex's path prefix -> the same folder on this host. Longest prefix wins; a Plex",
            "# path that no entry covers is skipped and reported, never guessed."]
    out += [f"# {line}" for line in draft.paths_comments]
    out.append("paths:")
    for entry in draft.paths:
        out.append(f"  - plex: {scalar(entry.plex)}{_comment(entry.comment)}")
        out.append(f"    host: {scalar(entry.host)}")

    out += ["", "cache:", f"  layout: {draft.layout}"]
    if draft.original:
        out.append(f"  original: {draft.original}{_comment(draft.original_comment)}")
    if draft.layout == "union":
        out += ["  union:", f"    view: {scalar(draft.union_view)}",
                f"    fast: {scalar(draft.union_fast)}{_comment(draft.union_fast_comment)}",
                f"    slow: {flow(draft.union_slow)}"]
    else:
        out += [f"  symlink:{_comment(draft.symlink_comment)}",
                f"    dir: {scalar(draft.symlink_dir)}",
                f"    plex_dir: {scalar(draft.symlink_plex_dir)}"]
    for key in ("max_size", "min_free", "sidecars", "defer_while_playing"):
        if getattr(draft, key) is not None:
            out.append(f"  {key}: {scalar(getattr(draft, key))}")
    if draft.transfers:
        out.append(f"  transfers: {flow(draft.transfers)}")

    out += ["", "users:"]
    include = draft.users_include if draft.users_include == "all" else flow(draft.users_include)
    out.append(f"  include: {include}{_comment(draft.users_include_comment)}")
    if draft.users_exclude:
        out.append(f"  exclude: {flow(draft.users_exclude)}")
    if draft.inactive_after:
        out.append(f"  inactive_after: {draft.inactive_after}")

    out += ["", "rules:"]
    for rule in draft.rules:
        out.append(f"  - name: {scalar(rule.name)}{_comment(rule.comment)}")
        out.append(f"    select: {rule.select}")
        for key, value in rule.options.items():
            out.append(f"    {key}: {flow(value) if isinstance(value, list) else scalar(value)}")
        out.append(f"    keep: {flow(rule.keep)}")
        out.append(f"    priority: {rule.priority}")

    if draft.trakt_client_id is not None:
        out += ["", "trakt:", f"  client_id: {scalar(draft.trakt_client_id)}"]
    if draft.sessions_every:
        out += ["", "schedule:", f"  sessions_every: {draft.sessions_every}"]
    if draft.notify_urls:
        out += ["", "notify:", f"  urls: {flow(draft.notify_urls)}"]
    if draft.listen:
        out += ["", "server:", f"  listen: {scalar(draft.listen)}"]
    if draft.state_dir:
        out += ["", f"state_dir: {scalar(draft.state_dir)}{_comment(draft.state_dir_comment)}"]
    out += ["", "dry_run: true", ""]
    return "\n".join(out)
