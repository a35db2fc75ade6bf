"""SIGKILL at every step and inside copies of every row and policy built in part 2
(union/backup, union/move, symlink/move, sidecars, adopt, hardlinks), then recover:
Plex always reads complete files, no working file is left, the ledger agrees with the
disks, and the mover exclusion file lists everything on the fast side at every instant
(with the user's own lines kept around cacherr's block)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cacherr.cycle.moverlist import BEGIN, END, MoverList, block_lines, covered
from cacherr.engine.paths import temp_path
from cacherr.state.ledger import Ledger
from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse
from tests.integration.engine_helpers import rows
from tests.integration.engine_helpers.world import World

REPO = Path(__file__).resolve().parents[2]
DATA = random.Random(11).randbytes(160 * 1024)
CHUNK_BYTES = 4096
IN_COPY_KILLS_PER_SCENARIO = 10
IN_COPY = ("copy-chunk", "verify-chunk")
USER_BEFORE = ["/mnt/cache/Downloads/keep-me.mkv", "# my own entries"]
USER_AFTER = ["/mnt/cache/Music"]


@dataclass(frozen=True)
class Scenario:
    spec: str
    kind: str  # cache | evict (what is killed)
    verify: str = "size"
    adopted: bool = False  # evict: the file was adopted from the pool, not cached
    hardlinked: bool = False
    steps: tuple[str, ...] = field(default_factory=tuple)  # journal steps that must be killed at

    def files(self, folder: str) -> dict[str, bytes]:
        """The files the action is about: the video, its sidecars, their neighbours."""
        video = f"{folder}/k.mkv"
        files = {video: DATA}
        policy = rows.parse(self.spec)[2]
        if policy in ("subtitles", "all"):
            files[f"{folder}/k.en.srt"] = random.Random(1).randbytes(11_000)
            files[f"{folder}/k.en.forced.srt"] = random.Random(2).randbytes(7_000)
        if policy == "all":
            files[f"{folder}/poster.jpg"] = random.Random(3).randbytes(9_000)
            files[f"{folder}/other.mkv"] = random.Random(4).randbytes(20_000)
        return files


SCENARIOS = [
    Scenario("union/backup", "cache", steps=("copied", "backed-up")),
    Scenario("union/backup", "evict", steps=("checked", "restored", "removed")),
    Scenario("union/move", "cache", steps=("copied", "original-removed")),
    Scenario("union/move", "cache", "checksum", steps=("copied", "original-removed")),
    Scenario("union/move", "evict", steps=("checked", "folders-made", "copied", "removed")),
    Scenario("symlink/move", "cache", steps=("copied", "swapped")),
    Scenario("symlink/move", "evict", steps=("checked", "copied", "restored", "removed")),
    Scenario("union/shadow/subtitles", "cache", steps=("copied",)),
    Scenario("union/move/subtitles", "evict", steps=("copied", "removed")),
    Scenario("symlink/backup/all", "cache", steps=("backed-up", "swapped")),
    Scenario("union/backup/all", "evict", steps=("restored", "removed")),
    Scenario("union/move/subtitles", "evict", adopted=True, steps=("copied", "removed")),
    Scenario("union/move", "cache", hardlinked=True, steps=("copied",)),
]


def _run(world: World, spec: str, kind: str, rel: str, verify: str, env: dict[str, str]):
    return subprocess.run(
        [sys.executable, "-m", "tests.integration.engine_helpers.run_row", world.to_json(),
         spec, kind, rel, str(CHUNK_BYTES), verify],
        cwd=REPO, env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def _prepare(world: World, scenario: Scenario, folder: str) -> tuple[str, dict[str, bytes]]:
    """Write the files (and, to evict, cache or adopt them); return the video and files."""
    files = scenario.files(folder)
    video = f"{folder}/k.mkv"
    for rel, data in files.items():
        if scenario.adopted:
            rows.write_on_fast(world, rel, data)
        else:
            rows.write_original(world, scenario.spec, rel, data)
    if scenario.hardlinked:
        os.link(Path(world.slow[0]) / video, Path(world.slow[0]) / folder / "seeding.mkv")
    mover_list = MoverList(Path(world.state_dir) / "mover.txt", rows.fast_root(world, scenario.spec))
    Path(world.state_dir).mkdir(parents=True, exist_ok=True)
    mover_list.path.write_text("\n".join([*USER_BEFORE, BEGIN, END, *USER_AFTER]) + "\n")
    if scenario.kind == "evict":
        ledger = Ledger.open(world.state_dir)
        engine = rows.engine(world, scenario.spec, ledger=ledger)
        if scenario.adopted:
            engine.adopt(video)
        else:
            if f"{folder}/other.mkv" in files:
                engine.cache(f"{folder}/other.mkv")  # shares the poster: it must stay
            engine.cache(video)
        mover_list.rewrite(str(e.fast_path) for e in ledger.files(sidecars=True))
        ledger.close()
    return video, files


def _listed(world: World) -> tuple[list[str], list[str], list[str]]:
    lines = (Path(world.state_dir) / "mover.txt").read_text().split("\n")
    assert lines[-1] == "" and "" not in lines[:-1]  # one entry a line, no blank line
    lines = lines[:-1]
    start, end = lines.index(BEGIN), lines.index(END)
    return lines[:start], lines[start + 1 : end], lines[end + 1 :]


def _check_listed(world: World, scenario: Scenario, files: dict[str, bytes]) -> None:
    """Everything cacherr has on the fast side (placed, or being written under its
    temporary name) is covered by the list, as Mover Tuning reads it."""
    before, block, after = _listed(world)
    assert (before, after) == (USER_BEFORE, USER_AFTER)
    fast = rows.fast_root(world, scenario.spec)
    present = [p for rel in files for p in (fast / rel, temp_path(fast / rel))
               if os.path.lexists(p)]  # fmt: skip
    if scenario.adopted:
        present = [p for p in present if p.name.endswith(".cacherr-tmp")]  # the pool held the rest
    assert [p for p in present if not covered(block, str(p))] == [], block


def _kill_points(world: World, scenario: Scenario, tmp: Path, index: int) -> list[str]:
    here = World(world.fast, world.slow, world.view, str(tmp / f"trace-state-{index}"))
    video, _ = _prepare(here, scenario, f"Movies/Trace {index}")
    trace = tmp / f"trace-{index}"
    done = _run(here, scenario.spec, scenario.kind, video, scenario.verify,
                {"CACHERR_TEST_CHECKPOINTS": str(trace),
                 "ENGINE_TEST_MOVER_LIST": str(Path(here.state_dir) / "mover.txt")})  # fmt: skip
    assert done.returncode == 0, done.stderr
    points = trace.read_text().split()
    steps = [p for p in points if p.rpartition(":")[0] not in IN_COPY]
    in_copy = [p for p in points if p.rpartition(":")[0] in IN_COPY]
    names = {p.rpartition(":")[0] for p in steps}
    assert set(scenario.steps) <= names, (scenario, names)
    sample = random.Random(f"{scenario}").sample(
        in_copy, min(IN_COPY_KILLS_PER_SCENARIO, len(in_copy))
    )
    return steps + sorted(sample)


def _one_kill(world: World, scenario: Scenario, point: str, n: int) -> str:
    state = Path(world.state_dir).with_name(f"state-{n}")
    here = World(world.fast, world.slow, world.view, str(state))
    video, files = _prepare(here, scenario, f"Movies/K{n} ü '{scenario.kind}'")
    env = {"CACHERR_TEST_KILL_AT": point, "ENGINE_TEST_MOVER_LIST": str(state / "mover.txt")}
    done = _run(here, scenario.spec, scenario.kind, video, scenario.verify, env)
    assert done.returncode == -9, f"{scenario} {point}: not killed ({done.returncode}) {done.stderr}"
    # Even before recovery, what Plex reads is complete, and the fast side is listed.
    for rel, data in files.items():
        assert rows.plex_path(here, scenario.spec, rel).read_bytes() == data, (point, rel)
    _check_listed(here, scenario, files)
    ledger = Ledger.open(state)
    try:
        engine = rows.engine(here, scenario.spec, ledger=ledger)
        first = engine.recover()
        assert engine.recover() == []  # idempotent: nothing left to decide
        # Start-up settles the list from the ledger (cacherr/cycle/once.py settle_mover_list).
        fast = rows.fast_root(here, scenario.spec)
        entries = [str(e.fast_path) for e in ledger.files(sidecars=True)]
        MoverList(state / "mover.txt", fast).rewrite(entries)
        expected = block_lines(entries, fast)
    finally:
        ledger.close()
    rows.check_consistent(here, scenario.spec, files)
    assert _listed(here)[1] == expected
    return first[0].outcome if first else "nothing to recover"


def test_sigkill_at_every_step_of_every_new_row_and_policy_always_recovers(tmp_path):
    require_fuse()
    started = time.monotonic()
    with Sandbox(tmp_path / "mnt", disks=2, fast_size_bytes=1024 * 1024 * 1024) as box:
        world = World.of(box, tmp_path / "state")
        jobs: list[tuple[Scenario, str, int]] = []
        for index, scenario in enumerate(SCENARIOS):
            for point in _kill_points(world, scenario, tmp_path, index):
                jobs.append((scenario, point, len(jobs)))
        one: Callable = lambda job: (job[0], _one_kill(world, *job))  # noqa: E731
        with ThreadPoolExecutor(max_workers=2) as pool:
            outcomes = list(pool.map(one, jobs))
    elapsed = time.monotonic() - started
    print(f"{len(jobs)} kill points in {elapsed:.1f}s")
    for scenario in SCENARIOS:
        seen = sorted({o for s, o in outcomes if s == scenario})
        print(f"  {scenario.spec} {scenario.kind} {scenario.verify}: {', '.join(seen)}")
        # Every scenario was killed both before its point of no return and after it.
        done = "cached" if scenario.kind == "cache" else "evicted"
        assert {done, "rolled-back"} <= set(seen), (scenario, seen)
        assert not [o for o in seen if o.startswith("inconsistent")], (scenario, seen)
    assert len(jobs) >= 300


CRASHES_DURING_RECOVERY = [  # (scenario, where the action is killed)
    (Scenario("union/backup", "cache"), "original-renamed:1"),
    (Scenario("union/backup", "evict"), "backup-renamed:1"),
    (Scenario("union/move", "cache"), "copied:1"),
    (Scenario("union/move", "evict"), "renamed:1"),
    (Scenario("symlink/move", "cache"), "copied:1"),
    (Scenario("symlink/move", "evict"), "placed:1"),
    (Scenario("symlink/move", "evict"), "backup-renamed:1"),
]


def test_a_recovery_of_a_new_row_killed_after_changing_the_disks_is_finished_by_the_next(
    tmp_path,
):
    require_fuse()
    with Sandbox(tmp_path / "mnt", disks=2) as box:
        world = World.of(box, tmp_path / "state")
        for n, (scenario, point) in enumerate(CRASHES_DURING_RECOVERY):
            here = World(world.fast, world.slow, world.view, str(tmp_path / f"state-{n}"))
            video, files = _prepare(here, scenario, f"Movies/R{n}")
            killed = _run(here, scenario.spec, scenario.kind, video, "size",
                          {"CACHERR_TEST_KILL_AT": point})  # fmt: skip
            assert killed.returncode == -9, (scenario, point, killed.stderr)
            again = _run(here, scenario.spec, "recover", video, "size",
                         {"CACHERR_TEST_KILL_AT": "recovery-decided:1"})  # fmt: skip
            assert again.returncode == -9, f"{scenario} {point}: recovery was not killed"
            ledger = Ledger.open(here.state_dir)
            try:
                [recovered] = rows.engine(here, scenario.spec, ledger=ledger).recover()
            finally:
                ledger.close()
            assert recovered.state in ("done", "aborted")
            assert not recovered.outcome.startswith("inconsistent"), (scenario, recovered)
            rows.check_consistent(here, scenario.spec, files)
