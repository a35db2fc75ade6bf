"""Under strace, the rows of part 2: each new side is durable (file fsynced, renamed into
place, folder fsynced, journalled) before the old side is hidden, unlinked or replaced."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cacherr.engine.paths import backup_path, link_temp_path, temp_path
from cacherr.state.ledger import Ledger
from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse, require_tool
from tests.integration.engine_helpers import rows
from tests.integration.engine_helpers.world import World
from tests.integration.test_engine_ordering import TRACED, _fsync, _in_order, _index

REPO = Path(__file__).resolve().parents[2]
DATA = os.urandom(100_000)
e = re.escape


@pytest.fixture
def world(tmp_path):
    require_fuse()
    with Sandbox(tmp_path / "mnt", disks=2) as box:
        yield World.of(box, tmp_path / "state")


def _trace(world: World, tmp_path: Path, spec: str, kind: str, rel: str) -> list[str]:
    strace = require_tool("strace")
    out = tmp_path / f"strace-{spec.replace('/', '-')}-{kind}"
    subprocess.run(
        [strace, "-f", "-y", "-qq", "-s", "4096", "-e", TRACED, "-o", str(out),
         sys.executable, "-m", "tests.integration.engine_helpers.run_row", world.to_json(),
         spec, kind, rel],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, timeout=60,
    )  # fmt: skip
    return out.read_text().splitlines()


def _rename(source: Path, target: Path) -> str:
    return rf"rename(at2)?\(.*\"{e(str(source))}\".*\"{e(str(target))}\""


def _unlink(path: Path) -> str:
    return rf"unlink(at)?\(.*\"{e(str(path))}\""


WAL = "cacherr.db-wal"


def _prepare(world: World, spec: str, kind: str, rel: str) -> None:
    rows.write_original(world, spec, rel, DATA)
    if kind == "evict":
        rows.engine(world, spec, ledger=Ledger.open(world.state_dir)).cache(rel)


def _copy_placed(fast: Path) -> list[str]:
    """A durable copy: the temporary file fsynced, renamed into place, the folder fsynced."""
    return [_fsync(temp_path(fast)), _rename(temp_path(fast), fast), _fsync(fast.parent)]


def test_union_backup_hides_the_original_only_after_the_copy_is_durable(world, tmp_path):
    rel = "Movies/A/a.mkv"
    _prepare(world, "union/backup", "cache", rel)
    lines = _trace(world, tmp_path, "union/backup", "cache", rel)
    fast, slow = Path(world.fast) / rel, Path(world.slow[0]) / rel
    order = _in_order(
        lines,
        *_copy_placed(fast),
        _fsync(Path(world.state_dir) / WAL),
        _rename(slow, backup_path(slow)),
        _fsync(slow.parent),
    )
    assert order == sorted(order)


def test_union_backup_evict_renames_the_backup_back_before_deleting_the_copy(world, tmp_path):
    rel = "Movies/B/b.mkv"
    _prepare(world, "union/backup", "evict", rel)
    lines = _trace(world, tmp_path, "union/backup", "evict", rel)
    fast, slow = Path(world.fast) / rel, Path(world.slow[0]) / rel
    order = _in_order(
        lines, _rename(backup_path(slow), slow), _fsync(slow.parent), _unlink(fast),
        _fsync(fast.parent),
    )  # fmt: skip
    assert order == sorted(order)


def test_union_move_unlinks_the_slow_copy_only_after_the_fast_one_is_durable(world, tmp_path):
    rel = "Movies/C/c.mkv"
    _prepare(world, "union/move", "cache", rel)
    lines = _trace(world, tmp_path, "union/move", "cache", rel)
    fast, slow = Path(world.fast) / rel, Path(world.slow[0]) / rel
    order = _in_order(
        lines, *_copy_placed(fast), _fsync(Path(world.state_dir) / WAL), _unlink(slow),
        _fsync(slow.parent),
    )  # fmt: skip
    assert order == sorted(order)


def test_union_move_evict_places_the_slow_copy_durably_before_deleting_the_fast_one(
    world, tmp_path
):
    rel = "Movies/D/d.mkv"
    _prepare(world, "union/move", "evict", rel)
    lines = _trace(world, tmp_path, "union/move", "evict", rel)
    fast, slow = Path(world.fast) / rel, Path(world.slow[0]) / rel
    order = _in_order(
        lines, *_copy_placed(slow), _fsync(Path(world.state_dir) / WAL), _unlink(fast),
        _fsync(fast.parent),
    )  # fmt: skip
    assert order == sorted(order)


def test_symlink_move_swaps_in_the_symlink_only_after_the_copy_is_durable(world, tmp_path):
    rel = "Movies/E/e.mkv"
    _prepare(world, "symlink/move", "cache", rel)
    lines = _trace(world, tmp_path, "symlink/move", "cache", rel)
    copy, original = world.symlink_dir / rel, world.symlink_root / rel
    link = link_temp_path(original)
    order = _in_order(
        lines, *_copy_placed(copy), rf"symlink(at)?\(.*\"{e(str(link))}\"",
        _rename(link, original), _fsync(original.parent),
    )  # fmt: skip
    assert order == sorted(order)


def test_symlink_move_evict_replaces_the_symlink_with_a_durable_copy_then_deletes(
    world, tmp_path
):
    rel = "Movies/F/f.mkv"
    _prepare(world, "symlink/move", "evict", rel)
    lines = _trace(world, tmp_path, "symlink/move", "evict", rel)
    copy, original = world.symlink_dir / rel, world.symlink_root / rel
    back = backup_path(original)
    order = _in_order(
        lines, *_copy_placed(back), _rename(back, original), _fsync(original.parent),
        _unlink(copy), _fsync(copy.parent),
    )  # fmt: skip
    assert order == sorted(order)


def test_sidecars_follow_their_video_each_durable_before_its_original_goes(world, tmp_path):
    spec = "union/move/subtitles"
    rel, srt = "Movies/G/g.mkv", "Movies/G/g.en.forced.srt"
    _prepare(world, spec, "cache", rel)
    rows.write_original(world, spec, srt, b"subtitles")
    lines = _trace(world, tmp_path, spec, "cache", rel)
    fast, slow = Path(world.fast), Path(world.slow[0])
    order = _in_order(
        lines, *_copy_placed(fast / rel), _unlink(slow / rel),
        *_copy_placed(fast / srt), _fsync(Path(world.state_dir) / WAL), _unlink(slow / srt),
        _fsync((slow / srt).parent),
    )  # fmt: skip
    assert order == sorted(order)
    # Nothing of the sidecar is written before the video is settled.
    assert _index(lines, rf"\"{e(str(temp_path(fast / srt)))}\"") > order[3]


def test_an_adopted_file_moved_back_is_durable_on_a_slow_disk_before_it_leaves_the_pool(
    world, tmp_path
):
    rel = "Movies/H/h.mkv"
    rows.write_on_fast(world, rel, DATA)
    rows.engine(world, "union/move", ledger=Ledger.open(world.state_dir)).adopt(rel)
    lines = _trace(world, tmp_path, "union/move", "evict", rel)
    fast, slow = Path(world.fast) / rel, Path(world.slow[0]) / rel
    order = _in_order(
        lines, rf"mkdir(at)?\(.*\"{e(str(slow.parent))}\"", _fsync(slow.parent.parent),
        *_copy_placed(slow), _fsync(Path(world.state_dir) / WAL), _unlink(fast),
        _fsync(fast.parent),
    )  # fmt: skip
    assert order == sorted(order)
