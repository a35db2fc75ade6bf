"""What the others on a real box do, each as it really does it, and what they wrote.

- The mover, pool → array (Mover Tuning: it honours cacherr's list, as read by
  `moverlist.covered`) and array → pool (a `prefer` share: no list applies): `rsync -a`
  keeps the mtime and writes the final name, then the source is removed; a target that
  exists is skipped, source kept.
- A tagger (or `rsync --inplace -t`): new bytes in place through the merged view, with
  the same size and mtime.
- An *arr upgrade: a new file written beside, through the view, renamed over the old.
- The pool unmounted (lazily, for cacherr's mount namespace only) and mounted again.
- Hostile names: subtitles whose names are not UTF-8 or hold what a shell would run.

Every content written is remembered per path (`versions`), and when each path was last
touched by someone other than cacherr (`touched`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from cacherr.cycle.moverlist import covered
from tests.integration.engine_helpers.world import World


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Box:
    """The world, the library paths, and what the actors know of them."""

    world: World
    worker_pid: int
    hidden_pool: str  # where the worker's namespace keeps the pool while it is unmounted
    versions: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    touched: dict[str, float] = field(default_factory=dict)
    recorded: dict[str, float] = field(default_factory=dict)  # when cacherr began the action
    pool_mounted: bool = True

    @property
    def branches(self) -> list[Path]:
        return [Path(self.world.fast), *map(Path, self.world.slow)]

    def written(self, rel: str, data: bytes) -> None:
        self.versions[rel].add(digest(data))
        self.touch(rel)

    def touch(self, rel: str) -> None:
        self.touched[rel] = time.time()

    def where(self, rel: str) -> list[Path]:
        return [b for b in self.branches if os.path.lexists(b / rel)]

    def mover_list(self) -> list[str]:
        path = Path(self.world.state_dir) / "mover.txt"
        return path.read_text(errors="replace").splitlines() if path.exists() else []


def _rsync_move(box: Box, source: Path, target: Path, rel: str) -> bool:
    if os.path.lexists(target) or not source.is_file():
        return False  # the mover skips a file the target already holds
    target.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["rsync", "-a", str(source), str(target)], capture_output=True)
    if done.returncode != 0:
        return False  # the source changed or went meanwhile: the mover tries next time
    os.unlink(source)
    box.touch(rel)
    return True


def mover_to_array(box: Box, rel: str) -> bool:
    """Pool → array for a file cacherr's list does not cover (what Mover Tuning moves)."""
    fast = Path(box.world.fast) / rel
    if covered(box.mover_list(), str(fast)):
        return False
    disk = next(Path(s) for s in box.world.slow if (Path(s) / rel.split("/")[0]).is_dir())
    return _rsync_move(box, fast, disk / rel, rel)


def mover_to_pool(box: Box, rel: str) -> bool:
    """Array → pool (a `prefer` share): the first disk that holds the file."""
    for slow in map(Path, box.world.slow):
        if (slow / rel).is_file():
            return _rsync_move(box, slow / rel, Path(box.world.fast) / rel, rel)
    return False


def edit_in_place(box: Box, rel: str, seed: int) -> bool:
    """A tagger through the merged view: new bytes, the same size and mtime."""
    path = Path(box.world.view) / rel  # type: ignore[arg-type]
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
    """An *arr upgrade through the view: a new file beside, renamed over the old one."""
    path = Path(box.world.view) / rel  # type: ignore[arg-type]
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
    for slow in map(Path, box.world.slow):
        video = slow / rel
        if video.is_file():
            suffix = HOSTILE_SUFFIXES[seed % len(HOSTILE_SUFFIXES)]
            name = os.fsencode(video.with_suffix("")) + suffix
            with open(name, "wb") as handle:
                handle.write(b"1\n00:00:01,000 --> 00:00:02,000\nhi\n")
            return True
    return False
