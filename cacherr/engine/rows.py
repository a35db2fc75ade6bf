"""The rows of SPEC §4's table: each a sequence of steps, and a recovery that decides from
the disks (the journal only guides). The rows that hide or remove the original are in
rows_backup_move.py; table.py's `ROWS` is how the engine finds one.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cacherr.engine import steps
from cacherr.engine.actions import Action
from cacherr.engine.copy import identity_of
from cacherr.engine.errors import SourceChanged
from cacherr.engine.paths import fsync_folder, remove_empty_folders, remove_if_present, temp_path
from cacherr.state.ledger import FileIdentity


@dataclass(frozen=True)
class Decision:
    """What recovery found: finish the action (`done`) or undo it (`aborted`), and why."""

    state: str  # done | aborted
    outcome: str  # cached | evicted | rolled-back | untracked | ...
    fast: FileIdentity | None = None  # cache done: the copy's identity, for the ledger
    untrack: bool = False  # a file changed under cacherr: leave the disks, drop the entry


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _same_content_stamp(st: os.stat_result | None, identity: FileIdentity) -> bool:
    """A copy of `identity`: same size and mtime (the copy gets the source's times)."""
    return (
        st is not None
        and stat.S_ISREG(st.st_mode)
        and st.st_size == identity.size_bytes
        and st.st_mtime_ns == identity.mtime_ns
    )


def _remove_temp(path: Path) -> None:
    if remove_if_present(temp_path(path)):
        fsync_folder(path.parent)


def _require_identity(path: Path, identity: FileIdentity | None, what: str) -> None:
    st = _lstat(path)
    if st is None:
        raise SourceChanged(path, f"the {what} is missing")
    if not stat.S_ISREG(st.st_mode) or identity is None or identity_of(st) != identity:
        raise SourceChanged(path, f"the {what} changed since cacherr recorded it")


def copy_checked(ctx: steps.Context, action_id: int, action: Action) -> FileIdentity:
    """The start every row that then changes the original shares: folders, the durable
    copy, and the original checked unchanged on its branch (it is touched next)."""
    steps.make_folders(ctx, action_id, action)
    copied = steps.copy_file(ctx, action_id, action.slow_path, action.fast_path, action)
    _require_identity(action.slow_path, action.slow, "original")
    return copied.target


def require_our_symlink(path: Path) -> None:
    """Raise SourceChanged unless `path` is still a symlink (cacherr's, as the ledger says)."""
    link = _lstat(path)
    if link is None or not stat.S_ISLNK(link.st_mode):
        raise SourceChanged(path, "is no longer cacherr's symlink")


class UnionShadow:
    """union / shadow: copy slow → fast at the same share-relative path; evict deletes it."""

    layout, original = "union", "shadow"

    def cache(self, ctx: steps.Context, action_id: int, action: Action) -> FileIdentity:
        steps.make_folders(ctx, action_id, action)
        return steps.copy_file(ctx, action_id, action.slow_path, action.fast_path, action).target

    def evict(self, ctx: steps.Context, action_id: int, action: Action) -> None:
        _require_identity(action.fast_path, action.fast, "cached copy")
        _require_identity(action.slow_path, action.slow, "slow copy")
        ctx.journal.step(action_id, "checked")
        steps.require_idle(ctx, action)
        share_top = Path(action.fast_branch) / action.relative_path.split("/")[0]
        steps.remove_copy(ctx, action_id, action.fast_path, share_top)

    def recover_cache(self, action: Action) -> Decision:
        _remove_temp(action.fast_path)
        fast = _lstat(action.fast_path)
        if _same_content_stamp(fast, action.slow):
            # Renamed into place only after fsync and verification: complete.
            if _lstat_identity(action.slow_path) == action.slow:
                fsync_folder(action.fast_path.parent)
                return Decision("done", "cached", identity_of(fast))
            # The original changed after the copy: the copy is stale, and ours to drop.
            remove_if_present(action.fast_path)
            fsync_folder(action.fast_path.parent)
        remove_empty_folders([Path(f) for f in action.created_folders])
        return Decision("aborted", "rolled-back")

    def recover_evict(self, action: Action) -> Decision:
        if _lstat(action.fast_path) is not None:
            return Decision("aborted", "rolled-back")  # nothing was deleted yet
        share_top = Path(action.fast_branch) / action.relative_path.split("/")[0]
        folders, folder = [], action.fast_path.parent
        while folder != share_top and share_top in folder.parents:
            folders.append(folder)
            folder = folder.parent
        remove_empty_folders(folders)
        return Decision("done", "evicted")


def _lstat_identity(path: Path) -> FileIdentity | None:
    st = _lstat(path)
    return None if st is None or not stat.S_ISREG(st.st_mode) else identity_of(st)


class SymlinkBackup:
    """symlink / backup: copy to `dir`, hardlink the original to a backup name, swap the
    original path for a symlink; evict renames the backup back and deletes the copy."""

    layout, original = "symlink", "backup"

    def cache(self, ctx: steps.Context, action_id: int, action: Action) -> FileIdentity:
        copied_target = copy_checked(ctx, action_id, action)
        steps.link_backup(ctx, action_id, action.slow_path, action.backup_path)
        steps.require_idle(ctx, action)
        steps.swap_symlink(
            ctx, action_id, action.slow_path, action.link_temp_path, action.link_target or ""
        )
        return copied_target

    def evict(self, ctx: steps.Context, action_id: int, action: Action) -> None:
        require_our_symlink(action.slow_path)
        _require_identity(action.fast_path, action.fast, "cached copy")
        _require_identity(action.backup_path, action.slow, "backup of the original")
        ctx.journal.step(action_id, "checked")
        steps.require_idle(ctx, action)
        steps.restore_backup(ctx, action_id, action.backup_path, action.slow_path)
        steps.remove_copy(ctx, action_id, action.fast_path, Path(action.fast_branch))

    def recover_cache(self, action: Action) -> Decision:
        original, backup = action.slow_path, action.backup_path
        _remove_temp(action.fast_path)
        if remove_if_present(action.link_temp_path):
            fsync_folder(original.parent)
        now = _lstat(original)
        if now is not None and stat.S_ISLNK(now.st_mode):
            fast = _lstat(action.fast_path)
            if _lstat_identity(backup) == action.slow and _same_content_stamp(fast, action.slow):
                return Decision("done", "cached", identity_of(fast))
            return Decision("aborted", "inconsistent: symlink without backup or copy; left alone")
        if now is None and _lstat(backup) is not None:
            os.rename(backup, original)  # not reachable by our order, but never lose it
            fsync_folder(original.parent)
            now = _lstat(original)
        kept = _lstat(backup)
        if kept is not None and now is not None and kept.st_ino == now.st_ino:
            os.unlink(backup)  # the second name of the same inode: no data goes
            fsync_folder(original.parent)
        if _same_content_stamp(_lstat(action.fast_path), action.slow):
            os.unlink(action.fast_path)
            fsync_folder(action.fast_path.parent)
        remove_empty_folders([Path(f) for f in action.created_folders])
        return Decision("aborted", "rolled-back")

    def recover_evict(self, action: Action) -> Decision:
        now = _lstat(action.slow_path)
        if now is not None and stat.S_ISLNK(now.st_mode):
            return Decision("aborted", "rolled-back")  # the backup was not restored yet
        if now is None or now.st_ino != action.slow.inode:
            return Decision("aborted", "inconsistent: the original is not the backup; left alone")
        fast = _lstat(action.fast_path)
        if fast is not None and action.fast is not None and identity_of(fast) == action.fast:
            os.unlink(action.fast_path)
            fsync_folder(action.fast_path.parent)
        folders, folder = [], action.fast_path.parent
        keep = Path(action.fast_branch)
        while folder != keep and keep in folder.parents:
            folders.append(folder)
            folder = folder.parent
        remove_empty_folders(folders)
        return Decision("done", "evicted")
