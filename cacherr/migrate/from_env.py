"""Convert a Cacherr / PlexCacheUltra `.env` file into a Draft.

Secrets become references: the token is `${PLEX_TOKEN}`, and so are the Trakt client id
and the webhook URL; `cacherr init` writes their values to the `.env` beside the rules
file (mode 0600), and a container that gets them from its environment wins over it.
"""

from __future__ import annotations

import re

from cacherr.config import dotenv
from cacherr.migrate.common import (
    Settings,
    normalise_plex_url,
    ondeck_rule,
    set_fast,
    to_bool,
    to_int,
    watchlist_rule,
)
from cacherr.migrate.draft import Draft, PathEntry, Ref, RuleDraft

# Settings that need nothing in cacherr's file: cacherr already behaves so.
_ALREADY = {
    "TEST_SHOW_FILE_SIZES": "`cacherr plan` always shows sizes",
    "TEST_SHOW_TOTAL_SIZE": "`cacherr plan` always shows the total",
    "REAL_TIME_WATCH_RESPECT_EXISTING_RULES": "a file stays while any rule keeps it",
    "REAL_TIME_WATCH_RESPECT_OTHER_USERS_WATCHLISTS": "a file stays while any rule keeps it",
    "WEB_PORT": "same as PORT (server.listen)",
    "WEB_HOST": "part of server.listen",
}
# Settings with no equivalent, and why.
_NO_EQUIVALENT = {
    "LOG_LEVEL": "a command-line option: `cacherr --log-level LEVEL run`",
    "DEBUG": "a command-line option: `cacherr --log-level DEBUG run`",
    "CONFIG_DIR": "cacherr keeps its state in state_dir (default: a `state` folder beside "
                  "rules.yaml)",
    "MAX_CONCURRENT_LOCAL_TRANSFERS": "cacherr limits transfers per direction only "
                                      "(cache.transfers)",
    "MAX_CONCURRENT_NETWORK_TRANSFERS": "cacherr limits transfers per direction only "
                                        "(cache.transfers)",
    "WATCHLIST_CACHE_EXPIRY": "how long watchlist answers were reused; cacherr reads "
                              "watchlists every cycle (use keep: {for: D} to keep files longer)",
    "REAL_TIME_WATCH_MAX_CONCURRENT_WATCHES": "no limit in cacherr; the playing rule covers "
                                              "every session",
    "TRAKT_CLIENT_SECRET": "not needed: cacherr reads Trakt lists with the client id only",
    "TRAKT_CHECK_INTERVAL": "Trakt is read every cycle (schedule.every)",
}


def parse_env(text: str) -> dict[str, str]:
    """Given the text of a .env file, return its KEY -> value (quotes and comments removed)."""
    return dotenv.parse(text)


def convert(values: dict[str, str], source: str) -> Draft:
    """Given the settings of a Cacherr/PlexCacheUltra .env, return the Draft."""
    draft = Draft(source=source)
    read = Settings(values, draft)
    _plex(read, draft)
    _paths(read, draft)
    _cache(read, draft)
    _rules(read, draft)
    _service(read, draft)
    for key, reason in _ALREADY.items():
        if key in values and key not in read.used:
            read.used.add(key)
            draft.notes.append(f"{key}: nothing to write ({reason})")
    for key, reason in _NO_EQUIVALENT.items():
        read.skip(key, reason)
    for key in values:
        read.skip(key, "not a Cacherr/PlexCacheUltra setting cacherr knows")
    return draft


def _plex(read: Settings, draft: Draft) -> None:
    url = read.get("PLEX_URL", normalise_plex_url)
    if url:
        draft.plex_url, draft.plex_url_comment = url, "PLEX_URL"
    if read.has("PLEX_TOKEN"):
        draft.references["PLEX_TOKEN"] = read.get("PLEX_TOKEN")
        draft.plex_token_comment = "PLEX_TOKEN, from the environment (your .env has it)"


def _split(text: str | None) -> list[str]:
    return [part for part in re.split(r"[\s,]+", text or "") if part]


def _paths(read: Settings, draft: Draft) -> None:
    plex_sources = _split(read.get("PLEX_SOURCE")) + _split(read.get("ADDITIONAL_PLEX_SOURCES"))
    real_sources = _split(read.get("REAL_SOURCE")) + _split(read.get("ADDITIONAL_SOURCES"))
    for plex, host in zip(plex_sources, real_sources, strict=False):
        comment = "" if host.startswith("/mnt/") else (
            f"CHECK: {host} was a path inside the old container; write the host path "
            "(e.g. /mnt/user/media): cacherr maps /mnt to /mnt")
        draft.paths.append(PathEntry(plex, host, comment))
    if len(plex_sources) != len(real_sources):
        draft.skip("PLEX_SOURCE/ADDITIONAL_PLEX_SOURCES vs REAL_SOURCE/ADDITIONAL_SOURCES",
                   f"{len(plex_sources)} vs {len(real_sources)}",
                   "unequal counts: the unpaired ones were left out")


def _cache(read: Settings, draft: Draft) -> None:
    destination = read.get("CACHE_DESTINATION") or read.get("CACHE_DIR")
    if read.has("CACHE_DIR") and read.values["CACHE_DIR"] != destination:
        read.skip("CACHE_DIR", "CACHE_DESTINATION was used instead")
    read.get("CACHE_DIR")
    symlinks = bool(read.get("USE_SYMLINKS_FOR_CACHE", to_bool)) or \
        bool(read.get("MOVE_WITH_SYMLINKS", to_bool))
    copy = read.get("COPY_TO_CACHE", to_bool)
    if symlinks:
        draft.layout = "symlink"
        draft.symlink_dir = destination or "/mnt/cache/cacherr"
        draft.symlink_plex_dir = destination or "/cache"
        draft.symlink_comment = ("CHECK: dir is the cache folder on this host, plex_dir the "
                                 "same folder as Plex sees it")
        draft.state_dir = None
        if copy is not None:
            draft.original = "backup" if copy else "move"
            draft.original_comment = "from COPY_TO_CACHE"
    else:
        if destination:
            set_fast(draft, destination, "CACHE_DESTINATION")
        if copy is not None:
            draft.original = "shadow" if copy else "move"
            draft.original_comment = ("COPY_TO_CACHE=true" if copy else
                                      "COPY_TO_CACHE=false; shadow (keep the array copy) is "
                                      "the safer choice")
    done = read.get("DELETE_FROM_CACHE_WHEN_DONE", to_bool)
    if done is False:
        draft.skip("DELETE_FROM_CACHE_WHEN_DONE", "false", "cacherr always puts back what no "
                   "rule keeps; pin what must stay (select: pinned)")
    elif done:
        draft.notes.append("DELETE_FROM_CACHE_WHEN_DONE: nothing to write (cacherr puts back "
                           "what no rule keeps)")
    to_cache = read.get("MAX_CONCURRENT_MOVES_CACHE", to_int, 1, 16)
    to_slow = read.get("MAX_CONCURRENT_MOVES_ARRAY", to_int, 1, 16)
    draft.transfers = {key: value for key, value in
                       (("to_cache", to_cache), ("to_slow", to_slow)) if value}
    if read.get("EXIT_IF_ACTIVE_SESSION", to_bool):
        draft.defer_while_playing = "any"


def _rules(read: Settings, draft: Draft) -> None:
    episodes = read.get("NUMBER_EPISODES", to_int, 0, 100)
    days = read.get("DAYS_TO_MONITOR", to_int, 1, 100000)
    watched_move = read.get("WATCHED_MOVE", to_bool)
    expiry = read.get("WATCHED_CACHE_EXPIRY", to_int, 0, 100000)
    if watched_move is False:
        draft.skip("WATCHED_MOVE", "false", "watched files stayed on the cache; cacherr puts "
                   "back what no rule keeps (a longer keep: min keeps them a while)")
    draft.rules.append(ondeck_rule(days, episodes, expiry, "WATCHED_CACHE_EXPIRY"))

    if read.get("REAL_TIME_WATCH_ENABLED", to_bool):
        grace = read.get("REAL_TIME_WATCH_REMOVE_FROM_CACHE_AFTER_HOURS", to_int, 0, 100000)
        keep = {"until": "watched", "grace": f"{grace if grace is not None else 48}h"}
        if read.get("REAL_TIME_WATCH_AUTO_CACHE_ON_WATCH", to_bool) is not False:
            draft.rules.append(RuleDraft("now-playing", "playing", 90,
                                         options={"episodes_ahead": 1}, keep=keep))
        if read.get("REAL_TIME_WATCH_CACHE_ON_COMPLETE", to_bool):
            draft.rules.append(RuleDraft("watched-recently", "playing", 60,
                                         options={"when": "complete", "within": "1d"},
                                         keep={"for": keep["grace"]}))
        interval = read.get("REAL_TIME_WATCH_CHECK_INTERVAL", to_int, 1, 86400)
        if interval:
            draft.sessions_every = f"{interval}s"
        inactive = read.get("REAL_TIME_WATCH_EXCLUDE_INACTIVE_USERS_DAYS", to_int, 1, 100000)
        if inactive:
            draft.inactive_after = f"{inactive}d"
    else:
        for key in [key for key in read.values if key.startswith("REAL_TIME_WATCH_")]:
            read.skip(key, "real-time watching was off (REAL_TIME_WATCH_ENABLED)")

    if read.get("WATCHLIST_TOGGLE", to_bool):
        watchlists = watchlist_rule()
        episodes = read.get("WATCHLIST_EPISODES", to_int, 1, 100)
        if episodes:
            watchlists.options["episodes"] = episodes
        draft.rules.append(watchlists)
    else:
        read.skip("WATCHLIST_EPISODES", "watchlists were off (WATCHLIST_TOGGLE)")

    if read.get("TRAKT_ENABLED", to_bool):
        if read.has("TRAKT_CLIENT_ID"):
            draft.references["TRAKT_CLIENT_ID"] = read.get("TRAKT_CLIENT_ID")
            draft.trakt_client_id = Ref("TRAKT_CLIENT_ID")
            count = read.get("TRAKT_TRENDING_MOVIES_COUNT", to_int, 1, 1000) or 10
            draft.rules.append(RuleDraft("trakt-trending", "trakt", 20,
                                         options={"list": "movies/trending", "limit": count}))
        else:
            read.skip("TRAKT_ENABLED", "Trakt needs TRAKT_CLIENT_ID, which is not set")
    else:
        for key in [key for key in read.values if key.startswith("TRAKT_")]:
            read.skip(key, "Trakt was off (TRAKT_ENABLED)")

    if read.get("USERS_TOGGLE", to_bool) is False:
        draft.users_include_comment = "USERS_TOGGLE=false: write [your Plex user name] for the owner only"
        draft.skip("USERS_TOGGLE", "false", "only the owner counted: set users.include to "
                   "[your Plex user name]")


def _service(read: Settings, draft: Draft) -> None:
    if read.get("TEST_MODE", to_bool):
        draft.notes.append("TEST_MODE: dry_run: true (a new file always starts so)")
    scheduler = read.get("ENABLE_SCHEDULER", to_bool)
    if scheduler is False:
        draft.skip("ENABLE_SCHEDULER", "false", "`cacherr run` always runs cycles "
                   "(schedule.every); for cron or User Scripts use `cacherr run --once`")
    port = read.get("PORT", to_int, 1, 65535) or read.get("WEB_PORT", to_int, 1, 65535)
    if port:
        host = read.get("WEB_HOST") or "0.0.0.0"
        draft.listen = f"{host}:{port}" if re.fullmatch(r"[A-Za-z0-9.-]+", host) else f"0.0.0.0:{port}"
    _notify(read, draft)


def _notify(read: Settings, draft: Draft) -> None:
    from cacherr.notify.schemes import url_is_valid

    kind = (read.get("NOTIFICATION_TYPE") or "").strip().lower()
    webhook = read.get("WEBHOOK_URL")
    if webhook:
        if url_is_valid(webhook):
            draft.references["WEBHOOK_URL"] = webhook
            draft.notify_urls.append(Ref("WEBHOOK_URL"))
        else:
            draft.skip("WEBHOOK_URL", webhook, "Apprise does not recognise this URL: write it "
                       "as an Apprise URL in notify.urls", secret=True)
    if kind in ("unraid", "both"):
        draft.notify_urls.append("unraid://")
    elif kind and kind not in ("webhook", "none"):
        draft.skip("NOTIFICATION_TYPE", kind, "unknown kind: use Apprise URLs in notify.urls")
