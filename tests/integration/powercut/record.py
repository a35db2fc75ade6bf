"""Run one engine action (or a recovery) to be traced: `record.py SPEC_JSON`.

SPEC_JSON holds the world, the row spec ("union/backup"), the kind (cache | evict |
adopt | recover), the verification (size | checksum), the relative path, the folders to
watch, the snapshot folder and the number of its first snapshot (CACHERR_TEST_KILL_AT
still kills the action). At the start and each time the journal changed when a
checkpoint is reached, the state database is copied to `SNAP/NNNN.db` (its creation
marks the moment in the trace) with, in `SNAP/NNNN.json`, the inode number of every path
in the watched folders: what the explorer needs to give each crash state the journal and
ledger of its moment.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
from dataclasses import replace
from pathlib import Path

from cacherr.engine.checkpoints import Checkpoints
from cacherr.state.ledger import Ledger
from tests.integration.engine_helpers import rows
from tests.integration.engine_helpers.world import World


def inode_numbers(folders: list[str]) -> dict[str, int]:
    """path → inode number of everything in the folders (lstat, never following)."""
    found: dict[str, int] = {}
    for top in folders:
        if not os.path.lexists(top):
            continue
        found[top] = os.lstat(top).st_ino
        for folder, subfolders, files in os.walk(top):
            for name in subfolders + files:
                path = os.path.join(folder, name)
                found[path] = os.lstat(path).st_ino
    return found


class SnapshotCheckpoints(Checkpoints):
    """Checkpoints that copy the state database whenever the journal changed."""

    def __init__(self, conn: sqlite3.Connection, folder: Path, watched: list[str], first: int):
        # CACHERR_TEST_KILL_AT still kills: a recovery is explored after a killed action.
        super().__init__(os.environ.get("CACHERR_TEST_KILL_AT"))
        self.conn, self.folder, self.watched = conn, folder, watched
        self.taken = first
        self.owner = threading.current_thread()
        self.changes = -1

    def snapshot(self) -> None:
        target = self.folder / f"{self.taken:04d}"
        copy = sqlite3.connect(f"{target}.db")
        self.conn.backup(copy)
        copy.close()
        Path(f"{target}.json").write_text(json.dumps(inode_numbers(self.watched)))
        self.taken += 1
        self.changes = self.conn.total_changes

    def reached(self, name: str) -> None:
        # The journal changes in the thread that owns the connection; a checkpoint of
        # another thread (verify: checksum's re-read) only counts.
        if threading.current_thread() is self.owner and self.conn.total_changes != self.changes:
            self.snapshot()
        super().reached(name)


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    world = World.from_json(json.dumps(spec["world"]))
    ledger = Ledger.open(world.state_dir)
    checkpoints = SnapshotCheckpoints(
        ledger.conn, Path(spec["snapshots"]), spec["watched"], spec.get("first_snapshot", 0)
    )
    chunk = spec.get("chunk", 8 * 1024 * 1024)
    engine = rows.engine(world, spec["row"], ledger=ledger, checkpoints=checkpoints,
                         chunk_size_bytes=chunk,
                         verify=spec.get("verify", "size"))  # fmt: skip
    # verify: checksum re-reads each segment as soon as it is written, after its thread
    # fdatasyncs it: one chunk a segment, so the sync runs while the copy writes on.
    options = replace(engine.context.copy_options, verify_segment_bytes=chunk)
    engine.context = replace(engine.context, copy_options=options)
    checkpoints.snapshot()  # the state before anything happens
    if spec["kind"] == "recover":
        engine.recover()
    else:
        getattr(engine, spec["kind"])(spec["path"])
    checkpoints.snapshot()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
