"""Adopt: a wanted file already on the pool is recorded without a copy; released, it is
left to the mover, or moved back under `original: move`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cacherr.engine import Refused
from cacherr.state.ledger import FileIdentity
from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse
from tests.integration.engine_helpers import rows
from tests.integration.engine_helpers.world import World

DATA = os.urandom(200 * 1024)


@pytest.fixture
def world(tmp_path):
    require_fuse()
    with Sandbox(tmp_path / "mnt", disks=2) as box:
        yield World.of(box, tmp_path / "state")


def test_a_file_on_the_pool_is_adopted_without_a_copy(world):
    rel = "Movies/Fresh (2024)/fresh.mkv"
    fast = rows.write_on_fast(world, rel, DATA)
    before = FileIdentity.of(fast)
    engine = rows.engine(world, "union/shadow")
    result = engine.adopt(rel)
    assert (result.outcome, result.size_bytes, result.fast_path) == ("adopted", len(DATA), fast)
    assert FileIdentity.of(fast) == before  # the very same inode: nothing was copied
    entry = engine.ledger.get(rel)
    assert (entry.kind, entry.fast, entry.slow_branch, entry.slow) == ("adopted", before, None, None)
    assert not any((Path(b) / rel).exists() for b in world.slow)
    with pytest.raises(Refused, match="already in the ledger"):
        engine.adopt(rel)


def test_an_adopted_file_with_a_slow_copy_records_that_copy(world):
    rel = "Movies/Both/both.mkv"
    slow = world.write_original("union", rel, DATA)
    rows.write_on_fast(world, rel, DATA)
    engine = rows.engine(world, "union/shadow")
    engine.adopt(rel)
    entry = engine.ledger.get(rel)
    assert (entry.slow_branch, entry.slow) == (world.slow[0], FileIdentity.of(slow))


@pytest.mark.parametrize("original", ["shadow", "backup"])
def test_releasing_an_adopted_file_drops_it_and_leaves_the_file_to_the_mover(world, original):
    rel = f"Movies/Release {original}/r.mkv"
    fast = rows.write_on_fast(world, rel, DATA)
    engine = rows.engine(world, f"union/{original}")
    engine.adopt(rel)
    result = engine.evict(rel)
    assert result.outcome == "released"
    assert fast.read_bytes() == DATA and engine.ledger.get(rel) is None
    assert not any((Path(b) / rel).exists() for b in world.slow)


def test_under_original_move_a_released_adopted_file_is_moved_to_a_slow_disk(world):
    rel = "Movies/Moved Back/m.mkv"
    fast = rows.write_on_fast(world, rel, DATA)
    engine = rows.engine(world, "union/move")
    engine.adopt(rel)
    result = engine.evict(rel)
    assert result.outcome == "evicted"
    assert not fast.exists()
    [back] = [Path(b) / rel for b in world.slow if (Path(b) / rel).exists()]
    assert back.read_bytes() == DATA and os.stat(back).st_mtime_ns == rows.STAMP_NS
    assert rows.plex_path(world, "union/move", rel).read_bytes() == DATA
    assert rows.check_consistent(world, "union/move", {rel: DATA}) == {rel: "not-cached"}


def test_under_original_move_an_adopted_file_with_the_same_slow_copy_just_leaves_the_pool(world):
    rel = "Movies/Same/s.mkv"
    slow = world.write_original("union", rel, DATA)
    fast = rows.write_on_fast(world, rel, DATA)
    engine = rows.engine(world, "union/move")
    engine.adopt(rel)
    assert engine.evict(rel).outcome == "evicted"
    assert not fast.exists() and slow.read_bytes() == DATA
    assert not (Path(world.slow[1]) / rel).exists()


def test_an_adopted_file_whose_slow_copy_differs_is_untracked_and_both_are_kept(world):
    rel = "Movies/Upgraded/u.mkv"
    slow = world.write_original("union", rel, b"the old version")
    fast = rows.write_on_fast(world, rel, DATA)  # a newer download on the pool
    engine = rows.engine(world, "union/move")
    engine.adopt(rel)
    result = engine.evict(rel)
    assert result.outcome == "untracked" and "differs" in result.detail
    assert fast.read_bytes() == DATA and slow.read_bytes() == b"the old version"
    assert engine.ledger.get(rel) is None


def test_an_adopted_file_whose_slow_copy_has_other_bytes_of_its_size_and_mtime_is_kept(world):
    rel = "Movies/Retagged/r.mkv"
    slow = world.write_original("union", rel, DATA)
    edited = os.urandom(len(DATA))
    fast = rows.write_on_fast(world, rel, edited)  # a tagger kept the size and the mtime
    engine = rows.engine(world, "union/move")
    engine.adopt(rel)
    result = engine.evict(rel)
    assert result.outcome == "untracked" and "differs" in result.detail
    assert fast.read_bytes() == edited == world.plex_path("union", rel).read_bytes()
    assert slow.read_bytes() == DATA and engine.ledger.get(rel) is None


def test_a_hardlinked_adopted_file_is_only_ever_released(world):
    rel = "Movies/Seeding/s.mkv"
    fast = rows.write_on_fast(world, rel, DATA)
    os.link(fast, fast.with_name("torrent.mkv"))
    engine = rows.engine(world, "union/move")
    engine.adopt(rel)
    assert engine.ledger.get(rel).original == "shadow"
    assert engine.evict(rel).outcome == "released"
    assert fast.read_bytes() == DATA and os.lstat(fast).st_nlink == 2


def test_a_file_not_on_the_pool_or_a_symlink_layout_is_not_adopted(world):
    rel = "Movies/Slow only/s.mkv"
    world.write_original("union", rel, DATA)
    with pytest.raises(Refused, match="not on the fast branch"):
        rows.engine(world, "union/shadow").adopt(rel)
    with pytest.raises(Refused, match="union layout"):
        rows.engine(world, "symlink/backup").adopt(rel)
    assert rows.engine(world, "union/shadow").ledger.files() == []
