"""The rows of SPEC §4's table that hide or remove the original: union / backup,
union / move and symlink / move. Each reuses the steps of the first two rows (rows.py);
each recovery decides from the disks alone, and rolls back whenever the destructive
step was not taken yet (so an InUse before that step leaves things as they were).
"""

from __future__ import annotations

import os
from pathlib import Path

from cacherr.engine import steps
from cacherr.engine.actions import Action
from cacherr.engine.copy import rename_noreplace
from cacherr.engine.errors import SourceChanged
from cacherr.engine.paths import fsync_folder, remove_empty_folders
from cacherr.engine.rows import (
    Decision,
    Placed,
    drop,
    placed_copy,
    remove_temp,
    rolled_back,
    settle_link_temp,
    settle_swapped_out,
    share_top,
)
from cacherr.engine.safety import (
    Known,
    any_file,
    is_our_symlink,
    measure,
    our_symlink,
    own_copy,
    require,
    same,
    without_ctime,
)

KEPT_COPY = "left alone: the original vanished; cacherr's copy on the fast branch is kept"


def _require_free(path: Path, what: str) -> None:
    if os.path.lexists(path):
        raise SourceChanged(path, f"a file appeared at the {what} since cacherr cached it")


class UnionBackup:
    """union / backup: copy slow → fast, then rename the slow copy to its hidden backup
    name; evict renames the backup back, then deletes the fast copy."""

    layout, original = "union", "backup"

    def cache(self, ctx: steps.Context, action_id: int, action: Action) -> Placed:
        steps.make_folders(ctx, action_id, action)
        copied = steps.copy_file(ctx, action_id, action.slow_path, action.fast_path, action.slow)
        backup = steps.hide_original(ctx, action_id, action, action.slow, copied.target)
        return Placed(copied.target, backup)

    def evict(self, ctx: steps.Context, action_id: int, action: Action) -> None:
        require(action.fast_path, same(action.fast), "cached copy")  # type: ignore[arg-type]
        require(action.backup_path, same(action.slow), "backup of the original")
        _require_free(action.slow_path, "original's name")
        ctx.journal.step(action_id, "checked")
        restored = steps.restore_backup(ctx, action_id, action, action.backup_path, action.slow)
        steps.remove_copy(
            ctx, action_id, action, action.slow_path, same(restored),
            share_top(action, action.fast_branch), guards_asked=True,
        )  # fmt: skip

    def recover_cache(self, action: Action, known: Known) -> Decision:
        copy = placed_copy(action, known)
        hidden = known.original or without_ctime(action.slow)  # a rename moves the ctime
        if hidden.matches(measure(action.backup_path)):
            if copy is not None:
                return Decision("done", "cached", copy, slow=measure(action.backup_path))
            if os.path.lexists(action.slow_path):
                return Decision(
                    "aborted", "inconsistent: a backup without its copy, and another file at "
                    "the original's name; left alone",
                )  # fmt: skip
            rename_noreplace(action.backup_path, action.slow_path)  # not reachable by our order
            fsync_folder(action.slow_path.parent)
        # The original was not hidden: the copy (if ours) goes, if the original stays.
        if copy is not None and not drop(
            action, action.fast_path, same(copy), action.slow_path, any_file()
        ):
            return Decision("aborted", KEPT_COPY)
        remove_empty_folders([Path(f) for f in action.created_folders])
        return rolled_back(action, action.fast_path)

    def recover_evict(self, action: Action, known: Known) -> Decision:
        restored = known.original or without_ctime(action.slow)
        if restored.matches(measure(action.slow_path)):  # renamed back: the copy may go
            if action.fast is not None:
                drop(action, action.fast_path, same(action.fast), action.slow_path, same(restored))
            keep = share_top(action, action.fast_branch)
            remove_empty_folders(steps.folders_between(action.fast_path, keep))
            return Decision("done", "evicted")
        if os.path.lexists(action.backup_path):
            return Decision("aborted", "rolled-back")  # the backup was not renamed back yet
        return Decision("aborted", "inconsistent: neither the original nor its backup; left alone")


class UnionMove:
    """union / move: copy slow → fast, then delete the slow copy; evict copies the file
    back to a slow branch (the recorded one, or another of the share's disks), then
    deletes the fast copy."""

    layout, original = "union", "move"

    def cache(self, ctx: steps.Context, action_id: int, action: Action) -> Placed:
        steps.make_folders(ctx, action_id, action)
        copied = steps.copy_file(ctx, action_id, action.slow_path, action.fast_path, action.slow)
        steps.remove_original(ctx, action_id, action, action.slow, copied.target)
        return Placed(copied.target)

    def evict(self, ctx: steps.Context, action_id: int, action: Action) -> None:
        require(action.fast_path, same(action.fast), "cached copy")  # type: ignore[arg-type]
        _require_free(action.slow_path, "slow path")
        ctx.journal.step(action_id, "checked")
        steps.make_folders(ctx, action_id, action, to_slow=True)
        copied = steps.copy_file(
            ctx, action_id, action.fast_path, action.slow_path, action.fast  # type: ignore[arg-type]
        )
        steps.remove_copy(
            ctx, action_id, action, action.slow_path, same(copied.target),
            share_top(action, action.fast_branch),
        )  # fmt: skip

    def recover_cache(self, action: Action, known: Known) -> Decision:
        copy = placed_copy(action, known)
        if not os.path.lexists(action.slow_path):  # the original was removed
            if copy is not None:
                return Decision("done", "cached", copy)
            if os.path.lexists(action.fast_path):
                return Decision(
                    "aborted", "left alone: someone else (the mover?) moved the file to the "
                    "fast branch; that copy is theirs",
                )  # fmt: skip
            return Decision("aborted", "inconsistent: the original is gone without a copy")
        if copy is not None and not drop(
            action, action.fast_path, same(copy), action.slow_path, any_file()
        ):
            return Decision("aborted", KEPT_COPY)
        remove_empty_folders([Path(f) for f in action.created_folders])
        return rolled_back(action, action.fast_path)

    def recover_evict(self, action: Action, known: Known) -> Decision:
        remove_temp(action.slow_path)
        fast_as = action.fast
        assert fast_as is not None
        back = own_copy(action.slow_path, known, fast_as)
        created = [Path(f) for f in action.created_folders]
        if not os.path.lexists(action.fast_path):
            if back is not None:
                keep = share_top(action, action.fast_branch)
                remove_empty_folders(steps.folders_between(action.fast_path, keep))
                return Decision("done", "evicted")
            if os.path.lexists(action.slow_path):
                return Decision(
                    "aborted", "untracked: someone else (the mover?) moved the cached copy",
                    untrack=True,
                )  # fmt: skip
            return Decision("aborted", "inconsistent: neither copy is there; left alone")
        if fast_as.matches(measure(action.fast_path)):  # undo the copy back (made from it)
            if back is not None:
                drop(action, action.slow_path, same(back), action.fast_path, same(fast_as))
            remove_empty_folders(created)
            return Decision("aborted", "rolled-back")
        if back is not None:  # the cached copy changed: the copy made back is stale
            drop(action, action.slow_path, same(back), action.fast_path, any_file())
        remove_empty_folders(created)
        return Decision("aborted", "untracked: the cached copy changed", untrack=True)


class SymlinkMove:
    """symlink / move: copy to `dir`, then swap the original for a symlink (its inode
    goes); evict copies the file back beside the symlink, swaps it in, and deletes the
    copy."""

    layout, original = "symlink", "move"

    def cache(self, ctx: steps.Context, action_id: int, action: Action) -> Placed:
        steps.make_folders(ctx, action_id, action)
        copied = steps.copy_file(ctx, action_id, action.slow_path, action.fast_path, action.slow)
        steps.swap_in_symlink(ctx, action_id, action, action.slow, copied.target)
        return Placed(copied.target)

    def evict(self, ctx: steps.Context, action_id: int, action: Action) -> None:
        require(action.slow_path, our_symlink(action.link_target), "original's name")
        require(action.fast_path, same(action.fast), "cached copy")  # type: ignore[arg-type]
        _require_free(action.backup_path, "name the copy comes back under")
        ctx.journal.step(action_id, "checked")
        copied = steps.copy_file(
            ctx, action_id, action.fast_path, action.backup_path, action.fast  # type: ignore[arg-type]
        )
        restored = steps.swap_out_symlink(
            ctx, action_id, action, action.backup_path, copied.target
        )
        steps.remove_copy(
            ctx, action_id, action, action.slow_path, same(restored), Path(action.fast_branch),
            guards_asked=True,
        )  # fmt: skip

    def recover_cache(self, action: Action, known: Known) -> Decision:
        original = action.slow_path
        copy = placed_copy(action, known)
        settle_link_temp(action, without_ctime(action.slow), copy=copy)
        if is_our_symlink(original, action.link_target):
            if copy is not None:
                return Decision("done", "cached", copy)
            return Decision("aborted", "inconsistent: symlink without its copy; left alone")
        if not os.path.lexists(original):
            return Decision("aborted", "inconsistent: the original is gone; left alone")
        if copy is not None and not drop(action, action.fast_path, same(copy), original, any_file()):
            return Decision("aborted", KEPT_COPY)
        remove_empty_folders([Path(f) for f in action.created_folders])
        return rolled_back(action, action.fast_path)

    def recover_evict(self, action: Action, known: Known) -> Decision:
        back, original = action.backup_path, action.slow_path
        fast_as = action.fast
        assert fast_as is not None
        remove_temp(back)
        if is_our_symlink(original, action.link_target):  # the copy had not replaced the link
            made = own_copy(back, known, fast_as)
            if made is not None:
                drop(action, back, same(made), action.fast_path, any_file())
            return Decision("aborted", "rolled-back")
        restored = own_copy(original, known, fast_as, renamed_since=True)
        if restored is not None and not settle_swapped_out(action, back):
            restored = None  # someone had replaced the symlink: theirs is back in place
        if restored is None:
            stale = own_copy(back, known, fast_as, renamed_since=True)
            if stale is not None:  # our copy back is not needed: the fast copy stays
                drop(action, back, same(stale), action.fast_path, any_file())
                return Decision("aborted", "untracked: the symlink was replaced", untrack=True)
            return Decision("aborted", "inconsistent: the original is not the copy; left alone")
        drop(action, action.fast_path, same(fast_as), original, same(without_ctime(restored)))
        remove_empty_folders(steps.folders_between(action.fast_path, Path(action.fast_branch)))
        return Decision("done", "evicted")
