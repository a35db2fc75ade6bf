"""The steps every layout row is made of. Each one is durable (fsynced, folder included)
before it is journalled, so the journal never claims more than the disks hold; each step
that hides, replaces or removes a file goes through `safety.remove_side` (guards, then
both sides' identities, then the one system call)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cacherr.engine import safety
from cacherr.engine.actions import Action
from cacherr.engine.checkpoints import Checkpoints
from cacherr.engine.copy import (
    CopyOptions,
    CopyResult,
    durable_copy,
    rename_exchange,
    rename_noreplace,
)
from cacherr.engine.errors import SourceChanged
from cacherr.engine.journal import Journal
from cacherr.engine.paths import fsync_folder, remove_empty_folders, remove_if_present
from cacherr.engine.safety import Expectation, Guards
from cacherr.state.ledger import FileIdentity


@dataclass(frozen=True)
class Context:
    """What a step needs besides its action: where to journal, how to copy, whom to ask."""

    journal: Journal
    checkpoints: Checkpoints
    copy_options: CopyOptions
    guards: Guards = safety.NO_GUARDS


def _identity_value(identity: FileIdentity) -> dict:
    return {
        "size_bytes": identity.size_bytes,
        "mtime_ns": identity.mtime_ns,
        "inode": identity.inode,
        "ctime_ns": identity.ctime_ns,
    }


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
    expected: FileIdentity,
) -> CopyResult:
    """The durable copy of `source` (which must still be `expected`) to `target`. The
    journal gets the temporary file's inode before any byte is written, and the placed
    copy's identity (measured after its rename) once it is durable."""

    def journal_temp(inode: int) -> None:
        ctx.journal.step(action_id, "temp-made", {"temp_inode": inode})

    result = durable_copy(source, target, expected, ctx.copy_options, on_temp=journal_temp)
    ctx.journal.step(action_id, "copied", {"copy": _identity_value(result.target)})
    return result


def record_original(
    ctx: Context, action_id: int, step: str, path: Path, measured: FileIdentity | None = None
) -> FileIdentity:
    """Journal `step` with the identity the original (or its backup) has now, after a
    rename or link changed its ctime (or as `measured` right after it); return it."""
    identity = measured or safety.measure(path)
    if identity is None:
        raise SourceChanged(path, "vanished right after cacherr renamed it")
    ctx.journal.step(action_id, step, {"original": _identity_value(identity)})
    return identity


def link_backup(
    ctx: Context, action_id: int, original: Path, backup: Path, original_as: FileIdentity
) -> FileIdentity:
    """Keep the original's inode under a hidden name beside it (a hardlink: no data moves);
    return its identity now (a new link changes the ctime)."""
    safety.require(original, safety.same(original_as), "original")
    os.link(original, backup, follow_symlinks=False)
    # Measured at once: the original's name still serves Plex and may be edited in place
    # (size and mtime kept); an edit from now on moves the ctime and stops the swap.
    linked = safety.measure(backup)
    ctx.checkpoints.reached("backup-linked")
    fsync_folder(backup.parent)
    return record_original(ctx, action_id, "backed-up", backup, linked)


def swap_in_symlink(
    ctx: Context,
    action_id: int,
    action: Action,
    original_as: FileIdentity,
    copy_as: FileIdentity,
) -> None:
    """Replace the original's name with a symlink to the cached copy: the symlink is made
    under a hidden name, then swapped with the original (guards, then identities, then
    the exchange); what was swapped out must be the original's inode, whose hidden name
    then goes (its only name under `original: move`, whose copy is the counterpart)."""
    original, link_temp = action.slow_path, action.link_temp_path
    remove_if_present(link_temp)
    os.symlink(action.link_target or "", link_temp)
    ctx.checkpoints.reached("link-created")

    def swap() -> None:
        exchange_checked(
            ctx, link_temp, original, "link-exchanged",
            lambda held: safety.without_ctime(original_as).matches(safety.measure(held)),
            "was replaced while cacherr swapped in its symlink",
        )  # fmt: skip

    safety.remove_side(
        ctx.guards, action,
        goes=original, goes_as=safety.same(original_as),
        stays=action.fast_path, stays_as=safety.same(copy_as),
        act=swap, view_first=False,
    )  # fmt: skip
    ctx.checkpoints.reached("link-renamed")
    fsync_folder(original.parent)
    ctx.journal.step(action_id, "swapped")


def hide_original(
    ctx: Context, action_id: int, action: Action, original_as: FileIdentity, copy_as: FileIdentity
) -> FileIdentity:
    """union / backup: rename the slow copy to its hidden backup name (never over a file),
    once the merged view serves the fast copy; return the backup's identity."""
    backup = action.backup_path
    _retire_original(ctx, action, original_as, copy_as, "original-renamed",
                     lambda original: rename_noreplace(original, backup))
    return record_original(ctx, action_id, "backed-up", backup)


def remove_original(
    ctx: Context, action_id: int, action: Action, original_as: FileIdentity, copy_as: FileIdentity
) -> None:
    """original: move, once the copy is durable and the merged view serves it: delete the
    slow copy."""
    _retire_original(ctx, action, original_as, copy_as, "original-unlinked", os.unlink)
    ctx.journal.step(action_id, "original-removed")


def _retire_original(ctx: Context, action: Action, original_as: FileIdentity,
                     copy_as: FileIdentity, checkpoint: str,
                     act: Callable[[Path], None]) -> None:
    """The slow copy leaves its name (`act` renames or deletes it) by the order rule: the
    guards with the merged view serving the fast copy, then both identities, then `act`;
    its folder is fsynced before anything else happens."""
    original = action.slow_path
    safety.remove_side(
        ctx.guards, action,
        goes=original, goes_as=safety.same(original_as),
        stays=action.fast_path, stays_as=safety.same(copy_as),
        act=lambda: act(original), view_first=True,
    )  # fmt: skip
    ctx.checkpoints.reached(checkpoint)
    fsync_folder(original.parent)


def restore_backup(
    ctx: Context, action_id: int, action: Action, backup: Path, backup_as: FileIdentity
) -> FileIdentity:
    """union / backup: put the original back at its free name; return its identity."""
    original = action.slow_path
    safety.ask_guards(ctx.guards, action)  # once: the copy goes right after, unasked
    safety.require(backup, safety.same(backup_as), "backup of the original")
    rename_noreplace(backup, original)
    ctx.checkpoints.reached("backup-renamed")
    fsync_folder(original.parent)
    return record_original(ctx, action_id, "restored", original)


def swap_out_symlink(
    ctx: Context, action_id: int, action: Action, backup: Path, backup_as: FileIdentity
) -> FileIdentity:
    """Symlink layout: put the original (or the copy made back beside it) in place of
    cacherr's symlink with one exchange (guards, then identities, then the exchange);
    what was swapped out must be that symlink, which then goes. Return the original's
    identity now.

    The symlink serves the cached copy: that copy must be unchanged too, checked just
    before the exchange, or an edit written through the symlink meanwhile (while Plex
    was asked, or the copy made back) would be hidden behind the older version."""
    original = action.slow_path

    def swap() -> None:
        safety.require(action.fast_path, safety.same(action.fast), "cached copy")  # type: ignore[arg-type]
        exchange_checked(
            ctx, backup, original, "backup-exchanged",
            lambda held: safety.is_our_symlink(held, action.link_target),
            "is no longer cacherr's symlink",
        )  # fmt: skip

    safety.remove_side(
        ctx.guards, action,
        goes=original, goes_as=safety.our_symlink(action.link_target),
        stays=backup, stays_as=safety.same(backup_as),
        act=swap,
    )  # fmt: skip
    ctx.checkpoints.reached("backup-renamed")
    fsync_folder(original.parent)
    return record_original(ctx, action_id, "restored", original)


def exchange_checked(
    ctx: Context,
    held: Path,
    name: Path,
    checkpoint: str,
    swapped_out_is_expected: Callable[[Path], bool],
    why: str,
) -> None:
    """Swap `held` into `name` with RENAME_EXCHANGE; what was swapped out (now at `held`)
    must be what the caller expected, else it is swapped back and SourceChanged raised;
    then its hidden name goes. Where the file system cannot exchange: a plain rename
    (the caller checked `name` just before)."""
    if not rename_exchange(held, name):
        os.rename(held, name)
        return
    ctx.checkpoints.reached(checkpoint)
    if not swapped_out_is_expected(held):
        rename_exchange(held, name)  # not what was checked: put it back
        fsync_folder(name.parent)
        raise SourceChanged(name, why)
    os.unlink(held)


def remove_copy(
    ctx: Context,
    action_id: int,
    action: Action,
    stays: Path,
    stays_as: Expectation,
    keep_folder: Path,
    *,
    guards_asked: bool = False,
) -> None:
    """Delete the cached copy (it must be the ledger's, its counterpart `stays` as
    expected), then its folders that are left empty, up to `keep_folder`.
    `guards_asked`: the step that put the original back asked them (recovery would
    finish this eviction anyway, so asking again could only leave it half done)."""
    path = action.fast_path
    safety.remove_side(
        safety.NO_GUARDS if guards_asked else ctx.guards, action,
        goes=path, goes_as=safety.same(action.fast),  # type: ignore[arg-type]
        stays=stays, stays_as=stays_as,
        act=lambda: os.unlink(path),
    )  # fmt: skip
    ctx.checkpoints.reached("copy-unlinked")
    fsync_folder(path.parent)
    remove_empty_folders(folders_between(path, keep_folder))
    ctx.journal.step(action_id, "removed")


def folders_between(path: Path, keep: Path) -> list[Path]:
    """The folders above `path` up to (not including) `keep`."""
    folders, folder = [], path.parent
    while folder != keep and keep in folder.parents:
        folders.append(folder)
        folder = folder.parent
    return folders
