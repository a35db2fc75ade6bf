"""Repairs `cacherr doctor --fix` may make: each one safe by construction.

Kept in the engine because it writes to media file systems (and nothing else may).
"""

from __future__ import annotations

import os
from pathlib import Path

from cacherr.engine import paths
from cacherr.engine.paths import fsync_folder


def remove_empty_folder(branch: Path, folder: Path) -> bool:
    """Remove `folder` if it is empty and strictly below a share's top-level folder on
    `branch`; return True if removed."""
    try:
        relative = folder.relative_to(branch)
    except ValueError:
        return False
    if len(relative.parts) < 2 or folder.is_symlink() or not folder.is_dir():
        return False
    try:
        folder.rmdir()
    except OSError:
        return False  # not empty any more, or not ours to remove
    fsync_folder(folder.parent)
    return True


STRAY_SUFFIXES = (paths.TEMP_SUFFIX, paths.LINK_SUFFIX)


def is_working_name(name: str) -> bool:
    """True for the name of a copy or link cacherr writes before renaming it into place
    (`.NAME.cacherr-tmp`, `.NAME.cacherr-link`); never a backup (that is the original)."""
    return name.startswith(".") and name.endswith(STRAY_SUFFIXES) and \
        len(name) > 1 + max(map(len, STRAY_SUFFIXES))


def remove_stray_working_file(path: Path, open_check) -> bool:
    """Remove a temporary copy or link that no journal entry knows, when it is provably
    cacherr's: its working name, a regular file or symlink, and `open_check(path)` False
    (no process has it open). Return True if removed. The caller holds the run lock."""
    if not is_working_name(path.name) or not (path.is_symlink() or path.is_file()):
        return False
    if open_check(path) is not False:
        return False  # open, or unknown: left alone
    os.unlink(path)
    fsync_folder(path.parent)
    return True


def restore_orphan_backup(backup: Path) -> Path | None:
    """Rename a hidden backup back to its original name when the original is missing;
    return the restored path, or None when the original exists (nothing is overwritten)."""
    name = backup.name
    if not (name.startswith(".") and name.endswith(paths.BACKUP_SUFFIX)):
        return None
    original = backup.with_name(name[1 : -len(paths.BACKUP_SUFFIX)])
    if os.path.lexists(original):
        return None
    os.link(backup, original)  # never a window without the original name
    fsync_folder(backup.parent)
    os.unlink(backup)
    fsync_folder(backup.parent)
    return original


PLEXCACHED_SUFFIX = ".plexcached"


def restore_plexcached(backup: Path) -> Path | None:
    """PlexCache's backup `NAME.plexcached` back to `NAME` (a link, then the unlink, never a
    window without the original); None when `NAME` is taken (nothing is overwritten)."""
    if not backup.name.endswith(PLEXCACHED_SUFFIX) or backup.is_symlink():
        return None
    original = backup.with_name(backup.name[: -len(PLEXCACHED_SUFFIX)])
    if os.path.lexists(original):
        return None
    os.link(backup, original)
    fsync_folder(backup.parent)
    os.unlink(backup)
    fsync_folder(backup.parent)
    return original
