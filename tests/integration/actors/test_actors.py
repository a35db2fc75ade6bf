"""Nothing is lost on a busy box (issue 11). The engine caches, evicts, adopts and
recovers (in its own process and mount namespace) while the others act: the mover both
ways, a tagger, an *arr upgrade, the pool unmounting, hostile names. A seed picks the
actions, the checkpoint where the engine stops for an actor, and which actor acts on
which file. After every round (the pool mounted again, recovery run): every path Plex
reads resolves to complete bytes of some version that was written, no temporary file
is left anywhere, and the ledger agrees with the disks for every file nobody else has
touched since cacherr recorded it.

CACHERR_ACTORS_ROUNDS (default 500) and CACHERR_ACTORS_SEED repeat a run; a failure
names its round and seed.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from cacherr.cycle.moverlist import covered
from cacherr.engine.paths import BACKUP_SUFFIX, LINK_SUFFIX, TEMP_SUFFIX
from cacherr.engine.safety import measure
from cacherr.state.ledger import Ledger
from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse, require_tool
from tests.integration.actors import actors
from tests.integration.engine_helpers.world import World

REPO = Path(__file__).resolve().parents[3]
ROUNDS = int(os.environ.get("CACHERR_ACTORS_ROUNDS", "500"))
VIDEOS = [f"Movies/M{n} (200{n})/M{n} (200{n}).mkv" for n in range(5)] + [
    f"TV/Show/Season 01/Show - S01E0{n}.mkv" for n in range(1, 4)]  # fmt: skip
SUBTITLES = [VIDEOS[0].replace(".mkv", ".en.srt"), VIDEOS[5].replace(".mkv", ".en.srt")]
HOSTILE_VIDEO = "Movies/Ca$h (2010)/Ca$h (2010).mkv"
CHECKPOINTS = {
    "cache": ["begun", "folders-made", "temp-made", "copy-chunk", "temp-complete", "renamed",
              "copied", "original-renamed", "backed-up", "original-unlinked", "finished"],
    "evict": ["begun", "checked", "backup-renamed", "restored", "temp-made", "copy-chunk",
              "copied", "copy-unlinked", "removed", "finished"],
    "adopt": ["begun", "temp-made", "copy-chunk", "copied", "finished"],
}  # fmt: skip
ACTORS = ["mover_to_array", "mover_to_pool", "edit_in_place", "upgrade", "unmount_pool",
          "hostile_sidecar"]  # fmt: skip


class Worker:
    """The engine process (worker.py) in its own mount namespace."""

    def __init__(self, world: World, hidden_pool: Path, log: Path):
        script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        self.log = log
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
             world.fast, str(hidden_pool), sys.executable, "-m",
             "tests.integration.actors.worker", world.to_json()],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("w"),
        )  # fmt: skip  (its log goes to a file: a full pipe would stop it)
        ready = self.process.stdout.readline()  # type: ignore[union-attr]
        assert ready, f"the worker did not start: {self.tail()}"

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])

    def run(self, command: dict, on_pause) -> list[str]:
        """Send a command; call `on_pause(checkpoint)` if it stops; return its result."""
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"the worker died: {self.tail()}")
            answer = json.loads(line)
            if "done" in answer:
                return answer["done"]
            on_pause(answer["paused"])
            self.process.stdin.write("go\n")
            self.process.stdin.flush()

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def _library(box: actors.Box, rng: random.Random) -> None:
    for n, rel in enumerate(VIDEOS + SUBTITLES + [HOSTILE_VIDEO]):
        data = rng.randbytes(rng.randrange(20_000, 90_000))
        disk = Path(box.world.slow[n % 2])
        (disk / rel).parent.mkdir(parents=True, exist_ok=True)
        (disk / rel).write_bytes(data)
        box.versions[rel].add(actors.digest(data))


def _act(box: actors.Box, rng: random.Random, rel: str) -> str:
    name = rng.choice(ACTORS)
    seed = rng.randrange(1 << 30)
    if name == "unmount_pool":
        acted = actors.unmount_pool(box)
    elif name == "hostile_sidecar":
        acted = actors.hostile_sidecar(box, rng.choice(VIDEOS), seed)
    elif name in ("edit_in_place", "upgrade"):
        acted = getattr(actors, name)(box, rel, seed)
    else:
        acted = getattr(actors, name)(box, rel)
    return f"{name}({rel})" + ("" if acted else " did nothing")


def _ledger_state(box: actors.Box) -> dict:
    ledger = Ledger.open(box.world.state_dir, read_only=True)
    try:
        return {e.relative_path: e for e in ledger.files(sidecars=True)}
    finally:
        ledger.close()


def _round(box: actors.Box, worker: Worker, rng: random.Random, story: list[str]) -> None:
    for _ in range(rng.randint(1, 3)):
        rel = rng.choice(VIDEOS + [HOSTILE_VIDEO])
        cached = _ledger_state(box)
        if rel in cached:
            op = "evict"
        elif os.path.lexists(Path(box.world.fast) / rel):
            op = "adopt"
        else:
            op = "cache"
        pause = None
        if rng.random() < 0.7:
            pause = [rng.choice(CHECKPOINTS[op]), rng.choice([1, 1, 2])]
        target = rel if rng.random() < 0.8 else rng.choice(VIDEOS + SUBTITLES)
        command = {"op": op, "path": rel, "original": rng.choice(["shadow", "backup", "move"]),
                   "pause": pause}  # fmt: skip
        acted: list[str] = []

        def on_pause(point: str, acted=acted, target=target) -> None:
            acted.append(f"at {point}: " + _act(box, rng, target))

        begun = time.time()
        done = worker.run(command, on_pause)
        for entry in _ledger_state(box).values():
            if entry.cached_at >= begun:  # recorded by this action, from what it measured
                box.recorded[entry.relative_path] = begun
        story.append(f"{op} {rel} ({command['original']}, pause {pause}) {acted}: {done}")
        if rng.random() < 0.2:
            story.append("between: " + _act(box, rng, rng.choice(VIDEOS + SUBTITLES)))
    actors.mount_pool(box)
    story.append(f"recover: {worker.run({'op': 'recover'}, lambda point: None)}")


def _check(box: actors.Box, tmp_path: Path) -> None:
    cached = _ledger_state(box)
    ledger = Ledger.open(box.world.state_dir, read_only=True)
    try:
        running = ledger.conn.execute(
            "SELECT relative_path, plan FROM journal_actions WHERE state = 'running'").fetchall()
    finally:
        ledger.close()
    assert running == [], "an action was left unfinished"
    for rel, versions in box.versions.items():
        where = box.where(rel)
        assert where, f"{rel} is gone from every branch"
        data = (Path(box.world.view) / rel).read_bytes()  # type: ignore[arg-type]
        assert actors.digest(data) in versions, f"{rel}: Plex reads bytes nobody wrote"
        assert data == (where[0] / rel).read_bytes(), f"{rel}: the view serves another copy"
    for branch in box.branches:
        for folder, _, names in os.walk(branch):
            for name in names:
                path = Path(folder) / name
                assert not name.endswith((TEMP_SUFFIX, LINK_SUFFIX)), f"{path} was left"
                if name.endswith(BACKUP_SUFFIX):
                    rel = str(path.with_name(name[1 : -len(BACKUP_SUFFIX)]).relative_to(branch))
                    entry = cached.get(rel)
                    recorded = entry is not None and entry.backup_name == name
                    assert recorded or rel in box.touched, f"{path}: a backup of nothing cached"
    lines = box.mover_list()
    for rel, entry in cached.items():
        assert covered(lines, str(entry.fast_path)), f"{rel} is cached but not listed"
        if box.touched.get(rel, 0) >= box.recorded.get(rel, entry.cached_at):
            continue  # changed by someone else since cacherr measured it: it is untracked next
        assert entry.fast.matches(measure(entry.fast_path)), f"{rel}: the fast copy differs"
        if entry.original == "shadow" and entry.slow is not None:
            assert entry.slow.matches(measure(entry.slow_path)), f"{rel}: the original differs"
        elif entry.original == "backup" and entry.kind == "cached":
            backup = entry.slow_path.with_name(entry.backup_name)  # type: ignore[union-attr]
            assert entry.slow.matches(measure(backup)), f"{rel}: the backup differs"  # type: ignore[union-attr]
    assert not list(tmp_path.rglob("PWNED")) and not list(tmp_path.rglob("TICKED"))
    assert not list(REPO.glob("PWNED")) and not list(REPO.glob("TICKED"))


def test_nothing_is_lost_while_the_mover_taggers_upgrades_and_unmounts_act(tmp_path):
    require_fuse()
    for tool in ("rsync", "unshare", "nsenter"):
        require_tool(tool)
    seed = int(os.environ.get("CACHERR_ACTORS_SEED", random.randrange(1 << 30)))
    print(f"actors seed: {seed} (CACHERR_ACTORS_SEED={seed} CACHERR_ACTORS_ROUNDS=N to repeat)")
    rng = random.Random(seed)
    state = tmp_path / "state"
    state.mkdir()
    # The journal's durability is the power-cut explorer's business: a RAM state keeps
    # the rounds quick.
    subprocess.run(["mount", "-t", "tmpfs", "cacherr-actors-state", str(state)], check=True)
    hidden_pool = tmp_path / "hidden-pool"
    hidden_pool.mkdir()
    started = time.monotonic()
    try:
        with Sandbox(tmp_path / "mnt", disks=2, fast_size_bytes=512 * 1024 * 1024) as sandbox:
            world = World(str(sandbox.fast), tuple(map(str, sandbox.slow)), str(sandbox.view),
                          str(state))  # fmt: skip
            worker = Worker(world, hidden_pool, tmp_path / "worker.log")
            box = actors.Box(world, worker.process.pid, str(hidden_pool))
            try:
                _library(box, rng)
                for number in range(1, ROUNDS + 1):
                    story: list[str] = []
                    try:
                        _round(box, worker, rng, story)
                        _check(box, tmp_path)
                        if os.environ.get("CACHERR_ACTORS_VERBOSE"):
                            print(f"round {number}:\n  " + "\n  ".join(story))
                    except Exception as failure:
                        raise AssertionError(
                            f"round {number} of seed {seed} (CACHERR_ACTORS_SEED={seed}): "
                            f"{failure}\n  " + "\n  ".join(story)
                        ) from failure
            finally:
                actors.mount_pool(box)
                worker.close()
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)
    print(f"{ROUNDS} rounds in {time.monotonic() - started:.1f}s")
