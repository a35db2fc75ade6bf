"""Recovery decides from the disks, whatever the journal's last step says."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cacherr.engine import steps
from cacherr.engine.actions import Action
from cacherr.engine.copy import CopyOptions, durable_copy
from cacherr.engine.paths import backup_path, link_temp_path, temp_path
from cacherr.state.ledger import FileIdentity, Ledger
from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse
from tests.integration.engine_helpers.world import World

DATA = os.urandom(64 * 1024)


@pytest.fixture
def world(tmp_path):
    require_fuse()
    with Sandbox(tmp_path / "mnt", disks=2) as box:
        yield World.of(box, tmp_path / "state")


def _begin(world: World, layout: str, rel: str) -> tuple[Ledger, Action]:
    """Journal a cache action for `rel` as the engine would, and return it."""
    ledger, action, _ = _begin_with_id(world, layout, rel)
    return ledger, action


def _begin_with_id(world: World, layout: str, rel: str) -> tuple[Ledger, Action, int]:
    ledger = Ledger.open(world.state_dir)
    engine = world.engine(layout, ledger=ledger)
    action = engine._plan_cache(rel, tuple(rel.split("/")), None)
    return ledger, action, engine.journal.begin(action)


def test_a_placed_copy_of_a_source_that_changed_since_is_dropped_not_recorded(world):
    rel = "Movies/A/a.mkv"
    source = world.write_original("union", rel, DATA)
    ledger, action, action_id = _begin_with_id(world, "union", rel)
    (Path(world.fast) / "Movies/A").mkdir()
    # The engine's copy step: the journal learns the temporary file's inode first.
    steps.copy_file(world.engine("union", ledger=ledger).context, action_id,
                    source, action.fast_path, action.slow)  # fmt: skip
    source.write_bytes(b"a newer version")  # written after the crash, before recovery
    [recovered] = world.engine("union", ledger=ledger).recover()
    assert recovered.outcome == "rolled-back"
    assert not action.fast_path.exists() and ledger.get(rel) is None
    assert world.plex_path("union", rel).read_bytes() == b"a newer version"


def test_a_file_at_the_target_that_cacherr_did_not_write_is_left_alone(world):
    rel = "Movies/B/b.mkv"
    world.write_original("union", rel, DATA)
    ledger, action = _begin(world, "union", rel)
    (Path(world.fast) / "Movies/B").mkdir()
    action.fast_path.write_bytes(b"someone else's download")
    temp_path(action.fast_path).write_bytes(b"partial")
    [recovered] = world.engine("union", ledger=ledger).recover()
    assert recovered.state == "aborted"
    assert action.fast_path.read_bytes() == b"someone else's download"
    assert not temp_path(action.fast_path).exists()
    assert ledger.get(rel) is None


def test_a_missing_original_with_its_backup_present_is_put_back(world):
    rel = "Movies/C/c.mkv"
    original = world.write_original("symlink", rel, DATA)
    ledger, action = _begin(world, "symlink", rel)
    os.rename(original, backup_path(original))  # a state no order of ours leaves, but recoverable
    link_temp_path(original).symlink_to("/nowhere")
    [recovered] = world.engine("symlink", ledger=ledger).recover()
    assert recovered.outcome == "rolled-back"
    assert original.read_bytes() == DATA and not original.is_symlink()
    assert not backup_path(original).exists() and not link_temp_path(original).exists()


def test_a_symlink_swap_without_its_backup_is_reported_and_left_alone(world):
    rel = "Movies/D/d.mkv"
    original = world.write_original("symlink", rel, DATA)
    ledger, action = _begin(world, "symlink", rel)
    (world.symlink_dir / "Movies/D").mkdir(parents=True)
    durable_copy(original, action.fast_path, action.slow, CopyOptions())
    original.unlink()
    original.symlink_to(action.fast_path)
    [recovered] = world.engine("symlink", ledger=ledger).recover()
    assert recovered.outcome.startswith("inconsistent")
    assert original.is_symlink() and original.read_bytes() == DATA  # Plex still reads it


def test_an_interrupted_action_is_settled_before_a_new_action_on_that_file(world):
    rel = "Movies/E/e.mkv"
    world.write_original("union", rel, DATA)
    ledger, _ = _begin(world, "union", rel)
    engine = world.engine("union", ledger=ledger)
    assert engine.cache(rel).outcome == "cached"
    assert ledger.get(rel).fast.matches(FileIdentity.of(Path(world.fast) / rel))
    states = [row[0] for row in ledger.conn.execute("SELECT state FROM journal_actions")]
    assert states == ["aborted", "done"]


def test_recovery_prunes_finished_journal_entries_after_a_week_and_keeps_running_ones(world):
    rel = "Movies/P/p.mkv"
    world.write_original("union", rel, DATA)
    ledger = Ledger.open(world.state_dir)
    engine = world.engine("union", ledger=ledger)
    engine.cache(rel)
    engine.evict(rel)
    ledger.conn.execute("UPDATE journal_actions SET finished_at = finished_at - 8 * 86400")
    _, running = _begin(world, "union", rel)
    assert engine.journal.prune(0) == 0  # nothing finished before the epoch
    [recovered] = engine.recover()
    assert recovered.relative_path == rel
    rows = ledger.conn.execute("SELECT state FROM journal_actions").fetchall()
    assert [row["state"] for row in rows] == ["aborted"]  # the one just recovered
    # The pruned actions took their steps with them (ON DELETE CASCADE).
    assert ledger.conn.execute("SELECT count(*) FROM journal_steps").fetchone()[0] == 0
