"""Planning one action: where the file is, where it goes, what must hold first.

Reads only (lstat, statvfs, the share's Unraid config); raises Refused or NoSpace with
the reason before anything is written. The Action it returns is what the journal records.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cacherr.config.model import HostConfig, SymlinkLayout, UnionLayout
from cacherr.engine import paths
from cacherr.engine.actions import Action
from cacherr.engine.copy import identity_of
from cacherr.engine.errors import NoSpace, Refused
from cacherr.host import unraid
from cacherr.host.container import can_keep_any_owner
from cacherr.state.ledger import CachedFile

MISSING_CAPABILITIES = "the capabilities CHOWN, FOWNER and FSETID"


def require_owner(path: Path, st: os.stat_result) -> None:
    """Invariant 8: without the capabilities to keep any owner (CHOWN, FOWNER and FSETID:
    root's, or the image's), a file or folder of another owner (or of a group we are not in)
    cannot keep its owner on the other side: Refused, the file is skipped."""
    if can_keep_any_owner():
        return
    if st.st_uid != os.geteuid():
        raise Refused(path, f"owned by uid {st.st_uid}: its owner cannot be kept without root "
                      f"(or {MISSING_CAPABILITIES})")
    if st.st_gid != os.getegid() and st.st_gid not in os.getgroups():
        raise Refused(path, f"group {st.st_gid} cannot be kept without root "
                      f"(or {MISSING_CAPABILITIES})")


def require_owners(files_and_folders: Sequence[Path]) -> None:
    for path in files_and_folders:
        require_owner(path, os.lstat(path))


def require_share_uses_pool(host: HostConfig | None, share: str, fast: Path) -> None:
    """Refuse a pool that the share's Unraid config (when readable) does not use."""
    if host is None:
        return
    found = unraid.share_pools(host, share)
    if found is None:
        return  # not on Unraid, or the config is not visible here
    use_cache, pools = found
    if use_cache == "no" or fast.name not in pools:
        raise Refused(
            fast,
            f"the share {share!r} does not use the pool {fast.name!r} "
            f"(shareUseCache={use_cache}, pools: {', '.join(sorted(pools)) or 'none'}); "
            "Plex would not see the copy",
        )


def share_allows_disk(host: HostConfig | None, share: str, branch: Path) -> bool:
    """The share's included/excluded disks (Unraid's shareInclude/shareExclude), if known."""
    values = None if host is None else unraid.share_config(host, share)
    if not values:
        return True
    include = {n.strip() for n in values.get("shareInclude", "").split(",")} - {""}
    exclude = {n.strip() for n in values.get("shareExclude", "").split(",")} - {""}
    return (not include or branch.name in include) and branch.name not in exclude


def _counterparts(created: Sequence[Path], here: Path, there: Path) -> list[Path]:
    return [there / folder.relative_to(here) for folder in created]


def union_cache(
    union: UnionLayout,
    original: str,
    relative_path: str,
    parts: tuple[str, ...],
    *,
    host: HostConfig | None = None,
    sidecar_of: str | None = None,
) -> Action:
    """Find the file on a slow branch and plan its copy to the pool (union layout).

    A hardlinked file (st_nlink > 1: still seeding?) is cached as a shadow whatever
    `original` says: hiding or removing one of its names would free nothing.
    """
    fast = Path(union.fast)
    paths.require_outside(fast, union.view)
    paths.require_fast_branch(fast)
    share_top = fast / parts[0]
    if not share_top.is_dir() or share_top.is_symlink():
        raise Refused(
            share_top,
            "the share has no top-level folder on the fast branch; "
            "cacherr never creates one (is the pool one of the share's storages?)",
        )
    require_share_uses_pool(host, parts[0], fast)
    created = paths.walk_folders(fast, parts)
    if os.path.lexists(fast / relative_path):
        raise Refused(fast / relative_path, "already on the fast branch (adopt it instead)")
    for branch in map(Path, union.slow):
        paths.require_outside(branch, union.view)
        try:
            if paths.walk_folders(branch, parts):
                continue  # a folder is missing: the file is not on this branch
        except FileNotFoundError:
            continue  # the branch itself is gone (a removed disk)
        slow_file = branch / relative_path
        st = paths.regular_file(slow_file)
        if st is None:
            continue
        paths.require_other_device(fast, branch)
        require_owner(slow_file, st)
        require_owners(_counterparts(created, fast, branch))
        policy = "shadow" if st.st_nlink > 1 else original
        backup_name = None
        if policy == "backup":
            backup = paths.backup_path(slow_file)
            if os.path.lexists(backup):
                raise Refused(backup, "already exists; run doctor to sort it out")
            backup_name = backup.name
        return Action(
            "cache",
            "union",
            policy,
            relative_path,
            str(fast),
            str(branch),
            identity_of(st),
            backup_name=backup_name,
            created_folders=tuple(str(f) for f in created),
            sidecar_of=sidecar_of,
        )
    raise Refused(relative_path, "is on none of the slow branches")


def symlink_cache(
    layout: SymlinkLayout,
    roots: Sequence[Path],
    original_policy: str,
    relative_path: str,
    parts: tuple[str, ...],
    root: Path | None,
    *,
    sidecar_of: str | None = None,
) -> Action:
    """Find the original under a root and plan its copy to the cache dir (symlink layout)."""
    cache_dir = Path(layout.dir)
    if root is not None and Path(root) not in roots:
        raise Refused(root, "is not one of the configured roots")
    for candidate in [Path(root)] if root is not None else roots:
        try:
            if paths.walk_folders(candidate, parts):
                continue
        except FileNotFoundError:
            continue
        st = paths.regular_file(candidate / relative_path)
        if st is None:
            continue
        original = candidate / relative_path
        if st.st_nlink > 1:
            raise Refused(
                original,
                f"has {st.st_nlink} hardlinks (still seeding?); "
                "the symlink layout skips hardlinked files",
            )
        paths.require_physical(candidate)
        paths.require_cache_dir(cache_dir)
        paths.require_other_device(cache_dir, candidate)
        require_owner(original, st)
        created = paths.walk_folders(cache_dir, parts)
        require_owners(_counterparts(created, cache_dir, candidate))
        for taken in (
            cache_dir / relative_path,
            paths.backup_path(original),
            paths.link_temp_path(original),
        ):
            if os.path.lexists(taken):
                raise Refused(taken, "already exists; run doctor to sort it out")
        return Action(
            "cache",
            "symlink",
            original_policy,
            relative_path,
            str(cache_dir),
            str(candidate),
            identity_of(st),
            backup_name=paths.backup_path(original).name if original_policy == "backup" else None,
            link_target=layout.plex_dir.rstrip("/") + "/" + relative_path,
            created_folders=tuple(str(f) for f in created),
            sidecar_of=sidecar_of,
        )
    raise Refused(relative_path, "is under none of the roots")


def move_back_target(
    entry: CachedFile,
    parts: tuple[str, ...],
    *,
    union: UnionLayout | None,
    host: HostConfig | None,
) -> tuple[Path, list[Path]]:
    """Union, original: move: the slow branch the file goes back to, and the folders to
    make there. The recorded branch first; another of the share's disks (today's slow
    branches that hold the share's folder, the roomiest first) when it is full or gone.
    Raise NoSpace if none has room, Refused if none can take it at all."""
    fast = Path(entry.fast_branch)
    size = entry.fast.size_bytes
    recorded = [Path(entry.slow_branch)] if entry.slow_branch else []
    others = [Path(b) for b in (union.slow if union else ()) if Path(b) not in recorded]
    why: list[str] = []
    candidates: list[tuple[int, int, Path, list[Path]]] = []
    for order, branch in enumerate(recorded + others):
        view = union.view if union else None
        try:
            paths.require_outside(branch, view)
            created = paths.walk_folders(branch, parts)
            if branch / parts[0] in created:
                why.append(f"{branch}: does not hold the share {parts[0]!r}")
                continue
            paths.require_other_device(fast, branch)
            free = paths.free_bytes(branch)
        except FileNotFoundError:
            why.append(f"{branch}: gone")
            continue
        except Refused as refused:
            why.append(f"{branch}: {refused.reason}")
            continue
        if not share_allows_disk(host, parts[0], branch):
            why.append(f"{branch}: excluded by the share's settings")
            continue
        if free < size:
            why.append(f"{branch}: full ({free} bytes free)")
            continue
        rank = 0 if branch in recorded else 1
        candidates.append((rank, -free if rank else order, branch, created))
    if not candidates:
        reasons = "; ".join(why) or "no slow branch configured"
        error = NoSpace if any("full" in w for w in why) else Refused
        raise error(entry.relative_path, f"no slow branch can take it back: {reasons}")
    _, _, branch, created = min(candidates, key=lambda c: (c[0], c[1]))
    require_owners(_counterparts(created, branch, fast))
    return branch, created
