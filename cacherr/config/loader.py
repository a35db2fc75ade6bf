"""Loading a rules file: parse, substitute, validate, check, and build the typed Config.

The user's file is only ever read; defaults are applied in memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cacherr.config import checks, dotenv, model, places
from cacherr.config.envsubst import substitute
from cacherr.config.errors import ConfigError, Problem
from cacherr.config.units import format_bytes, parse_duration, parse_size
from cacherr.config.validate import schema_problems
from cacherr.config.yamlpos import MAX_FILE_BYTES, decode, parse
from cacherr.host.container import default_mover_list

DEFAULT_LOCATIONS = (
    Path("rules.yaml"),
    Path("/config/rules.yaml"),
    Path("/boot/config/plugins/cacherr/rules.yaml"),
)


class ConfigNotFound(Exception):
    """No rules file where cacherr looks."""


def discover(explicit: str | None, environ: Mapping[str, str] = os.environ) -> Path:
    """Given `-c RULES` (or None), return the rules file: -c, $CACHERR_CONFIG, then defaults."""
    if explicit:
        return Path(explicit)
    if environ.get("CACHERR_CONFIG"):
        return Path(environ["CACHERR_CONFIG"])
    for candidate in DEFAULT_LOCATIONS:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(p) for p in DEFAULT_LOCATIONS)
    raise ConfigNotFound(f"no rules file found (tried $CACHERR_CONFIG, {tried}); "
                         "give one with -c RULES, or create one with `cacherr init`")


def load(path: str | Path, environ: Mapping[str, str] = os.environ, *,
         offline: bool = False) -> model.Config:
    """Given a rules file, return its Config; raise ConfigError with every problem at once.

    `${VAR}` takes VAR from `environ`, else from the `.env` file beside the rules file.
    Relative paths in the file are relative to its folder. `offline` skips the checks
    that look at this host (paths exist, devices differ). Raise OSError if the file
    cannot be read.
    """
    path = Path(path)
    text = read_text(path)
    document, problems = check_text(text, dotenv.environment(path, environ), offline=offline,
                                    base=path.absolute().parent)
    if problems:
        raise ConfigError(str(path), problems)
    return build(document, path, offline=offline)


def read_text(path: Path) -> str:
    """The text of a rules file, read no further than MAX_FILE_BYTES; raise ConfigError
    for a larger file or one that is not UTF-8, and OSError if it cannot be read."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            size = os.fstat(handle.fileno()).st_size
            raise ConfigError(str(path), [Problem(
                1, 1, "(file)", f"the file is {format_bytes(max(size, len(data)))}; a rules "
                f"file is at most {format_bytes(MAX_FILE_BYTES)} (is this the right file?)")])
    text, problems = decode(data)
    if text is None:
        raise ConfigError(str(path), problems)
    return text


def check_text(text: str, environ: Mapping[str, str], *, offline: bool = False,
               base: Path | None = None) -> tuple[Any, list[Problem]]:
    """Given the text of a rules file, return (substituted document, every problem).

    `base` is the rules file's folder: relative host paths are taken from there (None
    leaves them as written, for text that has no file yet).
    """
    document, positions, problems = parse(text)
    if document is None:
        return None, problems
    if not isinstance(document, dict):
        return document, problems + [Problem(1, 1, "(root)", "the rules file must be a "
                                             "mapping of keys (version, plex, paths, ...)")]
    document, env_problems = substitute(document, environ, positions)
    if base is not None:
        document = places.absolute_paths(document, base)
    found = (schema_problems(document, positions) + checks.check_meaning(document, positions)
             + places.check_places(document, positions, base=base))
    if not offline:
        found += places.check_host(document, positions, base=base)
    # An unset variable, or a value YAML could not read, is the one problem of its value:
    # what follows from what it left (empty, too short, not a URL) would only repeat it.
    unset = {problem.path for problem in env_problems + problems}
    problems += env_problems + [problem for problem in found if problem.path not in unset]
    return document, problems


# -- building the typed model --------------------------------------------------------


def _duration(value: str | None, default: float | None = None) -> float | None:
    return default if value is None else parse_duration(value)


def build(doc: dict[str, Any], source_path: Path, *, offline: bool = False) -> model.Config:
    """Given a valid document, return the Config with every default applied."""
    cache = doc["cache"]
    layout = cache["layout"]
    state_dir = Path(doc.get("state_dir") or source_path.resolve().parent / "state")
    return model.Config(
        source_path=source_path,
        plex=_build_plex(doc["plex"]),
        paths=tuple(model.PathMapping(m["plex"].rstrip("/") or "/", m["host"].rstrip("/") or "/")
                    for m in doc["paths"]),
        cache=_build_cache(cache, layout, state_dir, offline),
        users=_build_users(doc.get("users") or {}),
        rules=tuple(_build_rule(rule) for rule in doc["rules"]),
        trakt=model.TraktConfig(client_id=(doc.get("trakt") or {}).get("client_id") or None),
        schedule=model.ScheduleConfig(
            every_seconds=parse_duration((doc.get("schedule") or {}).get("every", "1h")),
            sessions_every_seconds=parse_duration(
                (doc.get("schedule") or {}).get("sessions_every", "30s")),
        ),
        notify=_build_notify(doc.get("notify") or {}),
        server=_build_server(doc.get("server") or {}),
        host=_build_host(doc.get("host") or {}),
        state_dir=state_dir,
        dry_run=bool(doc.get("dry_run", False)),
        source_failure_grace_seconds=parse_duration(doc.get("source_failure_grace", "24h")),
    )


def _build_plex(plex: dict[str, Any]) -> model.PlexConfig:
    return model.PlexConfig(
        url=plex["url"].rstrip("/"),
        token=plex["token"],
        watchlist_rss=plex.get("watchlist_rss") or None,
        user_tokens=dict(plex.get("user_tokens") or {}),
        timeout_seconds=parse_duration(plex.get("timeout", "30s")),
        alerts=bool(plex.get("alerts", True)),
    )


def _build_cache(cache: dict[str, Any], layout: str, state_dir: Path,
                 offline: bool) -> model.CacheConfig:
    union = symlink = None
    if layout == "union":
        block = cache["union"]
        patterns = tuple(block["slow"])
        slow = (tuple(Path(p) for p in patterns) if offline
                else tuple(places.expand_branches(list(patterns))))
        union = model.UnionLayout(view=Path(block["view"]), fast=Path(block["fast"]),
                                  slow=slow, slow_patterns=patterns)
    else:
        block = cache["symlink"]
        symlink = model.SymlinkLayout(dir=Path(block["dir"]),
                                      plex_dir=block["plex_dir"].rstrip("/") or "/")
    transfers = cache.get("transfers") or {}
    bandwidth = cache.get("bandwidth")
    return model.CacheConfig(
        layout=layout,
        original=cache.get("original") or ("shadow" if layout == "union" else "backup"),
        union=union,
        symlink=symlink,
        max_size=parse_size(cache.get("max_size", "80%")),
        min_free=parse_size(cache.get("min_free", "10%")),
        sidecars=cache.get("sidecars", "subtitles"),
        verify=cache.get("verify", "size"),
        transfers=model.Transfers(to_cache=transfers.get("to_cache", 2),
                                  to_slow=transfers.get("to_slow", 1)),
        mover_exclude_file=Path(cache.get("mover_exclude_file")
                                or default_mover_list(state_dir, union.fast if union
                                                      else symlink.dir)),
        defer_while_playing=cache.get("defer_while_playing", "never"),
        bandwidth_bytes_per_second=(parse_size(bandwidth, allow_percent=False).bytes
                                    if bandwidth else None),
    )


def _build_users(users: dict[str, Any]) -> model.UsersConfig:
    include = users.get("include", "all")
    return model.UsersConfig(
        include=None if include == "all" else tuple(include),
        exclude=tuple(users.get("exclude") or ()),
        inactive_after_seconds=_duration(users.get("inactive_after")),
    )


def _build_keep(keep: dict[str, Any] | None) -> model.Keep:
    keep = keep or {"while": "selected"}
    if "for" in keep:
        return model.Keep(for_seconds=parse_duration(keep["for"]))
    if "until" in keep:
        return model.Keep(until_watched=True,
                          grace_seconds=parse_duration(keep.get("grace", "0s")))
    return model.Keep(while_selected=True, min_seconds=parse_duration(keep.get("min", "0s")))


def _build_rule(rule: dict[str, Any]) -> model.Rule:
    max_file_size = rule.get("max_file_size")
    return model.Rule(
        name=rule["name"],
        select=rule["select"],
        keep=_build_keep(rule.get("keep")),
        priority=rule.get("priority", 50),
        within_seconds=_duration(rule.get("within")),
        episodes_ahead=rule.get("episodes_ahead", 0),
        ahead_seconds=_duration(rule.get("ahead")) if rule.get("ahead") != "auto" else None,
        ahead_auto=rule.get("ahead") == "auto",
        ahead_max=rule.get("ahead_max", 10),
        episodes=rule.get("episodes", 1),
        when=rule.get("when", "start"),
        list=rule.get("list"),
        limit=rule.get("limit", 10),
        label=rule.get("label"),
        paths=tuple(rule.get("paths") or ()),
        users=tuple(rule["users"]) if rule.get("users") is not None else None,
        libraries=tuple(rule["libraries"]) if rule.get("libraries") is not None else None,
        versions=rule.get("versions", "all"),
        max_file_size_bytes=(parse_size(max_file_size, allow_percent=False).bytes
                             if max_file_size else None),
    )


def _build_notify(notify: dict[str, Any]) -> model.NotifyConfig:
    defaults = model.NotifyConfig()
    return model.NotifyConfig(
        urls=tuple(url for url in notify.get("urls") or () if url),
        events=tuple(notify.get("events", defaults.events)),
        unraid_notify_script=notify.get("unraid_script", defaults.unraid_notify_script),
    )


def _build_server(server: dict[str, Any]) -> model.ServerConfig:
    host, _, port = server.get("listen", "0.0.0.0:5445").rpartition(":")
    return model.ServerConfig(listen_host=host.strip("[]") or "0.0.0.0", listen_port=int(port),
                              token=server.get("token") or None,
                              protect_cached=bool(server.get("protect_cached", False)))


def _build_host(host: dict[str, Any]) -> model.HostConfig:
    defaults = model.HostConfig()
    return model.HostConfig(
        mover_pid_file=Path(host.get("mover_pid_file", defaults.mover_pid_file)),
        emhttp_dir=Path(host.get("emhttp_dir", defaults.emhttp_dir)),
        boot_config_dir=Path(host.get("boot_config_dir", defaults.boot_config_dir)),
    )
