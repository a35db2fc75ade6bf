"""Where the engine may touch: relative paths checked, roots walked without following
symlinks, hidden working names, and the branch/device checks of invariant 4."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from cacherr.engine.errors import NameRefused, Refused
from cacherr.host import mounts

TEMP_SUFFIX = ".cacherr-tmp"
BACKUP_SUFFIX = ".cacherr-backup"
LINK_SUFFIX = ".cacherr-link"
WORKING_SUFFIXES = (TEMP_SUFFIX, BACKUP_SUFFIX, LINK_SUFFIX)
_NAME_MAX = 255
# Characters a name may not hold (the name rule): control characters would split a line
# of the mover list, and Mover Tuning evals its list in a double-quoted shell string,
# where ` $ " \ run commands or break the quoting.
REFUSED_NAME_CHARACTERS = "`$\"\\"


def name_problem(name: str) -> str | None:
    """Given a file or folder name (or a path), return why cacherr refuses it, or None.

    Refused: control characters (newline, carriage return, tab, ...), bytes that are not
    UTF-8 (Python's surrogate escapes), and any of `REFUSED_NAME_CHARACTERS`.
    """
    for character in name:
        code = ord(character)
        if code < 0x20 or code == 0x7F:
            return f"its name holds a control character ({character!r})"
        if 0xD800 <= code <= 0xDFFF:
            return "its name is not valid UTF-8"
        if character in REFUSED_NAME_CHARACTERS:
            return f"its name holds {character!r}, which Mover Tuning's list cannot carry"
    return None


def temp_path(path: Path) -> Path:
    """The hidden name a copy is written under, in the target's own folder."""
    return path.with_name(f".{path.name}{TEMP_SUFFIX}")


def backup_path(path: Path) -> Path:
    """The hidden name an original is kept under (original: backup), beside it."""
    return path.with_name(f".{path.name}{BACKUP_SUFFIX}")


def link_temp_path(path: Path) -> Path:
    """The hidden name a symlink is made under before it is renamed over the original."""
    return path.with_name(f".{path.name}{LINK_SUFFIX}")


def split_relative(relative_path: str, *, names: bool = True) -> tuple[str, ...]:
    """Given a root-relative path, return its components; raise Refused if it could escape.

    Refused: empty, absolute, `.`/`..`/empty components, NUL, over-long names, and names
    that look like cacherr's own working files; NameRefused: a name `name_problem` refuses
    (unless `names` is False: a file cached before the name rule may still be put back).
    """
    if not relative_path or "\0" in relative_path:
        raise Refused(relative_path or "''", "empty path or NUL byte")
    problem = name_problem(relative_path) if names else None
    if problem is not None:
        raise NameRefused(ascii(relative_path), f"{problem}; skipped")
    if relative_path.startswith("/"):
        raise Refused(relative_path, "absolute path where a root-relative one is expected")
    parts = tuple(relative_path.split("/"))
    for part in parts:
        if part in ("", ".", ".."):
            raise Refused(relative_path, f"path component {part!r} is not allowed")
        if len(os.fsencode(part)) > _NAME_MAX:
            raise Refused(relative_path, "a name is longer than 255 bytes")
        if part.endswith(WORKING_SUFFIXES):
            raise Refused(relative_path, "the name is one of cacherr's working names")
    if len(parts) < 2:
        raise Refused(relative_path, "a media file must be inside a share or folder")
    return parts


def walk_folders(root: Path, parts: tuple[str, ...]) -> list[Path]:
    """Given a root and the components of a file path, return the missing folders.

    Each existing folder on the way is `lstat`ed: a symlink or a non-folder there raises
    Refused (it could lead outside the root). The root itself must be a real folder.
    """
    _require_folder(root, root)
    missing: list[Path] = []
    current = root
    for part in parts[:-1]:
        current = current / part
        if missing:
            missing.append(current)
            continue
        try:
            _require_folder(current, root)
        except FileNotFoundError:
            missing.append(current)
    return missing


def _require_folder(path: Path, root: Path) -> None:
    st = os.lstat(path)  # FileNotFoundError passes through to the caller
    if stat.S_ISLNK(st.st_mode):
        raise Refused(path, f"is a symlink; cacherr does not follow links under {root}")
    if not stat.S_ISDIR(st.st_mode):
        raise Refused(path, "is not a folder")


def regular_file(path: Path) -> os.stat_result | None:
    """lstat `path`: its stat if a regular file, None if absent; Refused if anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise Refused(path, "a component of the path is not a folder") from None
    if not stat.S_ISREG(st.st_mode):
        raise Refused(path, "is not a regular file")
    return st


def require_fast_branch(path: Path, share: str | None = None) -> None:
    """Raise Refused unless `path` is a folder on a mounted file system other than the root
    one, not in RAM, and (given `share`) holds the share's top-level folder.

    An unmounted pool is an empty folder on the (RAM) root file system, or in Docker a
    folder of the container's or a bind of the host's RAM root: a copy there would vanish
    at reboot, and a cached copy would look gone. A RAM disk mounted at the branch itself
    on purpose (a tmpfs of its own, as the test sandbox mounts) is accepted.
    """
    if not path.is_dir():
        raise Refused(path, "the fast branch is missing")
    mount = mounts.mount_of(path)
    if mount.mount_point == "/":
        raise Refused(path, "the fast branch is not a mounted file system (pool not mounted?)")
    own_ram_disk = (
        mount.fs_type == "tmpfs" and mount.root == "/"
        and os.path.realpath(path) == mount.mount_point
    )  # fmt: skip
    if mount.fs_type in mounts.VOLATILE_FS_TYPES and not own_ram_disk:
        raise Refused(
            path, f"the fast branch is on {mount.fs_type} (RAM) at {mount.mount_point}, where "
            "a mounted pool is expected; is the pool mounted?",
        )  # fmt: skip
    if share is not None:
        _require_share_top(path, share, "fast branch")


def require_slow_branch(path: Path, share: str | None) -> None:
    """Raise Refused unless the slow branch (or symlink root) is a folder, not on a root
    file system in RAM, holding the share's top-level folder (given `share`): a disk that
    did not mount is an empty folder, and its files would look gone."""
    if not path.is_dir():
        raise Refused(path, "the slow branch is missing (disk not mounted?)")
    mount = mounts.mount_of(path)
    if mount.mount_point == "/" and mount.fs_type in mounts.VOLATILE_FS_TYPES:
        raise Refused(path, f"the slow branch is on the root file system in RAM ({mount.fs_type})")
    if share is not None:
        _require_share_top(path, share, "slow branch")


def _require_share_top(branch: Path, share: str, what: str) -> None:
    top = branch / share
    if top.is_symlink() or not top.is_dir():
        raise Refused(
            top, f"the {what} has no folder for the share {share!r} (not mounted yet?)"
        )


def require_cache_dir(path: Path) -> None:
    """Symlink layout: raise Refused unless `path` is a folder that survives a reboot.

    On a generic Linux host the root file system is a disk and may hold the cache; on
    Unraid it is RAM, so there (as for a pool) the folder must be on a mounted file system.
    """
    if not path.is_dir():
        raise Refused(path, "the cache folder is missing")
    mount = mounts.mount_of(path)
    if mount.mount_point == "/" and mount.fs_type in mounts.VOLATILE_FS_TYPES:
        raise Refused(
            path, f"is on the root file system in RAM ({mount.fs_type}); is the pool mounted?"
        )


def require_physical(path: Path) -> None:
    """Raise Refused if `path` is on a FUSE file system (shfs, mergerfs): never swap there."""
    fs_type = mounts.mount_of(path).fs_type
    if fs_type.startswith("fuse") or fs_type == "shfs":
        raise Refused(path, f"is on a FUSE union ({fs_type}); use the physical branch")


def require_outside(path: Path, view: Path | None) -> None:
    """Raise Refused if `path` lies inside the merged view (or the view inside it)."""
    if view is None:
        return
    a, b = os.path.abspath(path), os.path.abspath(view)
    if a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/"):
        raise Refused(path, f"overlaps the merged view {view}; cacherr never writes through it")


def require_other_device(fast: Path, slow: Path) -> None:
    """Raise Refused unless the two branches are on different devices."""
    if os.stat(fast).st_dev == os.stat(slow).st_dev:
        raise Refused(slow, f"is on the same device as the fast branch {fast}")


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fsync_folder(path: Path) -> None:
    """fsync a folder so the names created or removed in it survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_if_present(path: Path) -> bool:
    """Unlink `path` if it exists (never following a link); return whether it did."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
    except OSError as error:
        # A read-only file system says EROFS even for a name that is not there.
        if error.errno == errno.EROFS and not os.path.lexists(path):
            return False
        raise


def remove_empty_folders(folders: list[Path]) -> None:
    """rmdir each folder (deepest first) that exists and is empty; others stay."""
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        if not os.path.lexists(folder):
            continue  # never made, or already gone (a read-only pool would say EROFS)
        try:
            os.rmdir(folder)
        except OSError as error:
            if error.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST, errno.EBUSY):
                raise
            continue
        fsync_folder(folder.parent)
