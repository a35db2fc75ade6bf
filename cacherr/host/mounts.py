"""Which mounted file system holds a path, from /proc/self/mountinfo."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = "/proc/self/mountinfo"

# File systems that lose their content at reboot, or cannot hold a SQLite database safely.
VOLATILE_FS_TYPES = frozenset({"tmpfs", "ramfs", "rootfs", "devtmpfs"})
FLASH_FS_TYPES = frozenset({"vfat", "msdos", "exfat", "fat"})


@dataclass(frozen=True)
class Mount:
    mount_point: str
    fs_type: str
    source: str
    device: int  # st_dev-compatible major:minor
    root: str = "/"  # the folder of the file system mounted here ("/": all of it; else a bind)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return (field.replace("\\040", " ").replace("\\011", "\t")
            .replace("\\012", "\n").replace("\\134", "\\"))


def parse_mountinfo(text: str) -> list[Mount]:
    """Given the text of a mountinfo file, return its mounts in order."""
    mounts = []
    for line in text.splitlines():
        if not line.strip():
            continue
        left, _, right = line.partition(" - ")
        fields = left.split()
        major, minor = (int(x) for x in fields[2].split(":"))
        right_fields = right.split()
        mounts.append(Mount(
            mount_point=_unescape(fields[4]),
            fs_type=right_fields[0],
            source=_unescape(right_fields[1]) if len(right_fields) > 1 else "",
            device=os.makedev(major, minor),
            root=_unescape(fields[3]),
        ))
    return mounts


def read_mounts() -> list[Mount]:
    with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as handle:
        return parse_mountinfo(handle.read())


def mount_of(path: str | Path, mounts: list[Mount] | None = None) -> Mount:
    """Given a path, return the mount that holds it (the last, longest matching mount point)."""
    mounts = read_mounts() if mounts is None else mounts
    # realpath resolves the part that exists and keeps the rest as written, so a path
    # that is not created yet still lands on the mount that will hold it.
    target = os.path.realpath(path)
    best: Mount | None = None
    for mount in mounts:  # later mounts shadow earlier ones on the same point
        point = mount.mount_point
        inside = target == point or target.startswith(point.rstrip("/") + "/") or point == "/"
        if inside and (best is None or len(point) >= len(best.mount_point)):
            best = mount
    if best is None:
        raise LookupError(f"no mount holds {path}")
    return best


def is_separate_mount(path: str | Path, mounts: list[Mount] | None = None) -> bool:
    """True if `path` lies on a mounted file system other than the root one.

    An unmounted Unraid pool is an empty folder on the RAM root file system; caching
    into it would lose the copy at reboot.
    """
    mounts = read_mounts() if mounts is None else mounts
    return mount_of(path, mounts).mount_point != "/"
