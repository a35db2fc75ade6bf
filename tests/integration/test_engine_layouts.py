"""Both built rows, both directions, checked through what Plex reads before and after."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from cacherr.config.model import CacheConfig, Size, SymlinkLayout, Transfers, UnionLayout
from cacherr.engine import Engine, NoSpace, Refused
from cacherr.engine.paths import backup_path
from cacherr.state.ledger import FileIdentity, Ledger
from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse, require_root
from tests.integration.engine_helpers.world import World

DATA = os.urandom(300 * 1024)


@pytest.fixture
def world(tmp_path):
    require_fuse()
    with Sandbox(tmp_path / "mnt", disks=2) as box:
        yield World.of(box, tmp_path / "state")


def _no_working_files(*roots):
    return [p for root in roots for p in root.rglob(".*cacherr-*")]


@pytest.mark.parametrize("verify", ["size", "checksum"])
def test_union_shadow_caches_to_the_pool_and_evicts_leaving_the_view_identical(world, verify):
    rel = "Movies/Ünïcode – A (2020)/A 'odd' name.mkv"
    slow_file = world.write_original("union", rel, DATA)
    os.chown(slow_file, 99, 100)
    os.chown(slow_file.parent, 99, 100)
    os.chmod(slow_file.parent, 0o775)
    os.setxattr(slow_file, "user.note", b"kept")
    before = world.plex_path("union", rel).read_bytes()
    progress = []
    engine = world.engine(
        "union",
        verify=verify,
        chunk_size_bytes=64 * 1024,
        progress=lambda done, total: progress.append((done, total)),
    )
    result = engine.cache(rel)
    fast_file = world.fast + "/" + rel
    assert result.outcome == "cached" and result.view_serves_fast is True
    assert world.plex_path("union", rel).read_bytes() == before == DATA
    st, src = os.stat(fast_file), os.stat(slow_file)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (
        src.st_uid,
        src.st_gid,
        stat.S_IMODE(src.st_mode),
        src.st_mtime_ns,
    )
    assert os.getxattr(fast_file, "user.note") == b"kept"
    folder = os.stat(os.path.dirname(fast_file))
    assert (folder.st_uid, folder.st_gid, stat.S_IMODE(folder.st_mode)) == (99, 100, 0o775)
    assert len(progress) >= 4 and progress[-1] == (len(DATA), len(DATA))
    entry = engine.ledger.get(rel)
    assert (entry.layout, entry.original, entry.slow_branch) == ("union", "shadow", world.slow[0])
    assert entry.slow == FileIdentity.of(slow_file) and entry.fast == FileIdentity.of(fast_file)

    assert engine.evict(rel).outcome == "evicted"
    assert not os.path.exists(fast_file) and not os.path.exists(os.path.dirname(fast_file))
    assert os.path.isdir(world.fast + "/Movies")  # the share's top folder stays
    assert world.plex_path("union", rel).read_bytes() == DATA
    assert engine.ledger.get(rel) is None
    assert _no_working_files(Path(world.fast), *map(Path, world.slow)) == []


def test_symlink_backup_swaps_the_original_for_a_symlink_and_back(world):
    rel = "Movies/B (2021)/B.mkv"
    original = world.write_original("symlink", rel, DATA)
    inode = os.lstat(original).st_ino
    engine = world.engine("symlink")
    assert engine.cache(rel).outcome == "cached"
    assert os.path.islink(original)
    assert os.readlink(original) == str(world.symlink_dir / rel)
    assert world.plex_path("symlink", rel).read_bytes() == DATA
    backup = backup_path(original)
    assert os.lstat(backup).st_ino == inode and os.lstat(backup).st_nlink == 1
    entry = engine.ledger.get(rel)
    assert (entry.layout, entry.original, entry.backup_name) == ("symlink", "backup", backup.name)

    assert engine.evict(rel).outcome == "evicted"
    assert not os.path.islink(original) and os.lstat(original).st_ino == inode
    assert not os.path.exists(backup)
    assert not (world.symlink_dir / rel).exists()
    assert hashlib.sha256(original.read_bytes()).digest() == hashlib.sha256(DATA).digest()
    assert engine.ledger.get(rel) is None


def test_eviction_follows_the_ledger_record_not_todays_layout(world):
    rel = "Movies/C/C.mkv"
    world.write_original("union", rel, DATA)
    ledger = Ledger.open(world.state_dir)
    world.engine("union", ledger=ledger).cache(rel)
    # Today's config says symlink; the file was cached under union/shadow.
    assert world.engine("symlink", ledger=ledger).evict(rel).outcome == "evicted"
    assert not os.path.exists(world.fast + "/" + rel)
    assert world.plex_path("union", rel).read_bytes() == DATA


def test_a_changed_cached_copy_is_untracked_and_never_deleted(world):
    rel = "Movies/D/D.mkv"
    world.write_original("union", rel, DATA)
    engine = world.engine("union")
    engine.cache(rel)
    with open(world.fast + "/" + rel, "ab") as handle:
        handle.write(b"more")
    result = engine.evict(rel)
    assert result.outcome == "untracked" and "changed" in result.detail
    assert os.path.getsize(world.fast + "/" + rel) == len(DATA) + 4
    assert engine.ledger.get(rel) is None


def test_a_hardlinked_original_is_skipped_in_the_symlink_layout(world):
    rel = "Movies/E/E.mkv"
    original = world.write_original("symlink", rel, DATA)
    os.link(original, original.with_name("seeding.mkv"))
    with pytest.raises(Refused, match="hardlinks"):
        world.engine("symlink").cache(rel)
    assert not os.path.islink(original) and not (world.symlink_dir / rel).exists()


def test_a_second_cache_of_the_same_file_is_refused(world):
    rel = "Movies/F/F.mkv"
    world.write_original("union", rel, DATA)
    engine = world.engine("union")
    engine.cache(rel)
    with pytest.raises(Refused, match="already"):
        engine.cache(rel)


def test_an_unknown_row_and_an_unknown_file_are_refused_with_the_reason(world):
    rel = "Movies/G/G.mkv"
    world.write_original("union", rel, DATA)
    union = UnionLayout(
        view=Path(world.view), fast=Path(world.fast), slow=tuple(Path(s) for s in world.slow)
    )
    engine = Engine(Ledger.open(world.state_dir), layout="union", original="mirror", union=union)
    with pytest.raises(Refused, match="union/mirror is not supported"):
        engine.cache(rel)
    with pytest.raises(Refused, match="not in the ledger"):
        engine.evict(rel)
    assert not (Path(world.fast) / rel).exists()
    assert (Path(world.slow[0]) / rel).read_bytes() == DATA


def test_an_engine_built_from_the_cache_block_resolves_min_free_against_the_pool(world):
    union = UnionLayout(
        view=Path(world.view), fast=Path(world.fast), slow=tuple(Path(s) for s in world.slow)
    )
    cache = CacheConfig(
        layout="union",
        original="shadow",
        union=union,
        symlink=None,
        max_size=Size(percent=80),
        min_free=Size(percent=100),
        sidecars="none",
        verify="checksum",
        transfers=Transfers(),
        mover_exclude_file=Path("/x"),
        defer_while_playing="never",
    )
    engine = Engine.from_config(Ledger.open(world.state_dir), cache)
    total = os.statvfs(world.fast).f_blocks * os.statvfs(world.fast).f_frsize
    assert engine.min_free_bytes == total
    assert engine.context.copy_options.verify == "checksum"
    world.write_original("union", "Movies/H/H.mkv", DATA)
    with pytest.raises(NoSpace, match="min_free"):
        engine.cache("Movies/H/H.mkv")


def test_the_symlink_layout_may_keep_copies_on_a_root_file_system_that_is_a_disk(tmp_path):
    require_root()
    with Sandbox(tmp_path / "mnt", disks=1, mergerfs=False) as box:
        root = box.fast / "media"  # originals on another device (here, the tmpfs)
        (root / "Movies/S").mkdir(parents=True)
        original = root / "Movies/S/s.mkv"
        original.write_bytes(DATA)
        cache_dir = tmp_path / "ssd-cache"  # a plain folder on the (disk) root file system
        cache_dir.mkdir()
        layout = SymlinkLayout(dir=cache_dir, plex_dir="/plex/cache")
        engine = Engine(
            Ledger.open(tmp_path / "state"),
            layout="symlink",
            original="backup",
            symlink=layout,
            roots=[root],
        )
        engine.cache("Movies/S/s.mkv")
        assert os.readlink(original) == "/plex/cache/Movies/S/s.mkv"
        assert (cache_dir / "Movies/S/s.mkv").read_bytes() == DATA
        assert engine.evict("Movies/S/s.mkv").outcome == "evicted"
        assert original.read_bytes() == DATA and not original.is_symlink()
