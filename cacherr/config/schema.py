"""The JSON Schema of rules.yaml: the one place that names every key.

Each key carries a description, examples and (when optional) its default; `cacherr
schema` prints it for editors, the validator checks files against it, and the README's
rules reference is generated from it. Meaning that JSON Schema cannot express (which
keys a `select` takes, devices, paths on this host) lives in `cacherr.config.checks`.
"""

from __future__ import annotations

import json
from typing import Any

DURATION_PATTERN = r"^([0-9]+[smhdw])+$"
SIZE_PATTERN = r"^[0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"
SIZE_OR_PERCENT_PATTERN = r"^([0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)|[0-9]+(\.[0-9]+)?%)$"
RULE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
TRAKT_LIST_PATTERN = (
    r"^((movies|shows)/(trending|popular|anticipated)"
    r"|users/[^/\s]+/lists/[^/\s]+|users/[^/\s]+/watchlist(/(movies|shows))?)$"
)
LISTEN_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):[0-9]{1,5}$"

SELECTORS = ("ondeck", "watchlist", "playing", "recently_added", "pinned", "trakt")
NOTIFY_EVENTS = ("summary", "error", "cache_full", "source_down", "source_recovered")

_OPTIONAL = object()


def _key(schema: dict[str, Any], description: str, example: Any, default: Any = _OPTIONAL):
    schema = dict(schema, description=description, examples=[example])
    if default is not _OPTIONAL:
        schema["default"] = default
    return schema


def duration(description: str, example: str, default: Any = _OPTIONAL) -> dict[str, Any]:
    return _key(
        {"type": "string", "pattern": DURATION_PATTERN,
         "x-error": "is not a duration: use a number with a unit s, m, h, d or w "
                    "(e.g. 90s, 30m, 48h, 7d, 1h30m)"},
        description, example, default,
    )


def size(description: str, example: str, default: Any = _OPTIONAL, percent: bool = True):
    if percent:
        return _key(
            {"type": "string", "pattern": SIZE_OR_PERCENT_PATTERN,
             "x-error": "is not a size: use a number with a unit B, KB, MB, GB, TB, KiB, "
                        "MiB, GiB, TiB (e.g. 500GiB) or a percentage of the cache (e.g. 80%)"},
            description, example, default,
        )
    return _key(
        {"type": "string", "pattern": SIZE_PATTERN,
         "x-error": "is not a size: use a number with a unit B, KB, MB, GB, TB, KiB, MiB, "
                    "GiB or TiB (e.g. 40GiB)"},
        description, example, default,
    )


def string(description: str, example: Any, default: Any = _OPTIONAL, **extra) -> dict[str, Any]:
    return _key({"type": "string", **extra}, description, example, default)


def enum(description: str, values: tuple[str, ...], example: str, default: Any = _OPTIONAL):
    return _key({"type": "string", "enum": list(values)}, description, example, default)


def integer(description: str, example: int, default: Any = _OPTIONAL, **bounds) -> dict[str, Any]:
    return _key({"type": "integer", **bounds}, description, example, default)


def boolean(description: str, example: bool, default: Any = _OPTIONAL) -> dict[str, Any]:
    return _key({"type": "boolean"}, description, example, default)


def string_list(description: str, example: list[str], default: Any = _OPTIONAL, **extra):
    return _key({"type": "array", "items": {"type": "string", **extra}},
                description, example, default)


def block(description: str, properties: dict[str, Any], example: dict[str, Any],
          required: tuple[str, ...] = (), default: Any = _OPTIONAL) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object", "additionalProperties": False, "properties": properties,
    }
    if required:
        schema["required"] = list(required)
    return _key(schema, description, example, default)


_USER_NAMES = _key(
    {"anyOf": [{"const": "all"}, {"type": "array", "items": {"type": "string"}}],
     "x-error": "must be 'all' or a list of user names"},
    "Which users count: `all` (the owner, Plex Home users and friends) or a list of "
    "plex.tv usernames or titles (case-insensitive).",
    ["alice", "bob"], default="all",
)

PLEX = block(
    "The Plex Media Server cacherr reads (as the owner).",
    {
        "url": string("Address of the Plex server, as this host reaches it.",
                      "http://192.168.1.10:32400", pattern=r"^https?://",
                      **{"x-error": "must be an http:// or https:// URL"}),
        "token": string("The server owner's X-Plex-Token (Plex Web: an item's ⋯ → Get "
                        "Info → View XML; the address ends with `X-Plex-Token=...`). Put it "
                        "in the environment or the `.env` beside this file (`${PLEX_TOKEN}`) "
                        "rather than in the file.", "${PLEX_TOKEN}", minLength=1,
                        **{"x-secret": True}),
        "watchlist_rss": string(
            "Plex's 'friends' watchlist' RSS feed URL (plex.tv → Watchlist → RSS), used for "
            "friends' watchlists, which plex.tv gives to nobody else.",
            "https://rss.plex.tv/00000000-0000-0000-0000-000000000000", default=None,
            pattern=r"^$|^https?://",
            **{"x-error": "must be an http:// or https:// URL (or empty for none)",
               "x-secret": True}),
        "user_tokens": _key(
            {"type": "object", "additionalProperties": {"type": "string", "minLength": 1,
                                                        "x-secret": True}},
            "Server tokens per user name, for users plex.tv hands out no token for.",
            {"alice": "${ALICE_TOKEN}"}, default={}),
        "timeout": duration("Timeout of each request to Plex, plex.tv and Trakt.", "30s",
                            default="30s"),
        "alerts": boolean(
            "Listen to the server's alert stream (its notification websocket) to cache a "
            "playback the moment it starts, and new items as soon as they are added. "
            "Sessions are polled every `schedule.sessions_every` whenever the stream is "
            "down; turn it off if a proxy in front of Plex blocks websockets.", True,
            default=True),
    },
    {"url": "http://192.168.1.10:32400", "token": "${PLEX_TOKEN}"},
    required=("url", "token"),
)

PATHS = _key(
    {"type": "array", "minItems": 1, "items": {
        "type": "object", "additionalProperties": False, "required": ["plex", "host"],
        "properties": {
            "plex": string("A path prefix as Plex reports it.", "/data/media", minLength=1),
            "host": string("The same folder as this host sees it (through the merged view "
                           "for the union layout).", "/mnt/user/media", minLength=1),
        },
    }},
    "Plex's path prefix → the same folder on this host. The longest prefix wins; a Plex "
    "path that no entry covers is skipped and reported, never guessed.",
    [{"plex": "/data/media", "host": "/mnt/user/media"}],
)

UNION = block(
    "Branches of the union layout (Unraid user shares, or mergerfs).",
    {
        "view": string("The merged view that Plex reads. cacherr never writes here.",
                       "/mnt/user", minLength=1),
        "fast": string("The pool that receives cached copies, at the same share-relative "
                       "path. Must be a mounted file system on its own device.",
                       "/mnt/cache", minLength=1),
        "slow": string_list("The physical slow branches; globs allowed.", ["/mnt/disk*"],
                            minLength=1) | {"minItems": 1},
    },
    {"view": "/mnt/user", "fast": "/mnt/cache", "slow": ["/mnt/disk*"]},
    required=("view", "fast", "slow"), default=None,
)

SYMLINK = block(
    "Where cached copies live in the symlink layout. The original path becomes a symlink "
    "whose target is written as Plex sees it.",
    {
        "dir": string("The folder on the fast disk that holds cached copies, as this host "
                      "sees it.", "/mnt/ssd/cacherr", minLength=1),
        "plex_dir": string("The same folder as Plex sees it (symlink targets use it).",
                           "/ssd/cacherr", minLength=1),
    },
    {"dir": "/mnt/ssd/cacherr", "plex_dir": "/ssd/cacherr"},
    required=("dir", "plex_dir"), default=None,
)

CACHE = block(
    "How files are cached, and how much.",
    {
        "layout": enum("How the cached copy becomes what Plex reads: `union` (same path "
                       "through a merged view) or `symlink` (the original path becomes a "
                       "symlink).", ("union", "symlink"), "union"),
        "original": enum("What happens to the slow copy: `shadow` keeps it, `backup` renames "
                         "it to a hidden name, `move` deletes it. Default: shadow for union, "
                         "backup for symlink.", ("shadow", "backup", "move"), "shadow",
                         default=None),
        "union": UNION,
        "symlink": SYMLINK,
        "max_size": size("Never let cached files take more than this (bytes or % of the "
                         "fast file system).", "80%", default="80%"),
        "min_free": size("Never fill the fast file system below this much free space.",
                         "50GiB", default="10%"),
        "sidecars": enum("Files that travel with a video: `subtitles` (same basename, language "
                         "and forced tags included), `all` (every sibling; shared files such as "
                         "posters stay until the last video leaves) or `none`.",
                         ("none", "subtitles", "all"), "subtitles", default="subtitles"),
        "verify": enum("How a copy is checked before the other side is touched: `size`, or "
                       "`checksum` (hashed while copying, compared with a re-read from disk).",
                       ("size", "checksum"), "size", default="size"),
        "transfers": block(
            "Concurrent transfers per direction (never more than one per slow disk).",
            {"to_cache": integer("Transfers to the cache at once.", 2, default=2,
                                 minimum=1, maximum=16),
             "to_slow": integer("Transfers back to slow disks at once.", 1, default=1,
                                minimum=1, maximum=16)},
            {"to_cache": 2, "to_slow": 1}, default={"to_cache": 2, "to_slow": 1}),
        "mover_exclude_file": string(
            "The list of cached fast-branch paths for Unraid's Mover Tuning plugin (\"Ignore "
            "files listed inside of a text file\"). Default: mover-exclude.txt in state_dir; in "
            "a container whose state_dir is not under /mnt, "
            "/mnt/POOL/appdata/cacherr/mover-exclude.txt (a path the host sees too).",
            "/mnt/cache/appdata/cacherr/mover-exclude.txt", default=None, minLength=1),
        "defer_while_playing": enum(
            "Hold transfers while someone streams: `never`, `same_disk` (only transfers that "
            "touch the streamed file's disk) or `any`.", ("never", "same_disk", "any"),
            "never", default="never"),
        "bandwidth": size("Bytes per second for all transfers together (unset: no limit).",
                          "100MB", default=None, percent=False),
    },
    {"layout": "union", "union": {"view": "/mnt/user", "fast": "/mnt/cache",
                                  "slow": ["/mnt/disk*"]}, "max_size": "80%"},
    required=("layout",),
)

USERS = block(
    "Whose viewing counts.",
    {
        "include": _USER_NAMES,
        "exclude": string_list("Users to leave out, by name.", ["kids"], default=[]),
        "inactive_after": duration("Ignore users with no activity for this long.", "30d",
                                   default=None),
    },
    {"include": "all", "exclude": ["kids"], "inactive_after": "30d"}, default={},
)

KEEP = block(
    "How long the rule keeps what it selected. One of: `{while: selected, min: D}`, "
    "`{for: D}` (counted from first selection) or `{until: watched, grace: D}` (watched by "
    "every user it was selected for).",
    {
        "while": _key({"const": "selected", "x-error": "must be 'selected'"},
                      "Keep while the rule still selects the file.", "selected"),
        "min": duration("With `while: selected`: keep at least this long.", "24h",
                        default="0s"),
        "for": duration("Keep this long from first selection.", "7d"),
        "until": _key({"const": "watched", "x-error": "must be 'watched'"},
                      "Keep until every user it was selected for has watched it.", "watched"),
        "grace": duration("With `until: watched`: keep this long after it was watched.",
                          "48h", default="0s"),
    },
    {"while": "selected", "min": "24h"}, default={"while": "selected"},
)

RULE = {
    "type": "object", "additionalProperties": False, "required": ["name", "select"],
    "properties": {
        "name": string("A unique name (metrics label, `ls --rule`).", "continue-watching",
                       pattern=RULE_NAME_PATTERN,
                       **{"x-error": "must be 1-64 letters, digits, '-', '_' or '.', "
                                     "starting with a letter or digit"}),
        "select": enum("What the rule selects.", SELECTORS, "ondeck"),
        "within": duration("ondeck: only items watched in this window; playing with "
                           "`when: complete`: playbacks finished in it; recently_added: "
                           "items added in it.", "14d", default=None),
        "episodes_ahead": integer("ondeck, playing: also the next N episodes, across "
                                  "seasons.", 5, default=0, minimum=0, maximum=100),
        "ahead": _key(
            {"type": "string", "pattern": r"^(auto|([0-9]+[smhdw])+)$",
             "x-error": "is not a look-ahead: use a viewing time (e.g. 3h, 90m) or auto"},
            "ondeck, playing: instead of a fixed `episodes_ahead`, the next episodes (across "
            "seasons) until their runtime covers this much viewing, never fewer than one; "
            "`auto` sizes the window from each user's own pace: the episodes of this show "
            "(or, with fewer than three, of any show) they finished per day over the last "
            "30 days, times how long a cached file stays (the rule's keep `for`, `min` or "
            "`grace`, at least a day), up to `ahead_max`.", "3h", default=None),
        "ahead_max": integer("ondeck, playing with `ahead: auto`: the most episodes ahead.",
                             10, default=10, minimum=1, maximum=100),
        "episodes": integer("watchlist, trakt: for shows, the first N unwatched episodes.",
                            1, default=1, minimum=1, maximum=100),
        "when": enum("playing: `start` (live sessions) or `complete` (playbacks that "
                     "finished within `within`).", ("start", "complete"), "start",
                     default="start"),
        "list": string("trakt: movies/trending, movies/popular, movies/anticipated, "
                       "shows/trending, shows/popular, shows/anticipated, "
                       "users/NAME/lists/SLUG or users/NAME/watchlist.", "movies/trending",
                       pattern=TRAKT_LIST_PATTERN,
                       **{"x-error": "is not a Trakt list (movies/trending, shows/popular, "
                                     "users/NAME/lists/SLUG, users/NAME/watchlist, ...)"}),
        "limit": integer("trakt: how many list entries to take.", 10, default=10,
                         minimum=1, maximum=1000),
        "label": string("pinned: items carrying this Plex label.", "cache", default=None,
                        minLength=1),
        "paths": string_list("pinned: files or folders, as Plex or this host sees them.",
                             ["/data/media/movies/Heat (1995)"], default=[], minLength=1),
        "users": string_list("Only these users' selections (default: every included user).",
                             ["alice"], default=None),
        "libraries": string_list("Only these Plex libraries, by name (default: all).",
                                 ["Movies"], default=None),
        "versions": enum("Among an item's media versions (e.g. 1080p and 4K): `all`, "
                         "`smallest` or `largest`.", ("all", "smallest", "largest"), "all",
                         default="all"),
        "max_file_size": size("Skip files larger than this.", "40GiB", default=None,
                              percent=False),
        "keep": KEEP,
        "priority": integer("0-100; under space pressure higher priorities stay.", 80,
                            default=50, minimum=0, maximum=100),
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://cacherr.invalid/rules.schema.json",
    "title": "cacherr rules",
    "description": "The rules file of cacherr: what to keep on the fast pool, and how.",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "plex", "paths", "cache", "rules"],
    "properties": {
        "version": _key({"const": 1, "x-error": "must be 1"},
                        "Version of the rules file format.", 1),
        "plex": PLEX,
        "paths": PATHS,
        "cache": CACHE,
        "users": USERS,
        "rules": _key({"type": "array", "items": RULE},
                      "What to cache. Each rule selects files, keeps them for a while, and "
                      "has a priority under space pressure.",
                      [{"name": "continue-watching", "select": "ondeck", "within": "14d",
                        "episodes_ahead": 5, "keep": {"while": "selected", "min": "24h"},
                        "priority": 80}]),
        "trakt": block("Trakt API access, for `select: trakt`.",
                       {"client_id": string("The Trakt API application's client id.",
                                            "${TRAKT_CLIENT_ID}", default=None,
                                            **{"x-secret": True})},
                       {"client_id": "${TRAKT_CLIENT_ID}"}, default={}),
        "schedule": block("When cycles run.", {
            "every": duration("A full cycle: select, plan, move, evict.", "1h", default="1h"),
            "sessions_every": duration(
                "Poll live sessions for `select: playing` rules whenever Plex's alert stream "
                "(`plex.alerts`) is down; while it is up, playbacks are noticed at once and "
                "sessions are polled every 5 minutes as a backstop.", "30s", default="30s"),
        }, {"every": "1h", "sessions_every": "30s"}, default={}),
        "notify": block("Notifications through Apprise.", {
            "urls": string_list("Apprise URLs; `unraid://` sends Unraid's own notifications. "
                                "They hold tokens: prefer `${VAR}` with the value in the "
                                "environment or the `.env` beside this file.",
                                ["${DISCORD_URL}", "unraid://"], default=[], minLength=1,
                                **{"x-secret": True}),
            "events": _key({"type": "array", "items": {"enum": list(NOTIFY_EVENTS)}},
                           "Which events notify: summary (after a cycle that moved files), "
                           "error, cache_full, source_down, source_recovered.",
                           ["summary", "error", "cache_full"],
                           default=["summary", "error", "cache_full"]),
            "unraid_script": string("Unraid's notify script, for `unraid://`.",
                                    "/usr/local/emhttp/webGui/scripts/notify",
                                    default="/usr/local/emhttp/webGui/scripts/notify"),
        }, {"urls": ["${DISCORD_URL}"], "events": ["summary", "error"]}, default={}),
        "server": block("The HTTP server: /metrics, /health, /api/cached, POST /api/evict.", {
            "listen": string("host:port to listen on.", "0.0.0.0:5445",
                             default="0.0.0.0:5445", pattern=LISTEN_PATTERN,
                             **{"x-error": "must be HOST:PORT, e.g. 0.0.0.0:5445"}),
            "token": string("Bearer token that write endpoints (POST /api/evict) require as "
                            "`Authorization: Bearer TOKEN`; at least 16 characters (e.g. from "
                            "`openssl rand -hex 24`), best given as `${VAR}`. Unset: every "
                            "write endpoint answers 403 (the local `cacherr evict` still "
                            "reaches the service through its socket in state_dir).",
                            "${CACHERR_API_TOKEN}", default=None, minLength=1,
                            **{"x-secret": True}),
            "protect_cached": boolean("Require the token for GET /api/cached too (it lists "
                                      "user names and titles). /metrics and /health stay "
                                      "open.", True, default=False),
        }, {"listen": "0.0.0.0:5445", "token": "${CACHERR_API_TOKEN}"}, default={}),
        "host": block("Where this host keeps Unraid's state files (change only for tests or "
                      "unusual installs).", {
            "mover_pid_file": string("The Unraid mover's PID file.", "/var/run/mover.pid",
                                     default="/var/run/mover.pid"),
            "emhttp_dir": string("Unraid's emhttp state folder (var.ini, shares.ini).",
                                 "/var/local/emhttp", default="/var/local/emhttp"),
            "boot_config_dir": string("Unraid's flash config folder (shares/*.cfg).",
                                      "/boot/config", default="/boot/config"),
        }, {"mover_pid_file": "/var/run/mover.pid"}, default={}),
        "state_dir": string("Ledger and journal: persistent, local, not FUSE, not the flash "
                            "drive. Default: a `state` folder beside the rules file.",
                            "/mnt/cache/appdata/cacherr", default=None, minLength=1),
        "dry_run": boolean("Plan and report, but move nothing.", False, default=False),
        "source_failure_grace": duration(
            "When Plex, plex.tv or Trakt fail, keep what they selected for at most this long.",
            "24h", default="24h"),
    },
}


def schema_json() -> str:
    """The schema as pretty JSON (what `cacherr schema` prints)."""
    return json.dumps(SCHEMA, indent=2, ensure_ascii=False) + "\n"
