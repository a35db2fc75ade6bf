"""A small Unraid-like storage tree on real file systems, for tests and the demo.

`root/disk1..N` are slow branches (plain folders on the disk), `root/cache` is a tmpfs
mount (the fast branch: a mounted file system other than the root one), and `root/user`
is a mergerfs union of `cache:disk1:...` (pool first, so a file on both resolves to the
pool copy, as `/mnt/user` does on Unraid). Mounting needs root; mergerfs needs /dev/fuse.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

# Serve the first branch that has a file (pool first), never cache file data, names or
# attributes in FUSE, and drop the page cache of what was read through the view, so tests
# see the disks' truth at once.
MERGERFS_OPTIONS = (
    "category.search=ff,category.create=ff,cache.files=off,dropcacheonclose=true,"
    "cache.attr=0,cache.entry=0,cache.negative_entry=0,"
    "allow_other,use_ino,fsname=cacherr-sandbox"
)


class SandboxError(Exception):
    """The sandbox cannot be built here (not root, a mount failed)."""


def mergerfs_available() -> bool:
    """True if a mergerfs mount can work here (root, /dev/fuse and the mergerfs binary)."""
    return (
        os.geteuid() == 0 and os.path.exists("/dev/fuse") and shutil.which("mergerfs") is not None
    )


class Sandbox:
    """Build the tree on enter (or construction), tear every mount down on close.

    Given `root` (an empty or missing folder on the disk), `disks` slow branches, and
    whether to mount the merged view, make the tree; raise SandboxError if a mount fails
    (anything already mounted is unmounted first). `shares` are the share top-level
    folders created on every branch (Unraid creates them; cacherr never does).
    """

    def __init__(
        self,
        root: str | Path,
        disks: int = 2,
        mergerfs: bool = True,
        *,
        fast_size_bytes: int = 256 * 1024 * 1024,
        shares: tuple[str, ...] = ("Movies", "TV"),
    ):
        if os.geteuid() != 0:
            raise SandboxError("the sandbox mounts a tmpfs and needs root")
        self.root = Path(root).absolute()
        self.slow = [self.root / f"disk{n}" for n in range(1, disks + 1)]
        self.fast = self.root / "cache"
        self.view: Path | None = None
        self._mounted: list[Path] = []
        try:
            for branch in self.slow:
                branch.mkdir(parents=True, exist_ok=True)
            self.fast.mkdir(parents=True, exist_ok=True)
            self._mount(
                [
                    "mount",
                    "-t",
                    "tmpfs",
                    "-o",
                    f"size={int(fast_size_bytes)},mode=0755",
                    "cacherr-sandbox-fast",
                    str(self.fast),
                ],
                self.fast,
            )
            for share in shares:
                for branch in [self.fast, *self.slow]:
                    (branch / share).mkdir(exist_ok=True)
            if mergerfs and mergerfs_available():
                view = self.root / "user"
                view.mkdir(exist_ok=True)
                branches = ":".join(str(b) for b in [self.fast, *self.slow])
                self._mount(["mergerfs", "-o", MERGERFS_OPTIONS, branches, str(view)], view)
                self.view = view
        except BaseException:
            self.close()
            raise

    def _mount(self, argv: list[str], point: Path) -> None:
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise SandboxError(f"{' '.join(argv)}: {done.stderr.strip()}")
        self._mounted.append(point)

    def write_file(
        self,
        share_relative_path: str,
        data: bytes,
        disk: int = 1,
        *,
        uid: int | None = None,
        gid: int | None = None,
    ) -> Path:
        """Given a share-relative path and content, write it on slow branch `disk` (1-based).

        Missing folders below the share are created; return the physical path.
        """
        path = self.slow[disk - 1] / share_relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if uid is not None or gid is not None:
            os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
        return path

    def read_view(self, share_relative_path: str) -> bytes:
        """The content Plex would read through the merged view."""
        if self.view is None:
            raise SandboxError("this sandbox has no merged view (mergerfs unavailable)")
        return (self.view / share_relative_path).read_bytes()

    def close(self) -> None:
        """Unmount everything this sandbox mounted, newest first; safe to call twice."""
        errors = []
        while self._mounted:
            point = self._mounted.pop()
            done = subprocess.run(["umount", str(point)], capture_output=True, text=True)
            if done.returncode != 0 and "not mounted" not in done.stderr:  # a test unmounted it
                # A busy mount (a test left a file open): detach it so the next test starts clean.
                lazy = subprocess.run(["umount", "-l", str(point)], capture_output=True, text=True)
                if lazy.returncode != 0:
                    errors.append(f"{point}: {done.stderr.strip()}")
        if errors:
            raise SandboxError("could not unmount " + "; ".join(errors))

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
