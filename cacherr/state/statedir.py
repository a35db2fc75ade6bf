"""Checks that the state directory can hold the ledger safely."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cacherr.host.mounts import FLASH_FS_TYPES, VOLATILE_FS_TYPES, Mount, mount_of


class StateDirError(Exception):
    """The state directory is unsafe for the ledger (lost at reboot, or flash)."""


@dataclass
class StateDirCheck:
    path: Path
    fs_type: str
    warnings: list[str] = field(default_factory=list)


def check_state_dir(path: str | Path, mounts: list[Mount] | None = None) -> StateDirCheck:
    """Given the configured state_dir, return its check; raise StateDirError if refused.

    Refused: tmpfs/ramfs (lost at reboot, including a root file system in RAM, as on
    Unraid), vfat/exfat (the Unraid flash: no fsync guarantees, wears the stick) and FUSE
    (Unraid's /mnt/user, mergerfs: SQLite's locking and fsync are not reliable there).
    """
    path = Path(path)
    mount = mount_of(path, mounts)
    fs_type = mount.fs_type
    if fs_type in VOLATILE_FS_TYPES:
        raise StateDirError(
            f"state_dir {path} is on {fs_type} at {mount.mount_point}, which is lost at "
            "reboot; put it on a persistent local disk (e.g. /mnt/cache/appdata/cacherr)"
        )
    if fs_type in FLASH_FS_TYPES:
        raise StateDirError(
            f"state_dir {path} is on {fs_type} ({mount.mount_point}), a flash drive file "
            "system; put it on a persistent local disk (e.g. /mnt/cache/appdata/cacherr)"
        )
    if fs_type.startswith("fuse"):
        raise StateDirError(
            f"state_dir {path} is on FUSE ({fs_type} at {mount.mount_point}), where SQLite's "
            "locks and fsync are not reliable; use a pool or disk path (e.g. "
            "/mnt/cache/appdata/cacherr rather than /mnt/user/appdata/cacherr)"
        )
    return StateDirCheck(path=path, fs_type=fs_type)
