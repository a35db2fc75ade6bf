"""Record one action row under strace, then recover from every crash state it can leave.

`record` prepares the files (and, to evict, caches them first; to explore a recovery,
kills the action at a checkpoint first), traces the action with record.py, and replays
the trace on the model (which must end where the real run ended). `explore` then writes
out each crash state, gives it the journal of its moment, runs recovery twice, and checks
what SPEC §4 promises: what Plex reads is complete, no working file is left, the ledger
agrees with the disks, nothing is left undecided, and a second recovery has nothing to do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cacherr.state.ledger import Ledger
from tests.integration.engine_helpers import rows
from tests.integration.engine_helpers.world import World
from tests.integration.powercut import model, patch, trace

REPO = Path(__file__).resolve().parents[3]
DATA = bytes(range(256)) * 80  # 20 KiB: three copy chunks
SIDECAR = b"1\n00:00:01,000 --> 00:00:02,000\nhello\n" * 20
CHUNK_BYTES = 8192


@dataclass(frozen=True)
class Row:
    spec: str  # "union/backup", "union/shadow/subtitles"
    kind: str  # cache | evict | adopt | recover
    killed: str = ""  # recover: "KIND@CHECKPOINT:N", the action killed before recovery runs
    verify: str = "size"  # checksum: the copy writes through user space and re-reads

    @property
    def name(self) -> str:
        return (f"{self.spec} {self.kind}" + (f" (after {self.killed})" if self.killed else "")
                + (f" [verify: {self.verify}]" if self.verify != "size" else ""))  # fmt: skip


@dataclass
class Recording:
    row: Row
    files: dict[str, bytes]
    watched: list[str]
    initial: model.Tree
    run: model.Replay
    recorded: patch.Recorded
    snapshots: Path
    first_cut: int = 1  # cuts before it belong to a killed action (its own row explores them)


@dataclass
class Explored:
    states: int = 0
    cuts: int = 0
    outcomes: Counter = field(default_factory=Counter)


def _run(world: World, args: list[str], env: dict[str, str] | None = None, strace: str | None = None,
         out: Path | None = None) -> subprocess.CompletedProcess:
    prefix = [strace, *trace.STRACE_ARGS, "-o", str(out)] if strace else []
    return subprocess.run(
        [*prefix, sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(REPO)},
    )  # fmt: skip


def watched_folders(world: World, spec: str, folder: str) -> list[str]:
    if rows.parse(spec)[0] == "union":
        return [str(Path(b) / folder) for b in (world.fast, *world.slow)]
    return [str(world.symlink_dir / folder), str(world.symlink_root / folder)]


def record(world: World, row: Row, folder: str, tmp: Path, strace: str) -> Recording:
    """Prepare the row's files, trace the action, and replay the trace on the model."""
    video = f"{folder}/v.mkv"
    files = {video: DATA}
    layout = rows.parse(row.spec)[0]
    for base in (world.symlink_dir, world.symlink_root):
        (base / "Movies").mkdir(parents=True, exist_ok=True)
        (base / "Movies" / "keep").touch()  # the share's folder never empties: not watched
    if row.kind == "adopt":
        # A download the pool holds, with its slow copy and a subtitle only on the slow
        # side: adopting it caches the subtitle. The explorer checks the subtitle.
        files = {f"{folder}/v.en.srt": SIDECAR}
        rows.write_on_fast(world, video, DATA)
        rows.write_original(world, row.spec, video, DATA)
        os.utime(Path(world.slow[0]) / video, ns=(rows.STAMP_NS, rows.STAMP_NS))
        rows.write_original(world, row.spec, f"{folder}/v.en.srt", SIDECAR)
    else:
        rows.write_original(world, row.spec, video, DATA)
        if rows.parse(row.spec)[2] != "none":  # a subtitle travels with the video
            files[f"{folder}/v.en.srt"] = SIDECAR
            rows.write_original(world, row.spec, f"{folder}/v.en.srt", SIDECAR)
    action = row.killed.partition("@")[0] if row.killed else row.kind
    if action == "evict":
        ledger = Ledger.open(world.state_dir)
        rows.engine(world, row.spec, ledger=ledger, verify=row.verify).cache(video)
        ledger.close()
    watched = watched_folders(world, row.spec, folder)
    snapshots = tmp / "snapshots"
    snapshots.mkdir()
    initial = model.scan(watched)
    ops: list[trace.Op] = []
    first_cut = 1
    if row.killed:
        # The killed action is traced too: what it had not fsynced may still be lost by a
        # power cut during the recovery explored.
        ops = _traced(world, row, action, video, watched, snapshots, tmp / "killed.txt",
                      strace, env={"CACHERR_TEST_KILL_AT": row.killed.partition("@")[2]})
        first_cut = len(ops) + 1
    ops += _traced(world, row, row.kind, video, watched, snapshots, tmp / "strace.txt", strace,
                   first=sum(op.kind == "snapshot" for op in ops))  # fmt: skip
    run = model.replay(initial, ops)
    assert _content(run.before[-1]) == _content(model.scan(watched)), (
        f"{row.name}: the model does not end as the run did")  # fmt: skip
    assert layout in ("union", "symlink")
    return Recording(row, files, watched, initial, run, patch.Recorded.learn(run, snapshots),
                     snapshots, first_cut)  # fmt: skip


def _traced(world: World, row: Row, kind: str, video: str, watched: list[str], snapshots: Path,
            out: Path, strace: str, *, env: dict[str, str] | None = None,
            first: int = 0) -> list[trace.Op]:
    """Run record.py under strace; return its ops (killed: the ops up to the kill)."""
    spec = {"world": json.loads(world.to_json()), "row": row.spec, "kind": kind,
            "path": video, "watched": watched, "snapshots": str(snapshots),
            "chunk": CHUNK_BYTES, "first_snapshot": first, "verify": row.verify}  # fmt: skip
    done = _run(world, ["-m", "tests.integration.powercut.record", json.dumps(spec)],
                env=env, strace=strace, out=out)  # fmt: skip
    assert done.returncode == (-9 if env else 0), (row, kind, done.stderr)
    return trace.parse(out.read_text().splitlines(), watched, str(snapshots))


def _content(tree: model.Tree) -> dict[str, tuple]:
    return {path: (tree.inodes[i].kind, tree.inodes[i].data, tree.inodes[i].target)
            for path, i in tree.names.items()}  # fmt: skip


def all_states(recording: Recording) -> list[tuple[int, model.CrashState]]:
    """Every distinct crash state of the recording, with the snapshot it goes with."""
    seen, states = set(), []
    for cut in range(recording.first_cut, len(recording.run.ops) + 1):
        snapshot = recording.recorded.snapshot_for(cut)
        for state in model.crash_states(recording.initial, recording.run, cut):
            key = state.key(snapshot)
            if key not in seen:
                seen.add(key)
                states.append((snapshot, state))
    return states


def plex_reader(world: World, spec: str):
    """What Plex reads: the first branch that holds the path (the merged view's `ff`
    search, computed here: a FUSE view caches names for a second, and the explorer
    rewrites the same names thousands of times), or the original path (symlink)."""
    if rows.parse(spec)[0] == "symlink":
        return lambda rel: (world.symlink_root / rel).read_bytes()

    def read(rel: str) -> bytes:
        for branch in (world.fast, *world.slow):
            if os.path.lexists(Path(branch) / rel):
                return (Path(branch) / rel).read_bytes()
        raise FileNotFoundError(rel)

    return read


def check_state(world: World, recording: Recording, snapshot: int, state: model.CrashState,
                state_dir: Path) -> str:
    """Write out one crash state, recover, check; return the first recovery's outcome."""
    stats = model.write_out(state.tree, recording.watched)
    patch.install(recording.snapshots / f"{snapshot:04d}.db", state_dir, recording.recorded,
                  state.tree, stats)  # fmt: skip
    here = World(world.fast, world.slow, world.view, str(state_dir))
    spec = recording.row.spec
    ledger = Ledger.open(state_dir)
    try:
        engine = rows.engine(here, spec, ledger=ledger, verify=recording.row.verify)
        first = engine.recover()
        assert engine.recover() == [], "a second recovery had something left to do"
    finally:
        ledger.close()
    outcome = ", ".join(sorted(r.outcome for r in first)) or "nothing to recover"
    assert not any(r.outcome.startswith(("inconsistent", "waiting", "left alone"))
                   for r in first), outcome  # fmt: skip
    rows.check_consistent(here, spec, recording.files, read_plex=plex_reader(here, spec))
    return outcome


def explore(world: World, recording: Recording, states: list, state_dir: Path) -> Explored:
    explored = Explored(states=len(states), cuts=len(recording.run.ops))
    for snapshot, state in states:
        try:
            outcome = check_state(world, recording, snapshot, state, state_dir)
        except (AssertionError, OSError) as failure:
            ops = [f"{i}:{recording.run.ops[i].kind} {recording.run.ops[i].path}"
                   for i in range(state.cut)
                   if i not in state.kept and recording.run.chain[i]]  # fmt: skip
            raise AssertionError(
                f"{recording.row.name}: crash after op {state.cut} (snapshot {snapshot}), "
                f"lost {ops}: {failure}"
            ) from failure
        explored.outcomes[outcome] += 1
    return explored
