"""Faults leave everything as it was: the original intact, no partial or working file,
no ledger entry, a clear error naming the file and the reason."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from cacherr.config.model import SymlinkLayout, UnionLayout
from cacherr.engine import Cancelled, CopyFailed, Engine, InUse, NoSpace, Refused, SourceChanged
from cacherr.host.mounts import mount_of
from cacherr.state.ledger import Ledger
from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse, require_tool
from tests.integration.engine_helpers.world import World

REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


@pytest.fixture
def box(tmp_path):
    require_fuse()
    with Sandbox(tmp_path / "mnt", disks=2, fast_size_bytes=4 * MiB) as sandbox:
        yield sandbox


@pytest.fixture
def root_fs_dir(tmp_path):
    """A folder on the root file system, where an unmounted pool's folder would be."""
    if mount_of(tmp_path).mount_point == "/":
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(dir="/", prefix="cacherr-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def world(box, tmp_path):
    return World.of(box, tmp_path / "state")


def _assert_untouched(world: World, rel: str, data: bytes | None) -> None:
    """The fast side holds nothing of the file; the ledger and journal are clean."""
    fast = Path(world.fast) / rel
    assert not fast.exists()
    assert not fast.parent.exists() or not [
        p for p in fast.parent.iterdir() if ".cacherr-" in p.name
    ]
    if data is not None:
        assert world.plex_path("union", rel).read_bytes() == data
    ledger = Ledger.open(world.state_dir)
    try:
        assert ledger.get(rel) is None
        assert (
            ledger.conn.execute(
                "SELECT count(*) FROM journal_actions WHERE state = 'running'"
            ).fetchone()[0]
            == 0
        )
    finally:
        ledger.close()


def test_a_file_larger_than_the_free_space_is_refused_before_any_write(world):
    rel = "Movies/Big/big.mkv"
    data = os.urandom(5 * MiB)
    world.write_original("union", rel, data)
    with pytest.raises(NoSpace, match="big.mkv"):
        world.engine("union").cache(rel)
    _assert_untouched(world, rel, data)


def test_min_free_is_kept_free(world):
    rel = "Movies/M/m.mkv"
    data = os.urandom(MiB)
    world.write_original("union", rel, data)
    with pytest.raises(NoSpace, match="min_free"):
        world.engine("union", min_free_bytes=3 * MiB + MiB // 2).cache(rel)
    _assert_untouched(world, rel, data)
    assert not (Path(world.fast) / "Movies/M").exists()


def test_enospc_during_the_copy_removes_the_partial_file_and_keeps_the_source(world):
    rel = "Movies/Full/full.mkv"
    data = os.urandom(2 * MiB)
    world.write_original("union", rel, data)
    filler = Path(world.fast) / "filler"

    def another_writer_fills_the_pool(done, total):
        if not filler.exists():
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
            # The pool is full once this fails, which is the point.
            with contextlib.suppress(OSError):
                os.write(fd, b"\0" * 3 * MiB)
            os.close(fd)

    engine = world.engine(
        "union", chunk_size_bytes=256 * 1024, progress=another_writer_fills_the_pool
    )
    with pytest.raises(NoSpace, match="full.mkv"):
        engine.cache(rel)
    _assert_untouched(world, rel, data)


@pytest.mark.parametrize("change", ["vanishes", "grows"])
def test_a_source_that_changes_mid_copy_aborts_and_leaves_no_copy(world, change):
    rel = f"Movies/Change/{change}.mkv"
    data = os.urandom(MiB)
    source = world.write_original("union", rel, data)

    def someone_else_writes(done, total):
        if done == 64 * 1024:
            if change == "vanishes":
                source.unlink()
            else:
                with open(source, "ab") as handle:
                    handle.write(b"appended")

    engine = world.engine("union", chunk_size_bytes=64 * 1024, progress=someone_else_writes)
    with pytest.raises(SourceChanged, match=f"{change}.mkv"):
        engine.cache(rel)
    _assert_untouched(world, rel, None)
    if change == "grows":
        assert world.plex_path("union", rel).read_bytes() == data + b"appended"
    else:
        assert not world.plex_path("union", rel).exists()


def test_sigterm_cancel_stops_between_chunks_and_removes_the_partial_file(world):
    rel = "Movies/Cancel/c.mkv"
    data = os.urandom(MiB)
    world.write_original("union", rel, data)
    cancel = threading.Event()
    engine = world.engine(
        "union",
        chunk_size_bytes=64 * 1024,
        cancel=cancel,
        progress=lambda done, total: cancel.set(),
    )
    with pytest.raises(Cancelled):
        engine.cache(rel)
    _assert_untouched(world, rel, data)


@pytest.mark.parametrize("denied", ["source", "target folder"])
def test_permission_denied_is_a_clear_error_and_changes_nothing(world, tmp_path, denied):
    setpriv = require_tool("setpriv")
    rel = "Movies/Denied/d.mkv"
    data = os.urandom(100_000)
    source = world.write_original("union", rel, data)
    if denied == "source":
        source.chmod(0)
    else:
        (Path(world.fast) / "Movies").chmod(0o555)
    Ledger.open(world.state_dir).close()
    no_override = "-dac_override,-dac_read_search"
    done = subprocess.run(
        [
            setpriv,
            f"--inh-caps={no_override}",
            f"--bounding-set={no_override}",
            sys.executable,
            "-m",
            "tests.integration.engine_helpers.run_action",
            world.to_json(),
            "union",
            "cache",
            rel,
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3, done.stderr
    assert "Permission denied" in done.stderr
    source.chmod(0o644)
    _assert_untouched(world, rel, data)


def test_a_read_only_pool_is_a_clear_error_and_changes_nothing(world):
    rel = "Movies/RO/ro.mkv"
    data = os.urandom(100_000)
    world.write_original("union", rel, data)
    subprocess.run(["mount", "-o", "remount,ro", world.fast], check=True)
    try:
        with pytest.raises(CopyFailed, match="Read-only file system"):
            world.engine("union").cache(rel)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", world.fast], check=True)
    _assert_untouched(world, rel, data)


def test_an_unmounted_pool_a_plain_folder_on_the_root_file_system_is_refused(
    box, tmp_path, root_fs_dir
):
    plain = root_fs_dir / "unmounted-pool"
    (plain / "Movies").mkdir(parents=True)
    rel = "Movies/U/u.mkv"
    box.write_file(rel, b"data")
    union = UnionLayout(view=box.view, fast=plain, slow=tuple(box.slow))
    engine = Engine(Ledger.open(tmp_path / "state"), layout="union", original="shadow", union=union)
    with pytest.raises(Refused, match="not a mounted file system"):
        engine.cache(rel)
    assert list((plain / "Movies").iterdir()) == []


def test_the_merged_view_is_never_used_as_a_branch(box, tmp_path):
    box.write_file("Movies/V/v.mkv", b"data")
    for fast, slow in [(box.view, tuple(box.slow)), (box.fast, (box.view,))]:
        union = UnionLayout(view=box.view, fast=fast, slow=slow)
        engine = Engine(
            Ledger.open(tmp_path / "state"), layout="union", original="shadow", union=union
        )
        with pytest.raises(Refused, match="merged view"):
            engine.cache("Movies/V/v.mkv")
    assert box.read_view("Movies/V/v.mkv") == b"data"


def test_a_slow_branch_on_the_pools_own_device_is_refused(box, tmp_path):
    same_device = box.fast / "not-a-disk"
    (same_device / "Movies/S").mkdir(parents=True)
    (same_device / "Movies/S/s.mkv").write_bytes(b"data")
    union = UnionLayout(view=None, fast=box.fast, slow=(same_device,))  # type: ignore[arg-type]
    engine = Engine(Ledger.open(tmp_path / "state"), layout="union", original="shadow", union=union)
    with pytest.raises(Refused, match="same device"):
        engine.cache("Movies/S/s.mkv")


def test_a_share_without_a_top_level_folder_on_the_pool_is_refused_and_not_created(world):
    rel = "Music/Album/track.flac"
    world.write_original("union", rel, b"data")
    with pytest.raises(Refused, match="never creates"):
        world.engine("union").cache(rel)
    assert not (Path(world.fast) / "Music").exists()


@pytest.mark.parametrize(
    "rel",
    [
        "Movies/../../../etc/passwd",
        "/etc/passwd",
        "Movies/./A/a.mkv",
        "Movies//a.mkv",
        "Movies/A/.a.mkv.cacherr-tmp",
        "a.mkv",
    ],
)
def test_paths_that_could_leave_the_roots_are_refused(world, rel):
    with pytest.raises(Refused, match="not allowed|absolute|working name|inside a share"):
        world.engine("union").cache(rel)


@pytest.mark.parametrize("layout", ["union", "symlink"])
def test_a_symlink_that_leaves_the_root_is_never_followed(world, tmp_path, layout):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.mkv").write_bytes(b"secret")
    base = Path(world.slow[0]) if layout == "union" else world.symlink_root
    (base / "Movies").mkdir(exist_ok=True)
    (base / "Movies/Escape").symlink_to(outside)
    (base / "Movies/file-link.mkv").symlink_to(outside / "secret.mkv")
    engine = world.engine(layout)
    with pytest.raises(Refused, match="symlink"):
        engine.cache("Movies/Escape/secret.mkv")
    with pytest.raises(Refused, match="not a regular file"):
        engine.cache("Movies/file-link.mkv")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.mkv"]
    assert (base / "Movies/file-link.mkv").is_symlink()
    assert not (Path(world.fast) / "Movies/Escape").exists()


def test_eviction_waits_while_a_player_reads_the_file(world):
    rel = "Movies/Playing/p.mkv"
    world.write_original("union", rel, b"playing")
    ledger = Ledger.open(world.state_dir)
    world.engine("union", ledger=ledger).cache(rel)
    engine = world.engine("union", ledger=ledger, session_check=lambda path: path == rel)
    with pytest.raises(InUse, match="p.mkv"):
        engine.evict(rel)
    assert (Path(world.fast) / rel).read_bytes() == b"playing"
    assert ledger.get(rel) is not None


@pytest.mark.parametrize("verify", ["size", "checksum"])
def test_sigterm_mid_copy_removes_the_partial_file_and_closes_the_action(world, verify):
    rel = f"Movies/Term/{verify}.mkv"
    data = os.urandom(512 * 1024)
    world.write_original("union", rel, data)
    Ledger.open(world.state_dir).close()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.integration.engine_helpers.run_action",
            world.to_json(),
            "union",
            "cache",
            rel,
            "16384",
            verify,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO),
            "CACHERR_TEST_KILL_AT": "copy-chunk:5",
            "CACHERR_TEST_KILL_SIGNAL": "TERM",
        },
    )
    assert done.returncode == 3, done.stderr
    assert "cancelled" in done.stderr
    _assert_untouched(world, rel, data)


def test_a_symlink_root_on_a_fuse_union_is_refused(box, tmp_path):
    rel = "Movies/F/f.mkv"
    box.write_file(rel, b"data")
    cache_dir = box.fast / "symlink-cache"
    cache_dir.mkdir()
    engine = Engine(
        Ledger.open(tmp_path / "state"),
        layout="symlink",
        original="backup",
        symlink=SymlinkLayout(dir=cache_dir, plex_dir="/plex"),
        roots=[box.view],
    )
    with pytest.raises(Refused, match="FUSE"):
        engine.cache(rel)
    assert not (box.slow[0] / rel).is_symlink()
    assert list(cache_dir.iterdir()) == []


def test_an_evict_while_the_pool_is_unmounted_is_refused_and_keeps_the_record(
    tmp_path, root_fs_dir
):
    require_fuse()
    with Sandbox(root_fs_dir / "mnt", disks=1) as box:
        world = World.of(box, tmp_path / "state")
        rel = "Movies/Gone/g.mkv"
        world.write_original("union", rel, b"data")
        ledger = Ledger.open(world.state_dir)
        world.engine("union", ledger=ledger).cache(rel)
        subprocess.run(["umount", "-l", world.fast], check=True)  # an empty folder on / now
        try:
            with pytest.raises(Refused, match="not a mounted file system"):
                world.engine("union", ledger=ledger).evict(rel)
            assert ledger.get(rel) is not None
        finally:
            subprocess.run(["mount", "-t", "tmpfs", "tmpfs", world.fast], check=True)
