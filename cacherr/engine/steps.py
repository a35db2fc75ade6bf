"""The steps every layout row is made of. Each one is durable (fsynced, folder included)
before it is journalled, so the journal never claims more than the disks hold."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cacherr.engine.actions import Action
from cacherr.engine.checkpoints import Checkpoints
from cacherr.engine.copy import CopyOptions, CopyResult, durable_copy, rename_noreplace
from cacherr.engine.errors import InUse
from cacherr.engine.journal import Journal
from cacherr.engine.paths import fsync_folder, remove_empty_folders, remove_if_present
from cacherr.state.ledger import FileIdentity


@dataclass(frozen=True)
class Context:
    """What a step needs besides its action: where to journal, how to copy, whom to ask."""

    journal: Journal
    checkpoints: Checkpoints
    copy_options: CopyOptions
    session_check: Callable[[str], bool] | None  # True = a player is reading the file


def make_folders(ctx: Context, action_id: int, action: Action, *, to_slow: bool = False) -> None:
    """Create the action's missing folders with their counterparts' owner and mode: on the
    fast side (copied from the slow side), or with `to_slow` the other way round."""
    here, there = (
        (action.slow_branch, action.fast_branch)
        if to_slow
        else (action.fast_branch, action.slow_branch)
    )
    for folder in map(Path, action.created_folders):
        counterpart = Path(there) / folder.relative_to(here)
        st = os.stat(counterpart)
        try:
            os.mkdir(folder, 0o700)  # private until it has its final owner and mode
        except FileExistsError:
            continue
        os.chown(folder, st.st_uid, st.st_gid)
        os.chmod(folder, st.st_mode & 0o7777)
        fsync_folder(folder.parent)
    ctx.journal.step(action_id, "folders-made")


def copy_file(
    ctx: Context,
    action_id: int,
    source: Path,
    target: Path,
    action: Action,
    expected: FileIdentity | None = None,
) -> CopyResult:
    """The durable copy of `source` (which must still be `expected`, by default
    `action.slow`) to `target`."""
    result = durable_copy(source, target, expected or action.slow, ctx.copy_options)
    ctx.journal.step(action_id, "copied")
    return result


def link_backup(ctx: Context, action_id: int, original: Path, backup: Path) -> None:
    """Keep the original's inode under a hidden name beside it (a hardlink: no data moves)."""
    os.link(original, backup, follow_symlinks=False)
    ctx.checkpoints.reached("backup-linked")
    fsync_folder(backup.parent)
    ctx.journal.step(action_id, "backed-up")


def swap_symlink(
    ctx: Context, action_id: int, original: Path, link_temp: Path, link_target: str
) -> None:
    """Atomically replace the original's name with a symlink to the cached copy."""
    remove_if_present(link_temp)
    os.symlink(link_target, link_temp)
    ctx.checkpoints.reached("link-created")
    os.rename(link_temp, original)
    ctx.checkpoints.reached("link-renamed")
    fsync_folder(original.parent)
    ctx.journal.step(action_id, "swapped")


def hide_original(ctx: Context, action_id: int, original: Path, backup: Path) -> None:
    """union / backup: rename the slow copy to its hidden backup name (never over a file)."""
    rename_noreplace(original, backup)
    ctx.checkpoints.reached("original-renamed")
    fsync_folder(original.parent)
    ctx.journal.step(action_id, "backed-up")


def remove_original(ctx: Context, action_id: int, original: Path) -> None:
    """original: move, once the copy is durable: delete the slow copy."""
    os.unlink(original)
    ctx.checkpoints.reached("original-unlinked")
    fsync_folder(original.parent)
    ctx.journal.step(action_id, "original-removed")


def restore_backup(
    ctx: Context, action_id: int, backup: Path, original: Path, *, replace: bool = True
) -> None:
    """Atomically put the original back: over the symlink, or (`replace=False`, the
    union layout) at its free name."""
    if replace:
        os.rename(backup, original)
    else:
        rename_noreplace(backup, original)
    ctx.checkpoints.reached("backup-renamed")
    fsync_folder(original.parent)
    ctx.journal.step(action_id, "restored")


def require_idle(ctx: Context, action: Action) -> None:
    """Ask the sessions again just before a destructive step; raise InUse if playing."""
    if ctx.session_check is None:
        return
    for path in filter(None, (action.relative_path, action.sidecar_of)):
        if ctx.session_check(path):
            raise InUse(action.relative_path, f"a player is reading {path}; {action.kind} it later")


def remove_copy(ctx: Context, action_id: int, path: Path, keep_folder: Path) -> None:
    """Delete the cached copy, then its folders that are left empty, up to `keep_folder`."""
    remove_if_present(path)
    ctx.checkpoints.reached("copy-unlinked")
    fsync_folder(path.parent)
    folders = []
    folder = path.parent
    while folder != keep_folder and keep_folder in folder.parents:
        folders.append(folder)
        folder = folder.parent
    remove_empty_folders(folders)
    ctx.journal.step(action_id, "removed")
