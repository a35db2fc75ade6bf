"""The rows of SPEC §4's table: each a sequence of steps, and a recovery that decides from
the disks (the journal only guides). The rows that hide or remove the original are in
rows_backup_move.py; table.py's `ROWS` is how the engine finds one.

Every recovery leaves what it cannot prove alone: a fast-side file goes only if it is
cacherr's own copy (`safety.own_copy`) and a complete counterpart stays, through
`safety.remove_side`, the same rule the rows follow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cacherr.engine import steps
from cacherr.engine.actions import Action
from cacherr.engine.copy import rename_exchange, rename_noreplace
from cacherr.engine.errors import SourceChanged
from cacherr.engine.paths import fsync_folder, remove_empty_folders, remove_if_present, temp_path
from cacherr.engine.safety import (
    NO_GUARDS,
    Expectation,
    Known,
    any_file,
    is_our_symlink,
    measure,
    our_symlink,
    own_copy,
    remove_side,
    require,
    same,
    without_ctime,
)
from cacherr.state.ledger import FileIdentity


@dataclass(frozen=True)
class Decision:
    """What recovery found: finish the action (`done`) or undo it (`aborted`), and why."""

    state: str  # done | aborted
    outcome: str  # cached | evicted | rolled-back | untracked: ... | left alone: ... | ...
    fast: FileIdentity | None = None  # cache done: the copy's identity, for the ledger
    untrack: bool = False  # a file changed under cacherr: leave the disks, drop the entry
    slow: FileIdentity | None = None  # cache done: the original's (or backup's) identity now


@dataclass(frozen=True)
class Placed:
    """What a finished cache action leaves: the copy, and the original (or its backup)
    as measured after cacherr renamed or linked it (None: unchanged since planned)."""

    copy: FileIdentity
    original: FileIdentity | None = None


def share_top(action: Action, branch: str) -> Path:
    return Path(branch) / action.relative_path.split("/")[0]


def remove_temp(path: Path) -> None:
    """Remove the copy's temporary file of `path`, by its name: it only ever holds a
    copy that was never placed."""
    if remove_if_present(temp_path(path)):
        fsync_folder(path.parent)


def placed_copy(action: Action, known: Known) -> FileIdentity | None:
    """Recovery's first look at a cache action's copy: its temporary file goes (by name),
    and the copy's identity is returned if it is cacherr's own."""
    remove_temp(action.fast_path)
    return own_copy(action.fast_path, known, action.slow)


def drop(action: Action, goes: Path, goes_as: Expectation, stays: Path, stays_as: Expectation) -> bool:
    """Recovery's removal of one of its own files, by the rule the rows follow (no guards:
    nothing is taken from a player); return False, removing nothing, where it does not hold."""
    try:
        remove_side(
            NO_GUARDS, action, goes=goes, goes_as=goes_as, stays=stays, stays_as=stays_as,
            act=lambda: os.unlink(goes),
        )  # fmt: skip
    except SourceChanged:
        return False
    fsync_folder(goes.parent)
    return True


def rolled_back(action: Action, path: Path) -> Decision:
    """The action is undone; say so when another file now sits at the copy's name."""
    if os.path.lexists(path):
        return Decision("aborted", f"rolled-back; left alone: {path} is not cacherr's copy")
    return Decision("aborted", "rolled-back")


def put_back_over_symlink(action: Action, held: Path) -> None:
    """Recovery: the original (held at a hidden name) back over cacherr's symlink."""
    if not rename_exchange(held, action.slow_path):
        os.rename(held, action.slow_path)
    else:
        os.unlink(held)  # the symlink, swapped out
    fsync_folder(action.slow_path.parent)


class UnionShadow:
    """union / shadow: copy slow → fast at the same share-relative path; evict deletes it."""

    layout, original = "union", "shadow"

    def cache(self, ctx: steps.Context, action_id: int, action: Action) -> Placed:
        steps.make_folders(ctx, action_id, action)
        copied = steps.copy_file(ctx, action_id, action.slow_path, action.fast_path, action.slow)
        # The original stays, and the view now serves the copy: an edit of the original
        # since the copy was checked would be hidden behind a stale copy. (Rolled back.)
        require(action.slow_path, same(action.slow), "original")
        return Placed(copied.target)

    def evict(self, ctx: steps.Context, action_id: int, action: Action) -> None:
        require(action.fast_path, same(action.fast), "cached copy")  # type: ignore[arg-type]
        require(action.slow_path, same(action.slow), "slow copy")
        ctx.journal.step(action_id, "checked")
        steps.remove_copy(
            ctx, action_id, action, action.slow_path, same(action.slow),
            share_top(action, action.fast_branch),
        )  # fmt: skip

    def recover_cache(self, action: Action, known: Known) -> Decision:
        copy = placed_copy(action, known)
        if copy is not None:
            if action.slow.matches(measure(action.slow_path)):
                return Decision("done", "cached", copy)
            # The original changed (or went) after the copy: ours is stale, and goes only
            # if a complete original stays.
            if not drop(action, action.fast_path, same(copy), action.slow_path, any_file()):
                return Decision(
                    "aborted", "left alone: the original vanished; cacherr's copy on the fast "
                    "branch is kept",
                )  # fmt: skip
        remove_empty_folders([Path(f) for f in action.created_folders])
        return rolled_back(action, action.fast_path)

    def recover_evict(self, action: Action, known: Known) -> Decision:
        fast = measure(action.fast_path)
        if fast is None and not os.path.lexists(action.fast_path):
            keep = share_top(action, action.fast_branch)
            remove_empty_folders(steps.folders_between(action.fast_path, keep))
            return Decision("done", "evicted")
        if action.fast is not None and action.fast.matches(fast):
            return Decision("aborted", "rolled-back")  # nothing was deleted yet
        return Decision("aborted", "untracked: the cached copy changed", untrack=True)


class SymlinkBackup:
    """symlink / backup: copy to `dir`, hardlink the original to a backup name, swap the
    original path for a symlink; evict swaps the backup back and deletes the copy."""

    layout, original = "symlink", "backup"

    def cache(self, ctx: steps.Context, action_id: int, action: Action) -> Placed:
        steps.make_folders(ctx, action_id, action)
        copied = steps.copy_file(ctx, action_id, action.slow_path, action.fast_path, action.slow)
        linked = steps.link_backup(
            ctx, action_id, action.slow_path, action.backup_path, action.slow
        )
        steps.swap_in_symlink(ctx, action_id, action, linked, copied.target)
        # The original's name went: the backup's inode lost a link, so its ctime moved.
        backup = steps.record_original(ctx, action_id, "backup-kept", action.backup_path)
        return Placed(copied.target, backup)

    def evict(self, ctx: steps.Context, action_id: int, action: Action) -> None:
        require(action.slow_path, our_symlink(action.link_target), "original's name")
        require(action.fast_path, same(action.fast), "cached copy")  # type: ignore[arg-type]
        require(action.backup_path, same(action.slow), "backup of the original")
        ctx.journal.step(action_id, "checked")
        restored = steps.swap_out_symlink(ctx, action_id, action, action.backup_path, action.slow)
        steps.remove_copy(
            ctx, action_id, action, action.slow_path, same(restored), Path(action.fast_branch),
            guards_asked=True,
        )  # fmt: skip

    def recover_cache(self, action: Action, known: Known) -> Decision:
        original, backup = action.slow_path, action.backup_path
        copy = placed_copy(action, known)
        inode = without_ctime(action.slow)  # links and renames move the original's ctime
        settle_link_temp(action, inode, copy=copy)
        if is_our_symlink(original, action.link_target):
            if inode.matches(measure(backup)):
                if copy is not None:
                    return Decision("done", "cached", copy, slow=measure(backup))
                put_back_over_symlink(action, backup)  # not reachable by our order
            else:
                return Decision("aborted", "inconsistent: symlink without backup; left alone")
        now = measure(original)
        if now is None and inode.matches(measure(backup)):
            rename_noreplace(backup, original)  # not reachable by our order, but never lose it
            fsync_folder(original.parent)
            now = measure(original)
        if inode.matches(measure(backup)) and now is not None:
            # The second name of the original's inode, or the old version behind a file
            # that replaced the original meanwhile (which a rename over it would free too).
            os.unlink(backup)
            fsync_folder(original.parent)
        if copy is not None:
            drop(action, action.fast_path, same(copy), original, any_file())
        remove_empty_folders([Path(f) for f in action.created_folders])
        return rolled_back(action, action.fast_path)

    def recover_evict(self, action: Action, known: Known) -> Decision:
        original, backup = action.slow_path, action.backup_path
        if is_our_symlink(original, action.link_target):
            return Decision("aborted", "rolled-back")  # the backup was not swapped back yet
        inode = without_ctime(action.slow)
        if not inode.matches(measure(original)):
            if inode.matches(measure(backup)):  # the symlink was replaced; ours is put back
                return Decision("aborted", "untracked: the symlink was replaced", untrack=True)
            return Decision("aborted", "inconsistent: the original is not the backup; left alone")
        if not settle_swapped_out(action, backup):
            return Decision("aborted", "untracked: the symlink was replaced", untrack=True)
        if action.fast is not None:
            drop(action, action.fast_path, same(action.fast), original, same(inode))
        remove_empty_folders(steps.folders_between(action.fast_path, Path(action.fast_branch)))
        return Decision("done", "evicted")


def settle_link_temp(action: Action, original: FileIdentity, *, copy: FileIdentity | None) -> None:
    """Symlink layouts, recovering a cache: the hidden link name holds cacherr's symlink
    (made, not swapped in: it goes) or the original's inode (swapped out, its name not yet
    removed). Then, with the copy complete, the swap is finished: that name goes (the
    backup, or under `original: move` the copy, is its counterpart); else the original is
    swapped back in place of the symlink."""
    link_temp, name = action.link_temp_path, action.slow_path
    if is_our_symlink(link_temp, action.link_target):
        os.unlink(link_temp)
        fsync_folder(name.parent)
        return
    if not original.matches(measure(link_temp)) or not is_our_symlink(name, action.link_target):
        return
    if copy is not None:
        counterpart, counterpart_as = (
            (action.backup_path, same(original)) if action.original == "backup"
            else (action.fast_path, same(copy))
        )  # fmt: skip
        if drop(action, link_temp, same(original), counterpart, counterpart_as):
            return
    put_back_over_symlink(action, link_temp)


def settle_swapped_out(action: Action, backup: Path) -> bool:
    """Symlink layouts, recovering an eviction after the swap: the hidden name holds what
    was swapped out. cacherr's symlink goes; anything else (someone replaced the symlink
    just before) is swapped back, and False is returned."""
    if is_our_symlink(backup, action.link_target):
        os.unlink(backup)
        fsync_folder(backup.parent)
        return True
    if measure(backup) is not None and rename_exchange(backup, action.slow_path):
        fsync_folder(backup.parent)
        return False
    return True
