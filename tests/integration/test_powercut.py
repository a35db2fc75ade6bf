"""The power-cut explorer: for each action row (cache, evict, adopt, and recoveries of
actions killed midway), every state a power cut can leave after any prefix of its
file-system operations, with any part of what was not yet fsynced lost, recovers to
complete files, no working file, and a ledger that agrees with the disks. The move rows
of both layouts (they copy both ways) and recoveries of a cache killed during its copy
are also run with `verify: checksum`, whose copy writes through user space while another
thread fdatasyncs and re-reads what was written.

All states are explored when their measured cost fits CACHERR_POWERCUT_SECONDS (180 s
by default); otherwise a seeded sample of at least 2,000 (the seed is printed).
"""

from __future__ import annotations

import os
import random
import time

from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse, require_tool
from tests.integration.engine_helpers.world import World
from tests.integration.powercut import explore, model

ROWS = [
    explore.Row("union/shadow", "cache"),
    explore.Row("union/shadow", "evict"),
    explore.Row("union/backup", "cache"),
    explore.Row("union/backup", "evict"),
    explore.Row("union/move", "cache"),
    explore.Row("union/move", "evict"),
    explore.Row("symlink/backup", "cache"),
    explore.Row("symlink/backup", "evict"),
    explore.Row("symlink/move", "cache"),
    explore.Row("symlink/move", "evict"),
    explore.Row("union/move/subtitles", "cache"),
    explore.Row("union/backup/subtitles", "evict"),
    explore.Row("symlink/move/subtitles", "evict"),
    explore.Row("union/shadow/subtitles", "adopt"),
    explore.Row("union/backup", "recover", killed="cache@original-renamed:1"),
    explore.Row("union/backup", "recover", killed="evict@backup-renamed:1"),
    explore.Row("union/move", "recover", killed="cache@copied:1"),
    explore.Row("union/move", "recover", killed="cache@original-unlinked:1"),
    explore.Row("union/move", "recover", killed="evict@renamed:1"),
    explore.Row("symlink/backup", "recover", killed="cache@link-exchanged:1"),
    explore.Row("symlink/backup", "recover", killed="evict@backup-exchanged:1"),
    explore.Row("symlink/move", "recover", killed="cache@link-exchanged:1"),
    explore.Row("symlink/move", "recover", killed="evict@backup-exchanged:1"),
    # verify: checksum copies through user space (write) while a thread fdatasyncs and
    # re-reads what was written: a cache and an evict that copy, in each layout, and a
    # recovery of a cache killed in the middle of its copy, or between its syncs.
    explore.Row("union/move", "cache", verify="checksum"),
    explore.Row("union/move", "evict", verify="checksum"),
    explore.Row("symlink/move", "cache", verify="checksum"),
    explore.Row("symlink/move", "evict", verify="checksum"),
    explore.Row("union/move", "recover", killed="cache@copy-chunk:2", verify="checksum"),
    explore.Row("symlink/move", "recover", killed="cache@temp-synced:1", verify="checksum"),
]
BUDGET_SECONDS = float(os.environ.get("CACHERR_POWERCUT_SECONDS", "180"))
MINIMUM_SAMPLE = 2000


def _record_all(box, tmp_path, rows):
    strace = require_tool("strace")
    recorded = []
    for n, row in enumerate(rows):
        world = World.of(box, tmp_path / f"state-{n}")
        here = tmp_path / f"row-{n}"
        here.mkdir()
        recording = explore.record(world, row, f"Movies/PC{n}", here, strace)
        recorded.append((world, recording, explore.all_states(recording)))
    return recorded


def test_every_power_cut_of_every_row_recovers_to_complete_files(tmp_path):
    require_fuse()
    seed = int(os.environ.get("CACHERR_POWERCUT_SEED", random.randrange(1 << 30)))
    print(f"power-cut explorer seed: {seed} (set CACHERR_POWERCUT_SEED to repeat)")
    started = time.monotonic()
    with Sandbox(tmp_path / "mnt", disks=2) as box:
        recorded = _record_all(box, tmp_path, ROWS)
        total = sum(len(states) for _, _, states in recorded)
        print(f"recorded {len(ROWS)} rows in {time.monotonic() - started:.1f}s: "
              f"{total} distinct crash states")  # fmt: skip
        results, spent, done = [], 0.0, 0
        for index, (world, recording, states) in enumerate(recorded):
            chosen = states
            if done and spent / done * total > BUDGET_SECONDS:  # all of them would not fit
                share = max(MINIMUM_SAMPLE, int(BUDGET_SECONDS / (spent / done)))
                chosen = model.sample(states, -(-len(states) * share // total), seed + index)
            begun = time.monotonic()
            result = explore.explore(world, recording, chosen, tmp_path / f"recover-{index}")
            spent += time.monotonic() - begun
            done += len(chosen)
            results.append((recording.row, len(states), result))
    explored = sum(r.states for _, _, r in results)
    print(f"explored {explored} of {total} crash states in {time.monotonic() - started:.1f}s")
    for row, possible, result in results:
        outcomes = ", ".join(f"{o} ×{c}" for o, c in sorted(result.outcomes.items()))
        print(f"  {row.name}: {result.states}/{possible} states, {result.cuts} ops: {outcomes}")
    assert explored >= min(total, MINIMUM_SAMPLE)
    for row, _possible, result in results:
        done_outcome = {"cache": "cached", "evict": "evicted", "adopt": "cached"}.get(row.kind)
        if done_outcome:  # cut both before the point of no return and after it
            assert any(done_outcome in o for o in result.outcomes), (row.name, result.outcomes)
            assert any("rolled-back" in o for o in result.outcomes), (row.name, result.outcomes)


def test_a_recovery_that_renamed_the_backup_back_survives_a_power_cut_before_the_copy_goes(
    tmp_path,
):
    """Issue 11, point 4: recovery fsyncs the folder of what it (or the action) renamed
    before it unlinks the copy on the other device, and before it settles the action."""
    require_fuse()
    with Sandbox(tmp_path / "mnt", disks=2) as box:
        [(world, recording, states)] = _record_all(
            box, tmp_path, [explore.Row("union/backup", "recover", killed="evict@backup-renamed:1")]
        )
        result = explore.explore(world, recording, states, tmp_path / "recover")
    assert result.states == len(states) >= 4
    assert "evicted" in result.outcomes
