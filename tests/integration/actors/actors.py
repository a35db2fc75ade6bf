"""What the others on a real box do, each as it really does it, and what they wrote.

Two libraries share the box: one in the union layout (shares on the disks and the pool,
read through the merged view) and one in the symlink layout (a folder `media` on each
disk: Plex's library folders, whose cached files become symlinks into the cache folder
on the pool). Each actor acts on a file as it would in that file's layout.

- The mover. Union: pool → array (Mover Tuning: it honours cacherr's list, as read by
  `moverlist.covered`) and array → pool (a `prefer` share: no list applies). Symlink
  layout (no pool mover there): a disk-to-disk move between the library folders (as
  unBALANCE does), which takes cacherr's symlink along as a symlink and leaves hidden
  names behind. Either way `rsync -a` keeps the mtime and writes the final name, then
  the source is removed; a target that exists is skipped, source kept.
- A tagger (or `rsync --inplace -t`): new bytes in place through the path Plex reads
  (the merged view, or the symlink: into cacherr's copy), with the same size and mtime.
- An *arr upgrade: a new file written beside, through that path, renamed over the old
  (over cacherr's symlink, in the symlink layout).
- The pool unmounted (lazily, for cacherr's mount namespace only) and mounted again:
  the union's fast branch and the symlink layout's cache folder both go.
- Hostile names: subtitles whose names are not UTF-8 or hold what a shell would run.
- The user, between rounds, tidying what cacherr untracked as doctor advises.

Every content written is remembered per path (`versions`; the last one, `latest`), when
each path was last touched by someone other than cacherr (`touched`), and what the
mover has moved (`moved`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from cacherr.cycle.moverlist import covered
from cacherr.engine.paths import backup_path
from tests.integration.engine_helpers.world import World

SYMLINK_ROOT = "media"  # the symlink layout's library folder on each disk


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Box:
    """The world, the library paths, and what the actors know of them."""

    world: World
    worker_pid: int
    hidden_pool: str  # where the worker's namespace keeps the pool while it is unmounted
    layouts: dict[str, str] = field(default_factory=dict)  # library path → its layout
    versions: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    latest: dict[str, str] = field(default_factory=dict)  # the version written last
    touched: dict[str, float] = field(default_factory=dict)
    recorded: dict[str, float] = field(default_factory=dict)  # when cacherr began the action
    moved: set[str] = field(default_factory=set)  # what the mover has moved, once or more
    pool_mounted: bool = True

    @property
    def branches(self) -> list[Path]:
        return [Path(self.world.fast), *map(Path, self.world.slow)]

    @property
    def roots(self) -> list[Path]:
        """The symlink layout's library folders, one per disk (Plex reads the files there)."""
        return [Path(slow) / SYMLINK_ROOT for slow in self.world.slow]

    def homes(self, rel: str) -> list[Path]:
        """Where the file's original may be: the slow branches, or the library folders."""
        return self.roots if self.layouts[rel] == "symlink" else list(map(Path, self.world.slow))

    def plex_path(self, rel: str) -> Path | None:
        """The path Plex reads: through the merged view, or in the library folder that
        holds the file (None: in none)."""
        if self.layouts[rel] == "union":
            return Path(self.world.view) / rel  # type: ignore[arg-type]
        return next((root / rel for root in self.roots if os.path.lexists(root / rel)), None)

    def written(self, rel: str, data: bytes) -> None:
        self.versions[rel].add(digest(data))
        self.latest[rel] = digest(data)
        self.touch(rel)

    def touch(self, rel: str) -> None:
        self.touched[rel] = time.time()

    def where(self, rel: str) -> list[Path]:
        """The branches (union) or library folders (symlink) that hold a name at `rel`."""
        bases = self.roots if self.layouts[rel] == "symlink" else self.branches
        return [b for b in bases if os.path.lexists(b / rel)]

    def mover_list(self) -> list[str]:
        path = Path(self.world.state_dir) / "mover.txt"
        return path.read_text(errors="replace").splitlines() if path.exists() else []


def _rsync_move(box: Box, source: Path, target: Path, rel: str) -> bool:
    if os.path.lexists(target) or not source.is_file():  # (a symlink to a file moves as one)
        return False  # the mover skips a file the target already holds
    target.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["rsync", "-a", str(source), str(target)], capture_output=True)
    if done.returncode != 0:
        return False  # the source changed or went meanwhile: the mover tries next time
    os.unlink(source)
    box.touch(rel)
    box.moved.add(rel)
    return True


def mover_to_array(box: Box, rel: str) -> bool:
    """Pool → array for a file cacherr's list does not cover (what Mover Tuning moves);
    symlink layout: from the first library folder to the second."""
    if box.layouts[rel] == "symlink":
        return _rsync_move(box, box.roots[0] / rel, box.roots[1] / rel, rel)
    fast = Path(box.world.fast) / rel
    if covered(box.mover_list(), str(fast)):
        return False
    disk = next(Path(s) for s in box.world.slow if (Path(s) / rel.split("/")[0]).is_dir())
    return _rsync_move(box, fast, disk / rel, rel)


def mover_to_pool(box: Box, rel: str) -> bool:
    """Array → pool (a `prefer` share): the first disk that holds the file; symlink
    layout: from the second library folder to the first."""
    if box.layouts[rel] == "symlink":
        return _rsync_move(box, box.roots[1] / rel, box.roots[0] / rel, rel)
    for slow in map(Path, box.world.slow):
        if (slow / rel).is_file():
            return _rsync_move(box, slow / rel, Path(box.world.fast) / rel, rel)
    return False


def edit_in_place(box: Box, rel: str, seed: int) -> bool:
    """A tagger through the path Plex reads: new bytes, the same size and mtime."""
    path = box.plex_path(rel)
    if path is None:
        return False
    try:
        st = os.stat(path)
        data = hashlib.sha256(f"{rel}:{seed}".encode()).digest() * (st.st_size // 32 + 1)
        data = data[: st.st_size]
        with open(path, "r+b") as handle:
            handle.write(data)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    except OSError:
        return False
    box.written(rel, data)
    return True


def upgrade(box: Box, rel: str, seed: int) -> bool:
    """An *arr upgrade through the path Plex reads: a new file beside, renamed over the
    old one."""
    path = box.plex_path(rel)
    if path is None:
        return False
    data = hashlib.sha256(f"upgrade:{rel}:{seed}".encode()).digest() * (1000 + seed % 3000)
    beside = path.with_name(f"{path.stem}.upgrading{path.suffix}")
    try:
        beside.write_bytes(data)
        os.rename(beside, path)
    except OSError:
        return False
    box.written(rel, data)
    return True


def unmount_pool(box: Box) -> bool:
    """The pool goes away for cacherr (lazily: a copy in progress keeps its handle)."""
    if not box.pool_mounted:
        return False
    _in_worker(box, "umount", "-l", box.world.fast)
    box.pool_mounted = False
    return True


def mount_pool(box: Box) -> None:
    if not box.pool_mounted:
        _in_worker(box, "mount", "--bind", box.hidden_pool, box.world.fast)
        box.pool_mounted = True


def _in_worker(box: Box, *argv: str) -> None:
    subprocess.run(["nsenter", "--mount", "--target", str(box.worker_pid), *argv],
                   check=True, capture_output=True)  # fmt: skip


HOSTILE_SUFFIXES = [b".fr\xe9.srt", b".$(touch PWNED).srt", b".`touch TICKED`.srt",
                    b'.say "hi".srt', b".tab\there.srt"]  # fmt: skip


def hostile_sidecar(box: Box, rel: str, seed: int) -> bool:
    """A subtitle beside a video whose name cacherr must refuse, on the video's disk."""
    for home in box.homes(rel):
        video = home / rel
        if video.is_file():
            suffix = HOSTILE_SUFFIXES[seed % len(HOSTILE_SUFFIXES)]
            name = os.fsencode(video.with_suffix("")) + suffix
            with open(name, "wb") as handle:
                handle.write(b"1\n00:00:01,000 --> 00:00:02,000\nhi\n")
            return True
    return False


def user_tidies(box: Box, tracked: set[str]) -> list[str]:
    """The user, following doctor's advice, for the files cacherr does not track (it
    untracked them when someone else changed them, leaving every side alone): a symlink
    cacherr left is replaced by the file it points to, then the copy it pointed to goes;
    a leftover backup goes where the file is at its name, else is renamed back. (Without
    this, such a file stays out of cacherr's reach for good: its names are taken.) Only
    between rounds, after the checks, with no action of cacherr's unfinished. Return what
    was done."""
    done = []
    for rel, layout in box.layouts.items():
        if rel in tracked:
            continue
        acted = len(done)
        copy = box.world.symlink_dir / rel
        if layout == "symlink":
            for name in (root / rel for root in box.roots):
                if name.is_symlink() and copy.is_file():
                    beside = name.with_name(f".{name.name}.restoring")
                    shutil.copy2(copy, beside)
                    os.rename(beside, name)
                    done.append(f"put {name} back in place of the symlink")
            if os.path.lexists(copy) and box.where(rel):
                os.unlink(copy)
                done.append(f"deleted the copy {copy}")
        for home in box.homes(rel):
            backup = backup_path(home / rel)
            if not os.path.lexists(backup):
                continue
            if box.where(rel):
                os.unlink(backup)
                done.append(f"deleted the backup {backup}")
            else:
                os.rename(backup, home / rel)
                done.append(f"renamed the backup {backup} back")
        if len(done) > acted:
            box.touch(rel)
    return done
