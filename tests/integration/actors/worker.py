"""The engine, in its own process and mount namespace, driven over stdin/stdout.

`worker.py WORLD_JSON` reads one JSON command a line: {"op": cache|evict|adopt|recover,
"path": ..., "layout": union|symlink, "original": shadow|backup|move, "pause":
[CHECKPOINT, N] or null} (the symlink layout's roots: the folder `media` of each disk).
A cache, evict or adopt goes through the cycle's own `execute` (the mover list, the
name rule, every failure counted); with "pause", the engine stops at the Nth
CHECKPOINT, prints {"paused": CHECKPOINT} and waits for a line on stdin (an actor acts
meanwhile). Every command ends with {"done": ...}: the outcome, the failure or skip
reason, or what the recovery decided. Started inside `unshare --mount`, so the pool can
be unmounted for the engine alone while the rest of the box keeps it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cacherr.cycle.execute import Report, execute
from cacherr.cycle.moverlist import MoverList
from cacherr.engine.checkpoints import Checkpoints
from cacherr.planner import PlannedAction
from cacherr.state.ledger import Ledger
from tests.integration.actors.actors import SYMLINK_ROOT
from tests.integration.engine_helpers import rows
from tests.integration.engine_helpers.world import World


class Pausing(Checkpoints):
    """Stop at one checkpoint and wait for the test to say go."""

    def __init__(self, pause: list | None):
        super().__init__()
        self.pause = tuple(pause) if pause else None

    def reached(self, name: str) -> None:
        super().reached(name)
        if self.pause == (name, self.counts[name]):
            print(json.dumps({"paused": name}), flush=True)
            sys.stdin.readline()


def main(argv: list[str]) -> int:
    world = World.from_json(argv[1])
    ledger = Ledger.open(world.state_dir)
    roots = [Path(slow) / SYMLINK_ROOT for slow in world.slow]
    mover_list = MoverList(Path(world.state_dir) / "mover.txt", Path(world.fast))
    mover_list.rewrite(str(e.fast_path) for e in ledger.files(sidecars=True))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        spec = f"{command.get('layout', 'union')}/{command.get('original', 'shadow')}/subtitles"
        engine = rows.engine(world, spec, ledger=ledger, roots=roots,
                             checkpoints=Pausing(command.get("pause")),
                             chunk_size_bytes=16 * 1024)  # fmt: skip
        if command["op"] == "recover":
            done = [f"{r.relative_path}: {r.state} {r.outcome}" for r in engine.recover()]
            if not ledger.conn.execute(
                "SELECT count(*) FROM journal_actions WHERE state = 'running'"
            ).fetchone()[0]:
                mover_list.rewrite(str(e.fast_path) for e in ledger.files(sidecars=True))
        else:
            report = Report()
            action = PlannedAction(command["op"], command["path"], 0, 50)
            execute([action], engine, {}, report, mover_list=mover_list)
            done = (
                [f"failed: {r}" for _, r, _ in report.failures]
                + [f"skipped: {r}" for r in report.skipped]
                + [f"cached {report.cached_files}, adopted {report.adopted_files}, "
                   f"evicted {report.evicted_files}, untracked {len(report.untracked)}"]
            )  # fmt: skip
        print(json.dumps({"done": done}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
