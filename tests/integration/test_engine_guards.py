"""Guards and pacing: the Unraid mover and parity checks hold new transfers, the share's
pools are respected, one transfer per slow disk at idle I/O priority, owners kept or the
file skipped, and the merged view asked which copy it serves."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from cacherr.config.model import HostConfig, UnionLayout
from cacherr.engine import Engine, Refused
from cacherr.engine.errors import Held
from cacherr.engine.guards import IOPRIO_CLASS_IDLE, IOPRIO_CLASS_SHIFT, BranchLocks, io_priority
from cacherr.state.ledger import Ledger
from cacherr.testing.sandbox import MERGERFS_OPTIONS, Sandbox
from tests.helpers import require_fuse, require_tool
from tests.integration.engine_helpers import rows
from tests.integration.engine_helpers.world import World

REPO = Path(__file__).resolve().parents[2]
DATA = os.urandom(256 * 1024)
NOBODY = 65534


@pytest.fixture
def world(tmp_path):
    require_fuse()
    with Sandbox(tmp_path / "mnt", disks=2) as box:
        yield World.of(box, tmp_path / "state")


@pytest.fixture
def host(tmp_path) -> HostConfig:
    """Unraid's system files, in a sandbox: /var/run, /var/local/emhttp, /boot/config."""
    run, emhttp, boot = tmp_path / "run", tmp_path / "emhttp", tmp_path / "boot"
    for folder in (run, emhttp, boot / "shares"):
        folder.mkdir(parents=True)
    return HostConfig(mover_pid_file=run / "mover.pid", emhttp_dir=emhttp, boot_config_dir=boot)


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_live_mover_pid_holds_new_transfers_and_a_stale_or_missing_one_does_not(world, host):
    rel = "Movies/Mover/m.mkv"
    world.write_original("union", rel, DATA)
    engine = rows.engine(world, "union/shadow", host=host)
    host.mover_pid_file.write_text(f"{os.getpid()}\n")  # a live process
    with pytest.raises(Held, match="the Unraid mover is running") as held:
        engine.cache(rel)
    assert held.value.reason == "mover_running"
    assert not (Path(world.fast) / rel).exists() and engine.ledger.files() == []
    host.mover_pid_file.write_text(str(_dead_pid()))
    assert engine.cache(rel).outcome == "cached"
    host.mover_pid_file.write_text(str(os.getpid()))
    with pytest.raises(Held):
        engine.evict(rel)
    assert (Path(world.fast) / rel).exists()
    host.mover_pid_file.unlink()
    assert engine.evict(rel).outcome == "evicted"


def test_a_running_parity_check_holds_new_transfers(world, host):
    rel = "Movies/Parity/p.mkv"
    world.write_original("union", rel, DATA)
    engine = rows.engine(world, "union/move", host=host)
    (host.emhttp_dir / "var.ini").write_text('mdState="STARTED"\nmdResyncPos="123456"\n')
    with pytest.raises(Held, match="parity check") as held:
        engine.cache(rel)
    assert held.value.reason == "parity_check"
    assert (Path(world.slow[0]) / rel).read_bytes() == DATA
    (host.emhttp_dir / "var.ini").write_text('mdState="STARTED"\nmdResyncPos="0"\n')
    assert engine.cache(rel).outcome == "cached"


def test_guards_whose_files_are_not_visible_are_unknown_and_do_not_hold(world, tmp_path):
    rel = "Movies/Docker/d.mkv"
    world.write_original("union", rel, DATA)
    nowhere = tmp_path / "not-mounted-in-this-container"
    host = HostConfig(nowhere / "run/mover.pid", nowhere / "emhttp", nowhere / "boot")
    assert rows.engine(world, "union/shadow", host=host).cache(rel).outcome == "cached"


def test_the_transfer_in_progress_finishes_when_the_mover_starts(world, host):
    first, second = "Movies/First/f.mkv", "Movies/Second/s.mkv"
    world.write_original("union", first, DATA)
    world.write_original("union", second, DATA)

    def mover_starts(done: int, total: int) -> None:
        host.mover_pid_file.write_text(str(os.getpid()))

    engine = rows.engine(
        world, "union/backup", host=host, progress=mover_starts, chunk_size_bytes=64 * 1024
    )
    assert engine.cache(first).outcome == "cached"  # started before the mover: finished
    assert host.mover_pid_file.exists()
    rows.check_consistent(world, "union/backup", {first: DATA})
    with pytest.raises(Held):
        engine.cache(second)


def test_a_pool_the_share_does_not_use_is_refused(world, host):
    rel = "Movies/Pool/p.mkv"
    world.write_original("union", rel, DATA)
    rows.write_on_fast(world, "Movies/Fresh/f.mkv", DATA)
    config = host.boot_config_dir / "shares/Movies.cfg"
    engine = rows.engine(world, "union/shadow", host=host)
    for settings in ('shareUseCache="yes"\nshareCachePool="nvme"\n',
                     'shareUseCache="no"\nshareCachePool="cache"\n'):  # fmt: skip
        config.write_text(settings)
        with pytest.raises(Refused, match="does not use the pool 'cache'"):
            engine.cache(rel)
        with pytest.raises(Refused, match="does not use the pool"):
            engine.adopt("Movies/Fresh/f.mkv")
    assert not (Path(world.fast) / rel).exists() and engine.ledger.files() == []
    config.write_text('shareUseCache="yes"\nshareCachePool="nvme"\nshareCachePool2="cache"\n')
    assert engine.cache(rel).outcome == "cached"


def test_a_merged_view_that_serves_another_copy_is_reported(tmp_path):
    mergerfs = require_fuse()
    with Sandbox(tmp_path / "mnt", disks=1, mergerfs=False) as box:
        view = box.root / "slow-first"
        view.mkdir()
        branches = f"{box.slow[0]}:{box.fast}"  # the array first: it serves the slow copy
        subprocess.run([mergerfs, "-o", MERGERFS_OPTIONS, branches, str(view)], check=True)
        try:
            rel = "Movies/View/v.mkv"
            box.write_file(rel, DATA)
            union = UnionLayout(view=view, fast=box.fast, slow=(box.slow[0],))
            engine = Engine(Ledger.open(tmp_path / "state"), layout="union", original="shadow",
                            union=union)  # fmt: skip
            result = engine.cache(rel)
            assert result.outcome == "cached" and result.view_serves_fast is False
            assert "the merged view serves another copy" in result.detail
        finally:
            subprocess.run(["umount", str(view)], check=True)


def test_one_transfer_per_slow_disk_at_a_time_and_other_disks_run_alongside(world):
    same_a, same_b, other = "Movies/A/a.mkv", "Movies/B/b.mkv", "Movies/C/c.mkv"
    world.write_original("union", same_a, DATA)
    world.write_original("union", same_b, DATA)
    (Path(world.slow[1]) / "Movies/C").mkdir(parents=True)
    (Path(world.slow[1]) / other).write_bytes(DATA)
    waited = threading.Event()
    locks = BranchLocks(on_wait=lambda branch: waited.set())
    chunks: list[str] = []
    results: dict[str, str] = {}

    def run(rel: str, **hooks) -> None:
        engine = rows.engine(world, "union/shadow", branch_locks=locks,
                             chunk_size_bytes=64 * 1024, **hooks)  # fmt: skip
        results[rel] = engine.cache(rel).outcome
        engine.ledger.close()

    def first_copy(size: int) -> None:
        chunks.append(same_a)
        if len(chunks) == 1:
            # Mid-copy on disk1: a copy from disk2 runs to the end alongside ...
            alongside = threading.Thread(target=run, args=(other,))
            alongside.start()
            alongside.join(timeout=30)
            assert results.get(other) == "cached" and not waited.is_set()
            # ... and one from disk1 waits for this one.
            blocked = threading.Thread(target=run, args=(same_b,),
                                       kwargs={"throttle": lambda n: chunks.append(same_b)})  # fmt: skip
            blocked.start()
            threads.append(blocked)
            assert waited.wait(timeout=30)

    threads: list[threading.Thread] = []
    run(same_a, throttle=first_copy)
    for thread in threads:
        thread.join(timeout=30)
    assert results == {same_a: "cached", other: "cached", same_b: "cached"}
    assert chunks == [same_a] * 4 + [same_b] * 4  # never interleaved


def test_copies_run_at_idle_io_priority_and_the_thread_gets_its_own_back(world):
    rel = "Movies/Idle/i.mkv"
    world.write_original("union", rel, DATA)
    before = io_priority()
    if before is None:
        pytest.fail("ioprio_get is not available on this machine")
    seen: list[int | None] = []
    engine = rows.engine(world, "union/shadow", progress=lambda done, total: seen.append(io_priority()))
    engine.cache(rel)
    assert seen and set(seen) == {IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT}
    assert io_priority() == before


OWNER_SCRIPT = """
import sys
from pathlib import Path
from cacherr.config.model import UnionLayout
from cacherr.engine import Engine, EngineError
from cacherr.state.ledger import Ledger
root = Path(sys.argv[1])
union = UnionLayout(view=None, fast=root / "cache", slow=(root / "disk1",))
engine = Engine(Ledger.open(root / "state"), layout="union", original="shadow", union=union)
try:
    print(engine.cache(sys.argv[2]).outcome)
except EngineError as error:
    print(type(error).__name__, error)
"""


def test_without_root_a_file_whose_owner_cannot_be_kept_is_skipped_and_reported():
    require_fuse()
    setpriv = require_tool("setpriv")
    top = Path(tempfile.mkdtemp(dir="/tmp", prefix="cacherr-owner-"))  # others may enter
    os.chmod(top, 0o755)
    try:
        with Sandbox(top / "mnt", disks=1, mergerfs=False) as box:
            os.chown(box.fast / "Movies", NOBODY, NOBODY)
            (box.root / "state").mkdir()
            os.chown(box.root / "state", NOBODY, NOBODY)
            cases = {
                "Movies/Root/root.mkv": (0, 0, NOBODY),  # file owner, folder owner
                "Movies/Folder/nobody.mkv": (NOBODY, 0, NOBODY),
                "Movies/Mine/mine.mkv": (NOBODY, NOBODY, NOBODY),
            }
            outcomes = {}
            for rel, (file_uid, folder_uid, _) in cases.items():
                path = box.write_file(rel, DATA, uid=file_uid, gid=file_uid)
                os.chown(path.parent, folder_uid, folder_uid)
                os.chmod(path.parent, 0o755)
                done = subprocess.run(
                    [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                     sys.executable, "-c", OWNER_SCRIPT, str(box.root), rel],
                    cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                    capture_output=True, text=True, timeout=60, check=True,
                )  # fmt: skip
                outcomes[rel] = done.stdout.strip()
            assert outcomes["Movies/Root/root.mkv"].startswith("Refused")
            assert "owner cannot be kept" in outcomes["Movies/Root/root.mkv"]
            assert outcomes["Movies/Folder/nobody.mkv"].startswith("Refused")
            assert "Movies/Folder" in outcomes["Movies/Folder/nobody.mkv"]
            assert not (box.fast / "Movies/Root").exists()
            assert not (box.fast / "Movies/Folder").exists()
            assert outcomes["Movies/Mine/mine.mkv"] == "cached"
            made = os.stat(box.fast / "Movies/Mine")
            assert (made.st_uid, made.st_gid, stat.S_IMODE(made.st_mode)) == (
                NOBODY, NOBODY, 0o755)  # fmt: skip
    finally:
        shutil.rmtree(top, ignore_errors=True)
