"""The rows that hide or remove the original (union/backup, union/move, symlink/move),
both directions, checked through what Plex reads and against the ledger."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from cacherr.engine import Cancelled, InUse, NoSpace
from cacherr.engine.paths import backup_path
from cacherr.state.ledger import FileIdentity, Ledger
from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse
from tests.integration.engine_helpers import rows
from tests.integration.engine_helpers.world import World

DATA = os.urandom(300 * 1024)


@pytest.fixture
def world(tmp_path):
    require_fuse()
    with Sandbox(tmp_path / "mnt", disks=2) as box:
        yield World.of(box, tmp_path / "state")


def test_union_backup_hides_the_slow_copy_and_renames_it_back_on_eviction(world):
    rel = "Movies/Backup (2020)/b.mkv"
    slow = rows.write_original(world, "union/backup", rel, DATA)
    inode = os.lstat(slow).st_ino
    engine = rows.engine(world, "union/backup")
    assert engine.cache(rel).outcome == "cached"
    backup = backup_path(slow)
    assert not slow.exists() and os.lstat(backup).st_ino == inode
    assert rows.plex_path(world, "union/backup", rel).read_bytes() == DATA
    entry = engine.ledger.get(rel)
    assert (entry.original, entry.backup_name) == ("backup", backup.name)
    rows.check_consistent(world, "union/backup", {rel: DATA})

    assert engine.evict(rel).outcome == "evicted"
    assert os.lstat(slow).st_ino == inode and not backup.exists()
    assert not (Path(world.fast) / rel).exists()
    assert rows.plex_path(world, "union/backup", rel).read_bytes() == DATA
    assert rows.check_consistent(world, "union/backup", {rel: DATA}) == {rel: "not-cached"}


def test_union_move_deletes_the_slow_copy_and_copies_it_back_to_its_disk(world):
    rel = "Movies/Move (2021)/m.mkv"
    slow = world.write_original("union", rel, DATA)
    os.chown(slow.parent, 99, 100)
    os.chmod(slow.parent, 0o2775)
    engine = rows.engine(world, "union/move")
    assert engine.cache(rel).outcome == "cached"
    assert not slow.exists()
    assert rows.check_consistent(world, "union/move", {rel: DATA}) == {rel: "cached"}
    os.rmdir(slow.parent)  # the mover or a user tidied the empty folder meanwhile

    assert engine.evict(rel).outcome == "evicted"
    assert slow.read_bytes() == DATA and os.stat(slow).st_mtime_ns == rows.STAMP_NS
    folder = os.stat(slow.parent)  # made again with the owner and mode of its fast twin
    assert (folder.st_uid, folder.st_gid, stat.S_IMODE(folder.st_mode)) == (99, 100, 0o2775)
    assert rows.check_consistent(world, "union/move", {rel: DATA}) == {rel: "not-cached"}


def test_union_move_goes_back_to_another_of_the_shares_disks_when_its_own_is_gone(world):
    rel = "Movies/Gone/g.mkv"
    world.write_original("union", rel, DATA)
    engine = rows.engine(world, "union/move")
    engine.cache(rel)
    disk1 = Path(world.slow[0])
    disk1.rename(disk1.with_name("disk1-removed"))  # the disk left the array
    result = engine.evict(rel)
    assert result.outcome == "evicted"
    assert (Path(world.slow[1]) / rel).read_bytes() == DATA
    assert rows.plex_path(world, "union/move", rel).read_bytes() == DATA


def test_union_move_goes_back_to_another_disk_when_its_own_is_full(tmp_path):
    require_fuse()
    with Sandbox(tmp_path / "mnt", disks=2, mergerfs=False) as box:
        small = box.root / "disk-small"
        small.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "small", str(small)], check=True)
        try:
            (small / "Movies").mkdir()
            world = World(str(box.fast), (str(small), str(box.slow[0])), None, str(tmp_path / "s"))
            world.symlink_dir.mkdir()
            rel = "Movies/Full/f.mkv"
            (small / "Movies/Full").mkdir()
            (small / rel).write_bytes(DATA)
            engine = rows.engine(world, "union/move")
            engine.cache(rel)
            assert engine.ledger.get(rel).slow_branch == str(small)
            (small / "filler").write_bytes(b"\0" * (1024 * 1024 - 200 * 1024))  # now full
            assert engine.evict(rel).outcome == "evicted"
            assert (box.slow[0] / rel).read_bytes() == DATA and not (small / rel).exists()
            # With no disk that has room, nothing happens and the copy stays cached.
            engine.cache(rel)
            (box.slow[0] / "Movies").rename(box.slow[0] / "Movies-away")
            with pytest.raises(NoSpace, match="no slow branch can take it back"):
                engine.evict(rel)
            assert (box.fast / rel).read_bytes() == DATA and engine.ledger.get(rel) is not None
        finally:
            subprocess.run(["umount", str(small)], check=True)


def test_symlink_move_replaces_the_original_with_a_symlink_and_copies_it_back(world):
    rel = "Movies/Sym (2022)/s.mkv"
    original = rows.write_original(world, "symlink/move", rel, DATA)
    engine = rows.engine(world, "symlink/move")
    assert engine.cache(rel).outcome == "cached"
    assert original.is_symlink() and os.readlink(original) == str(world.symlink_dir / rel)
    assert not backup_path(original).exists()
    assert rows.check_consistent(world, "symlink/move", {rel: DATA}) == {rel: "cached"}

    assert engine.evict(rel).outcome == "evicted"
    assert not original.is_symlink() and original.read_bytes() == DATA
    assert os.stat(original).st_mtime_ns == rows.STAMP_NS
    assert not (world.symlink_dir / rel).exists()
    assert rows.check_consistent(world, "symlink/move", {rel: DATA}) == {rel: "not-cached"}


@pytest.mark.parametrize("original", ["backup", "move"])
def test_a_hardlinked_file_is_cached_as_a_shadow_in_the_union_layout(world, original):
    rel = f"Movies/Seeding {original}/h.mkv"
    slow = world.write_original("union", rel, DATA)
    os.link(slow, Path(world.slow[0]) / "Movies" / f"torrent-{original}.mkv")
    engine = rows.engine(world, f"union/{original}")
    result = engine.cache(rel)
    assert result.outcome == "cached" and "hardlinked" in result.detail
    assert slow.read_bytes() == DATA and os.lstat(slow).st_nlink == 2  # untouched
    assert engine.ledger.get(rel).original == "shadow"
    assert engine.evict(rel).outcome == "evicted"
    assert slow.read_bytes() == DATA and not (Path(world.fast) / rel).exists()


def test_a_hardlinked_file_is_skipped_in_the_symlink_move_layout(world):
    rel = "Movies/Seeding/s.mkv"
    original = rows.write_original(world, "symlink/move", rel, DATA)
    os.link(original, original.with_name("torrent.mkv"))
    with pytest.raises(Exception, match="hardlinks"):
        rows.engine(world, "symlink/move").cache(rel)
    assert not original.is_symlink() and not (world.symlink_dir / rel).exists()


DESTRUCTIVE = [
    ("union/backup", "cache"),
    ("union/move", "cache"),
    ("symlink/backup", "cache"),
    ("symlink/move", "cache"),
    ("union/shadow", "evict"),
    ("union/backup", "evict"),
    ("union/move", "evict"),
    ("symlink/backup", "evict"),
    ("symlink/move", "evict"),
]


@pytest.mark.parametrize(("spec", "kind"), DESTRUCTIVE)
def test_a_player_reading_the_file_stops_every_destructive_step(world, spec, kind):
    rel = f"Movies/Playing {spec.replace('/', ' ')} {kind}/p.mkv"
    rows.write_original(world, spec, rel, DATA)
    ledger = Ledger.open(world.state_dir)
    if kind == "evict":
        rows.engine(world, spec, ledger=ledger).cache(rel)
    asked = []

    def playing(path: str) -> bool:
        asked.append(path)
        return True

    engine = rows.engine(world, spec, ledger=ledger, session_check=playing)
    with pytest.raises(InUse, match="a player is reading"):
        getattr(engine, kind)(rel)
    assert asked == [rel]
    want = "cached" if kind == "evict" else "not-cached"
    assert rows.check_consistent(world, spec, {rel: DATA}) == {rel: want}
    if kind == "evict":
        assert FileIdentity.of(rows.fast_root(world, spec) / rel) == ledger.get(rel).fast


def test_a_cancel_while_copying_back_keeps_the_cached_copy_and_leaves_nothing_behind(world):
    rel = "Movies/Cancel/c.mkv"
    world.write_original("union", rel, DATA)
    ledger = Ledger.open(world.state_dir)
    rows.engine(world, "union/move", ledger=ledger).cache(rel)
    os.rmdir(Path(world.slow[0]) / "Movies/Cancel")
    cancel = threading.Event()
    engine = rows.engine(world, "union/move", ledger=ledger, cancel=cancel,
                         chunk_size_bytes=32 * 1024, progress=lambda done, total: cancel.set())  # fmt: skip
    with pytest.raises(Cancelled):
        engine.evict(rel)
    assert not (Path(world.slow[0]) / "Movies/Cancel").exists()  # its folder is gone again
    assert rows.check_consistent(world, "union/move", {rel: DATA}) == {rel: "cached"}


def test_a_cached_copy_that_changes_while_copied_back_is_untracked_and_kept(world):
    rel = "Movies/Changed/c.mkv"
    world.write_original("union", rel, DATA)
    ledger = Ledger.open(world.state_dir)
    rows.engine(world, "union/move", ledger=ledger).cache(rel)
    fast = Path(world.fast) / rel

    def someone_writes(done: int, total: int) -> None:
        if done == 32 * 1024:  # once, a chunk into the copy
            with open(fast, "ab") as handle:
                handle.write(b"!")

    engine = rows.engine(world, "union/move", ledger=ledger, chunk_size_bytes=32 * 1024,
                         progress=someone_writes)  # fmt: skip
    result = engine.evict(rel)
    assert result.outcome == "untracked" and ledger.get(rel) is None
    assert fast.read_bytes().startswith(DATA)  # the only copy, left for the user
    assert not any(os.path.lexists(Path(b) / rel) for b in world.slow)
    assert rows.working_files(world, "union/move", {"Movies/Changed"}) == []
