"""SIGKILL at every journal step and inside copies, then recover: Plex always reads the
complete file, no working file is left, and the ledger agrees with the disks."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cacherr.state.ledger import FileIdentity, Ledger
from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse
from tests.integration.engine_helpers.world import World

REPO = Path(__file__).resolve().parents[2]
DATA = random.Random(7).randbytes(200 * 1024)
CHUNK_BYTES = 4096
IN_COPY_KILLS_PER_RUN = 40
SCENARIOS = [  # (layout, kind, verify)
    ("union", "cache", "size"),
    ("union", "cache", "checksum"),
    ("union", "evict", "size"),
    ("symlink", "cache", "size"),
    ("symlink", "cache", "checksum"),
    ("symlink", "evict", "size"),
]
IN_COPY = ("copy-chunk", "verify-chunk")


def _run(
    world: World, layout: str, kind: str, rel: str, verify: str, env_extra: dict[str, str]
) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.integration.engine_helpers.run_action",
            world.to_json(),
            layout,
            kind,
            rel,
            str(CHUNK_BYTES),
            verify,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _prepare(world: World, layout: str, kind: str, rel: str) -> None:
    world.write_original(layout, rel, DATA)
    if kind == "evict":
        ledger = Ledger.open(world.state_dir)
        world.engine(layout, ledger=ledger).cache(rel)
        ledger.close()


def _kill_points(world: World, layout: str, kind: str, verify: str, tmp: Path) -> list[str]:
    """Run the action once, traced; return every step point and a random sample of in-copy ones."""
    rel = f"Movies/trace {layout} {kind} {verify}/t.mkv"
    _prepare(world, layout, kind, rel)
    trace = tmp / f"trace-{layout}-{kind}-{verify}"
    done = _run(world, layout, kind, rel, verify, {"CACHERR_TEST_CHECKPOINTS": str(trace)})
    assert done.returncode == 0, done.stderr
    points = trace.read_text().split()
    steps = [p for p in points if p.rpartition(":")[0] not in IN_COPY]
    in_copy = [p for p in points if p.rpartition(":")[0] in IN_COPY]
    sample = random.Random(f"{layout}{kind}{verify}").sample(
        in_copy, min(IN_COPY_KILLS_PER_RUN, len(in_copy))
    )
    return steps + sorted(sample)


def _check(world: World, layout: str, rel: str) -> None:
    """What Plex reads is complete; nothing half-done is left; the ledger matches the disks."""
    assert world.plex_path(layout, rel).read_bytes() == DATA
    folders = [
        Path(world.fast) / rel,
        Path(world.slow[0]) / rel,
        world.symlink_dir / rel,
        world.symlink_root / rel,
    ]
    left = [
        p
        for f in folders
        if f.parent.exists()
        for p in f.parent.iterdir()
        if p.name.startswith(".") and ".cacherr-" in p.name
    ]
    ledger = Ledger.open(world.state_dir)
    try:
        entry = ledger.get(rel)
        running = ledger.conn.execute(
            "SELECT count(*) FROM journal_actions WHERE state = 'running'"
        ).fetchone()[0]
    finally:
        ledger.close()
    assert running == 0
    if layout == "union":
        fast, slow = Path(world.fast) / rel, Path(world.slow[0]) / rel
        assert left == []
        assert FileIdentity.of(slow).size_bytes == len(DATA)
        if entry is None:
            assert not fast.exists()
        else:
            assert FileIdentity.of(fast) == entry.fast and FileIdentity.of(slow) == entry.slow
        return
    original, copy = world.symlink_root / rel, world.symlink_dir / rel
    if entry is None:
        assert left == [] and not original.is_symlink() and not copy.exists()
    else:
        backup = original.with_name(entry.backup_name)
        assert left == [backup] and original.is_symlink()
        assert FileIdentity.of(copy) == entry.fast and FileIdentity.of(backup) == entry.slow


def _one_kill(world: World, layout: str, kind: str, verify: str, point: str, n: int) -> str:
    rel = f"Movies/K{n} ü '{kind}'/k {n}.mkv"
    state = Path(world.state_dir).with_name(f"state-{n}")
    here = World(world.fast, world.slow, world.view, str(state))
    _prepare(here, layout, kind, rel)
    done = _run(here, layout, kind, rel, verify, {"CACHERR_TEST_KILL_AT": point})
    assert done.returncode == -9, f"{point}: not killed ({done.returncode}) {done.stderr}"
    # Even before recovery, what Plex reads is complete (the temporary names are hidden).
    assert here.plex_path(layout, rel).read_bytes() == DATA, point
    ledger = Ledger.open(state)
    try:
        engine = here.engine(layout, ledger=ledger)
        first = engine.recover()
        assert engine.recover() == []  # idempotent: nothing left to decide
    finally:
        ledger.close()
    _check(here, layout, rel)
    return first[0].outcome if first else "nothing to recover"


def test_sigkill_at_every_step_and_inside_copies_always_recovers_to_complete_files(tmp_path):
    require_fuse()
    started = time.monotonic()
    with Sandbox(tmp_path / "mnt", disks=2, fast_size_bytes=1024 * 1024 * 1024) as box:
        world = World.of(box, tmp_path / "state")
        jobs = []
        for layout, kind, verify in SCENARIOS:
            for point in _kill_points(world, layout, kind, verify, tmp_path):
                jobs.append((layout, kind, verify, point, len(jobs)))
        with ThreadPoolExecutor(max_workers=2) as pool:
            outcomes = list(pool.map(lambda job: _one_kill(world, *job), jobs))
    elapsed = time.monotonic() - started
    print(
        f"{len(jobs)} kill points in {elapsed:.1f}s: "
        + ", ".join(f"{o}={outcomes.count(o)}" for o in sorted(set(outcomes)))
    )
    assert len(jobs) >= 200
    # Both directions of recovery happened: some actions finished, some rolled back.
    assert {"cached", "evicted", "rolled-back"} <= set(outcomes)
    for name in ("begun", "copied", "backed-up", "swapped", "restored", "removed"):
        assert any(job[3].startswith(name + ":") for job in jobs)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-s"]))


CRASHES_DURING_RECOVERY = [
    ("union", "cache", "copy-chunk:3"),
    ("union", "cache", "renamed:1"),
    ("union", "evict", "copy-unlinked:1"),
    ("symlink", "cache", "backup-linked:1"),
    ("symlink", "cache", "link-renamed:1"),
    ("symlink", "evict", "backup-renamed:1"),
]


def test_a_recovery_killed_after_changing_the_disks_is_finished_by_the_next_one(tmp_path):
    require_fuse()
    with Sandbox(tmp_path / "mnt", disks=2) as box:
        world = World.of(box, tmp_path / "state")
        for n, (layout, kind, point) in enumerate(CRASHES_DURING_RECOVERY):
            rel = f"Movies/R{n}/r.mkv"
            here = World(world.fast, world.slow, world.view, str(tmp_path / f"state-{n}"))
            _prepare(here, layout, kind, rel)
            killed = _run(here, layout, kind, rel, "size", {"CACHERR_TEST_KILL_AT": point})
            assert killed.returncode == -9, point
            again = _run(
                here, layout, "recover", rel, "size", {"CACHERR_TEST_KILL_AT": "recovery-decided:1"}
            )
            assert again.returncode == -9, f"{point}: recovery was not killed"
            ledger = Ledger.open(here.state_dir)
            try:
                [recovered] = here.engine(layout, ledger=ledger).recover()
            finally:
                ledger.close()
            assert recovered.state in ("done", "aborted")
            _check(here, layout, rel)
