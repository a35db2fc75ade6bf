"""Convert a PlexCache / PlexCache-R `plexcache_settings.json` into a Draft.

Secrets (the token, the watchlist RSS URL, the webhook URL) become `${PLEX_TOKEN}`,
`${PLEX_WATCHLIST_RSS}` and `${NOTIFY_URL}`; `cacherr init` writes their values to the
`.env` beside the rules file (mode 0600), which the loader reads.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from typing import Any

from cacherr.migrate.common import (
    Settings,
    normalise_plex_url,
    ondeck_rule,
    set_fast,
    to_bool,
    to_int,
    to_size,
    watchlist_rule,
)
from cacherr.migrate.draft import Draft, PathEntry, Ref

_NO_EQUIVALENT = {
    "firststart": "cacherr starts with dry_run: true instead",
    "skip": "a setup-wizard flag",
    "watchlist_cache_expiry": "how long watchlist answers were reused; cacherr reads them "
                              "every cycle",
    "watched_cache_expiry": "how long watched-state answers were reused; cacherr reads them "
                            "every cycle",
    "ondeck_retention_days": "cacherr keeps On Deck items while they are on deck; the "
                             "rule's within bounds how old they may be",
    "cache_drive_size": "cacherr measures the pool itself",
    "plexcache_quota": "use cache.max_size",
    "cache_eviction_mode": "cacherr evicts by rule priority under space pressure",
    "cache_eviction_threshold_percent": "cacherr evicts by rule priority under space pressure",
    "eviction_min_priority": "set each rule's priority instead",
    "hardlinked_files": "cacherr decides per file (hardlinks are reported by `cacherr doctor`)",
    "check_hardlinks_on_restore": "no equivalent",
    "auto_transfer_upgrades": "cacherr follows what Plex reports each cycle",
    "backup_upgraded_files": "no equivalent",
    "excluded_folders": "write only the folders to cache in paths, or use rule libraries:",
    "cleanup_empty_folders": "cacherr removes the folders it created",
    "unraid_level": "use notify.events",
    "unraid_levels": "use notify.events",
    "webhook_level": "use notify.events",
    "webhook_levels": "use notify.events",
    "max_log_files": "logs go to the system log or `docker logs`",
    "keep_error_logs_days": "logs go to the system log or `docker logs`",
    "activity_retention_hours": "cacherr's history is in its ledger (`cacherr ls`)",
    "per_user_ondeck_days": "one `within` per rule: write a rule per group of users",
    "per_user_watchlist_days": "one keep per rule: write a rule per group of users",
    "prefetch_minimum_minutes": "use episodes_ahead",
    "plex_db_path": "cacherr reads Plex through its API only",
    "pinned_preferred_resolution": "use a rule's versions: smallest | largest",
    "mount_paths_validated": "`cacherr validate` checks the paths",
    "debug": "a new file always starts with dry_run: true",
}
_IGNORED = {"_comment"}


def convert(data: dict[str, Any], source: str) -> Draft:
    """Given the parsed plexcache_settings.json, return the Draft."""
    draft = Draft(source=source)
    settings = Settings(data, draft, fold_case=True)
    _plex(settings, draft)
    _paths(settings, draft)
    _cache(settings, draft)
    _rules(settings, draft)
    _users(settings, draft)
    _notify(settings, draft)
    for key, reason in _NO_EQUIVALENT.items():
        settings.skip(key, reason)
    for key in list(settings.data):
        if key not in _IGNORED:
            settings.skip(key, "not a PlexCache setting cacherr knows")
    return draft


def _plex(settings: Settings, draft: Draft) -> None:
    url = settings.get("plex_url", lambda value: normalise_plex_url(str(value)))
    if url:
        draft.plex_url, draft.plex_url_comment = url, "plex_url"
    token = settings.get("plex_token")
    if isinstance(token, str) and token.strip():
        draft.references["PLEX_TOKEN"] = token.strip()
        draft.plex_token_comment = "PLEX_TOKEN, moved from your settings to the .env beside " \
                                   "this file (readable by its owner only)"
    rss = settings.get("remote_watchlist_rss_url")
    wanted = settings.get("remote_watchlist_toggle", to_bool)
    if isinstance(rss, str) and rss.strip() and wanted is not False:
        if rss.startswith(("http://", "https://")):
            draft.references["PLEX_WATCHLIST_RSS"] = rss.strip()
            draft.watchlist_rss = Ref("PLEX_WATCHLIST_RSS")
        else:
            draft.skip("remote_watchlist_rss_url", rss, "not an http(s) URL", secret=True)


def _paths(settings: Settings, draft: Draft) -> None:
    mappings = settings.get("path_mappings")
    fast_roots: Counter[str] = Counter()
    if isinstance(mappings, list) and mappings:
        for index, mapping in enumerate(mappings):
            label = f"path_mappings[{index}]"
            if not isinstance(mapping, dict) or not mapping.get("plex_path") or \
                    not mapping.get("real_path"):
                draft.skip(label, mapping, "needs plex_path and real_path")
                continue
            name = mapping.get("name") or ""
            if mapping.get("enabled") is False:
                draft.skip(f"{label} {name}".strip(), mapping["plex_path"], "disabled: left out")
                continue
            if mapping.get("cacheable") is False:
                draft.skip(f"{label} {name}".strip(), mapping["plex_path"],
                           "not cacheable (e.g. a remote share): left out, so cacherr skips it")
                continue
            plex, real = mapping["plex_path"].rstrip("/") or "/", mapping["real_path"].rstrip("/") or "/"
            draft.paths.append(PathEntry(plex, real, name))
            root = _pool_root(real, mapping.get("cache_path"))
            if root:
                fast_roots[root] += 1
        for legacy in ("plex_source", "real_source", "plex_library_folders",
                       "nas_library_folders"):
            if legacy in settings.data:
                settings.raw(legacy)
                draft.notes.append(f"{legacy}: superseded by path_mappings (converted instead)")
    else:
        _legacy_paths(settings, draft)
    cache_dir = settings.get("cache_dir")
    if fast_roots:
        root, _count = fast_roots.most_common(1)[0]
        set_fast(draft, root, "path_mappings cache_path")
        if len(fast_roots) > 1:
            draft.skip("path_mappings cache_path", sorted(fast_roots),
                       f"several pools; cacherr caches to one ({root})")
    elif isinstance(cache_dir, str) and cache_dir.strip():
        pool = "/".join(cache_dir.rstrip("/").split("/")[:3])
        set_fast(draft, pool, "cache_dir")


def _pool_root(real: str, cache: Any) -> str | None:
    """/mnt/user/media/tv + /mnt/cache/media/tv -> /mnt/cache (same share-relative path)."""
    if not isinstance(cache, str) or not real.startswith("/mnt/user/"):
        return None
    cache = cache.rstrip("/")
    relative = real[len("/mnt/user"):]
    return cache[:-len(relative)] if cache.endswith(relative) else None


def _legacy_paths(settings: Settings, draft: Draft) -> None:
    plex_source = settings.get("plex_source")
    real_source = settings.get("real_source")
    plex_folders = settings.get("plex_library_folders") or []
    nas_folders = settings.get("nas_library_folders") or []
    if not isinstance(plex_source, str) or not isinstance(real_source, str):
        return
    if plex_folders and len(plex_folders) == len(nas_folders):
        for plex_folder, nas_folder in zip(plex_folders, nas_folders, strict=True):
            draft.paths.append(PathEntry(posixpath.join(plex_source, str(plex_folder)),
                                         posixpath.join(real_source, str(nas_folder))))
    else:
        if plex_folders or nas_folders:
            draft.skip("plex_library_folders/nas_library_folders",
                       f"{len(plex_folders)} vs {len(nas_folders)}",
                       "unequal counts: mapped plex_source to real_source as a whole")
        draft.paths.append(PathEntry(plex_source.rstrip("/") or "/",
                                     real_source.rstrip("/") or "/"))


def _cache(settings: Settings, draft: Draft) -> None:
    if settings.get("use_symlinks", to_bool):
        draft.skip("use_symlinks", True, "cacherr's symlink layout needs dir and plex_dir: "
                   "see rules/symlink.yaml")
    backups = settings.get("create_plexcached_backups", to_bool)
    if backups is not None:
        draft.original = "backup" if backups else "move"
        draft.original_comment = ("create_plexcached_backups" + (
            "; on Unraid, shadow (keep the array copy as is) avoids the renamed files"
            if backups else "=false; shadow (keep the array copy) is the safer choice"))
    draft.max_size = settings.get("cache_limit", _size_or_none)
    draft.min_free = settings.get("min_free_space", _size_or_none)
    to_cache = settings.get("max_concurrent_moves_cache", to_int, 1, 16)
    to_slow = settings.get("max_concurrent_moves_array", to_int, 1, 16)
    draft.transfers = {key: value for key, value in
                       (("to_cache", to_cache), ("to_slow", to_slow)) if value}
    if settings.get("exit_if_active_session", to_bool):
        draft.defer_while_playing = "any"
    associated = settings.get("cache_associated_files")
    if associated is not None:
        if associated in (True, "subtitles"):
            draft.sidecars = "subtitles"
        elif associated in ("all", "none") or associated is False:
            draft.sidecars = "none" if associated in (False, "none") else "all"
        else:
            draft.skip("cache_associated_files", associated, "use cache.sidecars: "
                       "none | subtitles | all")


def _size_or_none(value: Any) -> str | None:
    return None if str(value).strip() in ("", "0") else to_size(value)


def _rules(settings: Settings, draft: Draft) -> None:
    days = settings.get("days_to_monitor", to_int, 1, 100000)
    episodes = settings.get("number_episodes", to_int, 0, 100)
    hours = settings.get("cache_retention_hours", to_int, 0, 100000)
    ondeck = ondeck_rule(days, episodes, hours, "cache_retention_hours")
    if settings.get("watched_move", to_bool) is False:
        draft.skip("watched_move", False, "watched files stayed on the cache; cacherr puts back "
                   "what no rule keeps (a longer keep: min keeps them a while)")
    draft.rules.append(ondeck)
    if settings.get("watchlist_toggle", to_bool):
        watchlists = watchlist_rule()
        count = settings.get("watchlist_episodes", to_int, 1, 100)
        if count:
            watchlists.options["episodes"] = count
        retention = settings.get("watchlist_retention_days", to_int, 0, 100000)
        if retention:
            watchlists.keep = {"for": f"{retention}d"}
            watchlists.comment = "keep: for from watchlist_retention_days"
        draft.rules.append(watchlists)
    else:
        for key in ("watchlist_episodes", "watchlist_retention_days"):
            settings.skip(key, "watchlists were off (watchlist_toggle)")
    sections = settings.get("valid_sections")
    if isinstance(sections, list) and sections:
        draft.library_ids = [str(section) for section in sections]


def _users(settings: Settings, draft: Draft) -> None:
    if settings.get("users_toggle", to_bool) is False:
        draft.users_include_comment = "users_toggle=false: write [your Plex user name] for the owner only"
        draft.skip("users_toggle", False, "only the owner counted: set users.include to "
                   "[your Plex user name]")
    users = settings.get("users")
    tokens = {}
    if isinstance(users, list):
        for user in users:
            if not isinstance(user, dict) or not user.get("title"):
                continue
            title = str(user["title"])
            if user.get("token"):
                tokens[str(user["token"])] = title
            skip_ondeck, skip_watchlist = bool(user.get("skip_ondeck")), bool(user.get("skip_watchlist"))
            if skip_ondeck and skip_watchlist:
                draft.users_exclude.append(title)
            elif skip_ondeck or skip_watchlist:
                what = "On Deck" if skip_ondeck else "watchlist"
                draft.skip(f"users[{title}]", f"skip_{'ondeck' if skip_ondeck else 'watchlist'}",
                           f"skipped for {what} only: list the other users (and the owner) "
                           f"in that rule's users:")
        if tokens:
            draft.notes.append("users[].token: not copied (cacherr asks plex.tv; add "
                               "plex.user_tokens for a user it cannot get a token for)")
    for key, what in (("skip_ondeck", "On Deck"), ("skip_watchlist", "watchlist")):
        skipped = settings.get(key)
        if skipped == []:
            draft.empty_settings.append(key)
        if isinstance(skipped, list) and skipped:
            named = [tokens[str(item)] for item in skipped if str(item) in tokens]
            shown = ", ".join(named) if len(named) == len(skipped) else f"{len(skipped)} token(s)"
            draft.skip(key, shown, f"skipped for {what} only: list the other users (and the "
                       "owner) in that rule's users:, or add them to users.exclude")
    skip_users = settings.get("skip_users")
    if skip_users == []:
        draft.empty_settings.append("skip_users")
    if isinstance(skip_users, list) and skip_users:
        named = [tokens[str(item)] for item in skip_users if str(item) in tokens]
        draft.users_exclude += [name for name in named if name not in draft.users_exclude]
        if len(named) != len(skip_users):
            draft.skip("skip_users", f"{len(skip_users) - len(named)} token(s)",
                       "user tokens with no user name here: add the names to users.exclude",
                       secret=True)


def _notify(settings: Settings, draft: Draft) -> None:
    from cacherr.notify.schemes import url_is_valid

    kind = str(settings.get("notification_type") or "").strip().lower()
    webhook = settings.get("webhook_url")
    if kind in ("webhook", "both") and isinstance(webhook, str) and webhook.strip():
        if url_is_valid(webhook.strip()):
            draft.references["NOTIFY_URL"] = webhook.strip()
            draft.notify_urls.append(Ref("NOTIFY_URL"))
        else:
            draft.skip("webhook_url", webhook, "Apprise does not recognise this URL: write it "
                       "as an Apprise URL in notify.urls", secret=True)
    elif webhook:
        draft.skip("webhook_url", webhook, "notifications by webhook were off", secret=True)
    elif webhook == "":
        draft.empty_settings.append("webhook_url")
    if kind in ("unraid", "both"):
        draft.notify_urls.append("unraid://")
    elif kind and kind not in ("webhook", "none", "system"):
        draft.skip("notification_type", kind, "unknown kind: use Apprise URLs in notify.urls")
