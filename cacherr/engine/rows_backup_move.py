"""The rows of SPEC §4's table that hide or remove the original: union / backup,
union / move and symlink / move. Each reuses the steps of the first two rows (rows.py);
each recovery decides from the disks alone, and rolls back whenever the destructive
step was not taken yet (so an InUse before that step leaves things as they were).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cacherr.engine import steps
from cacherr.engine.actions import Action
from cacherr.engine.copy import identity_of, rename_noreplace
from cacherr.engine.errors import SourceChanged
from cacherr.engine.paths import fsync_folder, remove_empty_folders, remove_if_present, temp_path
from cacherr.engine.rows import (
    Decision,
    _lstat,
    _lstat_identity,
    _remove_temp,
    _require_identity,
    _same_content_stamp,
    copy_checked,
    require_our_symlink,
)
from cacherr.state.ledger import FileIdentity


def _share_top(action: Action, branch: str) -> Path:
    return Path(branch) / action.relative_path.split("/")[0]


def _folders_between(path: Path, keep: Path) -> list[Path]:
    """The folders above `path` up to (not including) `keep`."""
    folders, folder = [], path.parent
    while folder != keep and keep in folder.parents:
        folders.append(folder)
        folder = folder.parent
    return folders


def _unlink_if(path: Path, matches: bool) -> None:
    if matches and remove_if_present(path):
        fsync_folder(path.parent)


def _require_free(path: Path, what: str) -> None:
    if os.path.lexists(path):
        raise SourceChanged(path, f"a file appeared at the {what} since cacherr cached it")


class UnionBackup:
    """union / backup: copy slow → fast, then rename the slow copy to its hidden backup
    name; evict renames the backup back, then deletes the fast copy."""

    layout, original = "union", "backup"

    def cache(self, ctx: steps.Context, action_id: int, action: Action) -> FileIdentity:
        copied_target = copy_checked(ctx, action_id, action)
        steps.require_idle(ctx, action)
        steps.hide_original(ctx, action_id, action.slow_path, action.backup_path)
        return copied_target

    def evict(self, ctx: steps.Context, action_id: int, action: Action) -> None:
        _require_identity(action.fast_path, action.fast, "cached copy")
        _require_identity(action.backup_path, action.slow, "backup of the original")
        _require_free(action.slow_path, "original's name")
        ctx.journal.step(action_id, "checked")
        steps.require_idle(ctx, action)
        steps.restore_backup(ctx, action_id, action.backup_path, action.slow_path, replace=False)
        steps.remove_copy(ctx, action_id, action.fast_path, _share_top(action, action.fast_branch))

    def recover_cache(self, action: Action) -> Decision:
        _remove_temp(action.fast_path)
        fast = _lstat(action.fast_path)
        complete = _same_content_stamp(fast, action.slow)
        original, backup = _lstat_identity(action.slow_path), _lstat_identity(action.backup_path)
        if backup == action.slow:
            if complete:
                fsync_folder(action.fast_path.parent)
                return Decision("done", "cached", identity_of(fast))  # type: ignore[arg-type]
            if original is not None:
                return Decision("aborted", "inconsistent: a backup without its copy; left alone")
            rename_noreplace(action.backup_path, action.slow_path)  # not reachable by our order
            fsync_folder(action.slow_path.parent)
        # The original was not hidden yet: the copy (if complete) is ours to drop.
        _unlink_if(action.fast_path, complete)
        remove_empty_folders([Path(f) for f in action.created_folders])
        return Decision("aborted", "rolled-back")

    def recover_evict(self, action: Action) -> Decision:
        if _lstat_identity(action.slow_path) == action.slow:  # restored (rename keeps the inode)
            fast = _lstat(action.fast_path)
            _unlink_if(action.fast_path, fast is not None and identity_of(fast) == action.fast)
            keep = _share_top(action, action.fast_branch)
            remove_empty_folders(_folders_between(action.fast_path, keep))
            return Decision("done", "evicted")
        if _lstat(action.backup_path) is not None:
            return Decision("aborted", "rolled-back")  # the backup was not renamed back yet
        return Decision("aborted", "inconsistent: neither the original nor its backup; left alone")


class UnionMove:
    """union / move: copy slow → fast, then delete the slow copy; evict copies the file
    back to a slow branch (the recorded one, or another of the share's disks), then
    deletes the fast copy."""

    layout, original = "union", "move"

    def cache(self, ctx: steps.Context, action_id: int, action: Action) -> FileIdentity:
        copied_target = copy_checked(ctx, action_id, action)
        steps.require_idle(ctx, action)
        steps.remove_original(ctx, action_id, action.slow_path)
        return copied_target

    def evict(self, ctx: steps.Context, action_id: int, action: Action) -> None:
        _require_identity(action.fast_path, action.fast, "cached copy")
        _require_free(action.slow_path, "slow path")
        ctx.journal.step(action_id, "checked")
        steps.make_folders(ctx, action_id, action, to_slow=True)
        steps.copy_file(
            ctx, action_id, action.fast_path, action.slow_path, action, expected=action.fast
        )
        steps.require_idle(ctx, action)
        steps.remove_copy(ctx, action_id, action.fast_path, _share_top(action, action.fast_branch))

    def recover_cache(self, action: Action) -> Decision:
        _remove_temp(action.fast_path)
        fast = _lstat(action.fast_path)
        complete = _same_content_stamp(fast, action.slow)
        original = _lstat_identity(action.slow_path)
        if original is None:
            if complete:
                fsync_folder(action.fast_path.parent)
                return Decision("done", "cached", identity_of(fast))  # type: ignore[arg-type]
            return Decision("aborted", "inconsistent: the original is gone without a copy")
        _unlink_if(action.fast_path, complete)  # the original stays: drop our copy
        remove_empty_folders([Path(f) for f in action.created_folders])
        return Decision("aborted", "rolled-back")

    def recover_evict(self, action: Action) -> Decision:
        _remove_temp(action.slow_path)
        back = _same_content_stamp(_lstat(action.slow_path), action.fast)  # type: ignore[arg-type]
        fast = _lstat(action.fast_path)
        if fast is None:
            if not back:
                return Decision("aborted", "inconsistent: neither copy is there; left alone")
            keep = _share_top(action, action.fast_branch)
            remove_empty_folders(_folders_between(action.fast_path, keep))
            return Decision("done", "evicted")
        # The fast copy is still there: undo the copy back (it is ours, made from it).
        _unlink_if(action.slow_path, back)
        remove_empty_folders([Path(f) for f in action.created_folders])
        return Decision("aborted", "rolled-back")


class SymlinkMove:
    """symlink / move: copy to `dir`, then atomically replace the original with a symlink;
    evict copies the file back beside the symlink, renames it over the symlink, and
    deletes the copy."""

    layout, original = "symlink", "move"

    def cache(self, ctx: steps.Context, action_id: int, action: Action) -> FileIdentity:
        copied_target = copy_checked(ctx, action_id, action)
        steps.require_idle(ctx, action)
        steps.swap_symlink(
            ctx, action_id, action.slow_path, action.link_temp_path, action.link_target or ""
        )
        return copied_target

    def evict(self, ctx: steps.Context, action_id: int, action: Action) -> None:
        require_our_symlink(action.slow_path)
        _require_identity(action.fast_path, action.fast, "cached copy")
        _require_free(action.backup_path, "name the copy comes back under")
        ctx.journal.step(action_id, "checked")
        steps.copy_file(
            ctx, action_id, action.fast_path, action.backup_path, action, expected=action.fast
        )
        steps.require_idle(ctx, action)
        steps.restore_backup(ctx, action_id, action.backup_path, action.slow_path)
        steps.remove_copy(ctx, action_id, action.fast_path, Path(action.fast_branch))

    def recover_cache(self, action: Action) -> Decision:
        original = action.slow_path
        _remove_temp(action.fast_path)
        if remove_if_present(action.link_temp_path):
            fsync_folder(original.parent)
        now = _lstat(original)
        fast = _lstat(action.fast_path)
        complete = _same_content_stamp(fast, action.slow)
        if now is not None and stat.S_ISLNK(now.st_mode):
            if complete:
                return Decision("done", "cached", identity_of(fast))  # type: ignore[arg-type]
            return Decision("aborted", "inconsistent: symlink without its copy; left alone")
        if now is None:
            return Decision("aborted", "inconsistent: the original is gone; left alone")
        _unlink_if(action.fast_path, complete)
        remove_empty_folders([Path(f) for f in action.created_folders])
        return Decision("aborted", "rolled-back")

    def recover_evict(self, action: Action) -> Decision:
        back = action.backup_path
        if remove_if_present(temp_path(back)):
            fsync_folder(back.parent)
        now = _lstat(action.slow_path)
        expected: FileIdentity = action.fast  # type: ignore[assignment]
        if now is not None and stat.S_ISLNK(now.st_mode):
            _unlink_if(back, _same_content_stamp(_lstat(back), expected))
            return Decision("aborted", "rolled-back")  # the copy had not replaced the link
        if not _same_content_stamp(now, expected):
            return Decision("aborted", "inconsistent: the original is not the copy; left alone")
        fast = _lstat(action.fast_path)
        _unlink_if(action.fast_path, fast is not None and identity_of(fast) == expected)
        remove_empty_folders(_folders_between(action.fast_path, Path(action.fast_branch)))
        return Decision("done", "evicted")
