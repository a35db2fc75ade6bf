"""Doctor's checks of the host: Plex, paths, branches, Unraid shares and the mover."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import requests

from cacherr.config.model import Config
from cacherr.doctor import mover_checks
from cacherr.doctor.findings import Finding
from cacherr.host import unraid
from cacherr.host.mounts import is_separate_mount
from cacherr.sources.pathmap import PathMapper
from cacherr.state.statedir import StateDirError, check_state_dir


def check_plex(config: Config) -> tuple[list[Finding], list[str]]:
    """Plex answers with the owner's token; return findings and its library folders."""
    try:
        response = requests.get(f"{config.plex.url}/library/sections",
                                headers={"X-Plex-Token": config.plex.token,
                                         "Accept": "application/xml"},
                                timeout=min(config.plex.timeout_seconds, 10))
    except requests.RequestException as error:
        return [Finding("problem", "plex", f"{config.plex.url} is unreachable: "
                        f"{type(error).__name__}",
                        "check plex.url (as this host reaches Plex) and that Plex runs")], []
    if response.status_code == 401:
        return [Finding("problem", "plex", "Plex refused the token (401)",
                        "set plex.token to the server owner's X-Plex-Token")], []
    if response.status_code != 200:
        return [Finding("problem", "plex", f"Plex answered HTTP {response.status_code}",
                        "check plex.url")], []
    try:
        root = ET.fromstring(response.content)
    except ET.ParseError:
        return [Finding("problem", "plex", "Plex's answer is not XML", "check plex.url")], []
    folders = [location.get("path", "") for location in root.iter("Location")]
    return [Finding("ok", "plex", f"reachable, {len(folders)} library folders")], folders


def check_paths(config: Config, library_folders: list[str]) -> list[Finding]:
    findings = []
    mapper = PathMapper(config.paths)
    for folder in library_folders:
        host = mapper.to_host(folder.rstrip("/") + "/x")
        if host is None:
            findings.append(Finding("problem", "paths", f"Plex library folder {folder} is "
                                    "covered by no `paths` entry",
                                    mapper.suggestion(folder.rstrip("/") + "/x", library_folders)))
        elif not os.path.isdir(os.path.dirname(host)):
            findings.append(Finding("problem", "paths", f"{folder} maps to "
                                    f"{os.path.dirname(host)}, which does not exist here",
                                    "fix the `host` side of the mapping"))
    if library_folders and not findings:
        findings.append(Finding("ok", "paths", "every Plex library folder maps to this host"))
    return findings


def check_branches(config: Config) -> list[Finding]:
    cache = config.cache
    fast = Path(cache.union.fast if cache.layout == "union" else cache.symlink.dir)
    findings = []
    if not fast.is_dir():
        return [Finding("problem", "branches", f"{fast} does not exist",
                        "create the pool / cache folder, or fix the path")]
    if not is_separate_mount(fast):
        findings.append(Finding("problem", "branches", f"{fast} is on the root file system "
                                "(an unmounted pool is a folder in RAM)",
                                "mount the pool, or point cache at the mounted pool"))
    if cache.layout == "union":
        fast_dev = os.stat(fast).st_dev
        if not cache.union.slow:
            findings.append(Finding("problem", "branches", "no slow branch exists",
                                    "fix cache.union.slow"))
        for branch in cache.union.slow:
            if os.stat(branch).st_dev == fast_dev:
                findings.append(Finding("problem", "branches", f"{branch} shares a device "
                                        f"with {fast}", "slow branches must be other disks"))
    if not findings:
        findings.append(Finding("ok", "branches", f"{fast} is its own mounted file system"))
    return findings


def check_state(config: Config) -> list[Finding]:
    try:
        check = check_state_dir(config.state_dir)
    except StateDirError as error:
        return [Finding("problem", "state_dir", str(error), "set state_dir to a pool path")]
    findings = [Finding("warning", "state_dir", warning, "") for warning in check.warnings]
    probe = Path(config.state_dir)
    writable = os.access(probe if probe.exists() else probe.parent, os.W_OK)
    if not writable:
        findings.append(Finding("problem", "state_dir", f"{probe} is not writable",
                                "give cacherr's user write access"))
    return findings or [Finding("ok", "state_dir", f"{probe} ({check.fs_type})")]


def check_unraid(config: Config) -> list[Finding]:
    """Share/pool settings and every way the mover runs (mover_checks; Unraid only)."""
    host = config.host
    version = unraid.unraid_version(host)
    if version is None:
        return [Finding("unknown", "unraid", f"no Unraid state in {host.emhttp_dir}; "
                        "Unraid checks skipped")]
    findings: list[Finding] = []
    if config.cache.layout == "union":
        pool = Path(config.cache.union.fast).name
        for share in _shares(config):
            settings = unraid.share_pools(host, share)
            if settings is None:
                findings.append(Finding("unknown", "share", f"{share}: no readable config"))
                continue
            use_cache, pools = settings
            if pool not in pools:
                findings.append(Finding("problem", "share", f"share {share} does not use pool "
                                        f"{pool} (uses {', '.join(sorted(pools)) or 'none'})",
                                        f"set {share}'s primary or secondary storage to {pool}, "
                                        "or point cache.union.fast at the share's pool"))
            elif use_cache == "prefer":
                findings.append(Finding("warning", "share", f"share {share} is 'prefer': the "
                                        "mover pulls everything to the pool, fighting evictions",
                                        "set the mover action to Pool → Array (yes)"))
            elif use_cache in ("yes",):
                findings.append(Finding("ok", "share", f"share {share} uses {pool}"))
    shares = _shares(config) if config.cache.layout == "union" else None
    findings += mover_checks.check_mover(host, version, config.cache.mover_exclude_file, shares)
    if config.cache.original == "move":
        findings.append(Finding("warning", "original", "original: move keeps a single copy "
                                "on the pool", "use a pool with redundancy (mirror), or "
                                "original: shadow"))
    return findings


def _shares(config: Config) -> list[str]:
    view = Path(config.cache.union.view)
    shares = set()
    for mapping in config.paths:
        try:
            relative = Path(mapping.host).relative_to(view)
        except ValueError:
            continue
        if relative.parts:
            shares.add(relative.parts[0])
        else:  # Plex's folder is the whole view: every share on the pool may be cached
            fast = Path(config.cache.union.fast)
            if fast.is_dir():
                shares.update(child.name for child in fast.iterdir()
                              if child.is_dir() and not child.is_symlink())
    return sorted(shares)
