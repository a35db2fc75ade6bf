"""Nothing is lost on a busy box (issue 11). The engine caches, evicts, adopts and
recovers (in its own process and mount namespace) while the others act: the mover, a
tagger, an *arr upgrade, the pool unmounting, hostile names (actors.py says how each
acts in each layout). Two libraries share the box, one per layout of SPEC §4: the union
layout's (shadow, backup or move) and the symlink layout's (library folders on both
disks, the cache folder on the pool; backup or move), so one run also holds both kinds
in one ledger, journal, mover list and recovery, and an unmounted pool takes both away.
A seed picks each file (and so its layout), the action and its `original`, the
checkpoint where the engine stops for an actor, and which actor acts on which file.

After every round (the pool mounted again, recovery run):
- every path Plex reads resolves to complete bytes of the version written last (never
  an older one, never mixed, never missing; where an interrupted cache had to put an
  original back beside a copy someone moved, one of the two names holds it);
- symlink layout: a symlink at a library path is cacherr's and points at its copy in
  the cache folder, which exists, and belongs to a cached file (or to one someone else
  changed, which cacherr untracked and left alone); otherwise the original is in place;
- no temporary file or link is left anywhere, and a backup belongs to a cached file;
- the ledger agrees with the disks and the mover list, for every file nobody else has
  touched since cacherr recorded it;
- nothing ran from a hostile name.
Before some rounds the user tidies what cacherr untracked, as doctor advises
(actors.user_tidies), so that no file stays out of cacherr's reach for good.

CACHERR_ACTORS_ROUNDS (default 1000) and CACHERR_ACTORS_SEED repeat a run; a failure
names its round and seed; CACHERR_ACTORS_VERBOSE=1 prints every round's story.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from cacherr.cycle.moverlist import covered
from cacherr.engine.paths import BACKUP_SUFFIX, LINK_SUFFIX, TEMP_SUFFIX, backup_path
from cacherr.engine.safety import is_our_symlink, measure
from cacherr.state.ledger import CachedFile, Ledger
from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse, require_tool
from tests.integration.actors import actors
from tests.integration.engine_helpers.world import World

REPO = Path(__file__).resolve().parents[3]
ROUNDS = int(os.environ.get("CACHERR_ACTORS_ROUNDS", "1000"))
# Two libraries, one per layout, with names of their own (the ledger is keyed by path).
UNION_VIDEOS = [f"Movies/M{n} (200{n})/M{n} (200{n}).mkv" for n in range(5)] + [
    f"TV/Show/Season 01/Show - S01E0{n}.mkv" for n in range(1, 4)]  # fmt: skip
SYMLINK_VIDEOS = [f"Films/F{n} (201{n})/F{n} (201{n}).mkv" for n in range(4)] + [
    f"Series/Show/Season 02/Show - S02E0{n}.mkv" for n in range(1, 4)]  # fmt: skip
VIDEOS = UNION_VIDEOS + SYMLINK_VIDEOS
SUBTITLES = [v.replace(".mkv", ".en.srt") for v in (UNION_VIDEOS[0], UNION_VIDEOS[5],
                                                     SYMLINK_VIDEOS[0], SYMLINK_VIDEOS[4])]
HOSTILE_VIDEOS = ["Movies/Ca$h (2010)/Ca$h (2010).mkv", 'Films/Say "hi" (2012)/Say "hi" (2012).mkv']
SYMLINK_TOPS = ("Films", "Series")
EXECUTED = {"PWNED", "TICKED"}  # what actors.HOSTILE_SUFFIXES would create, if run
ORIGINALS = {"union": ["shadow", "backup", "move"], "symlink": ["backup", "move"]}
CHECKPOINTS = {
    ("union", "cache"): ["begun", "folders-made", "temp-made", "copy-chunk", "temp-complete",
                         "renamed", "copied", "original-renamed", "backed-up",
                         "original-unlinked", "finished"],
    ("union", "evict"): ["begun", "checked", "backup-renamed", "restored", "folders-made",
                         "temp-made", "copy-chunk", "temp-complete", "renamed", "copied",
                         "copy-unlinked", "removed", "finished"],
    ("union", "adopt"): ["begun", "temp-made", "copy-chunk", "copied", "finished"],
    ("symlink", "cache"): ["begun", "folders-made", "temp-made", "copy-chunk", "temp-complete",
                           "renamed", "copied", "backup-linked", "backed-up", "link-created",
                           "link-exchanged", "link-renamed", "swapped", "backup-kept",
                           "finished"],
    ("symlink", "evict"): ["begun", "checked", "temp-made", "copy-chunk", "temp-complete",
                           "renamed", "copied", "backup-exchanged", "backup-renamed",
                           "restored", "copy-unlinked", "removed", "finished"],
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
    box.world.symlink_dir.mkdir()
    for n, rel in enumerate(VIDEOS + SUBTITLES + HOSTILE_VIDEOS):
        box.layouts[rel] = "symlink" if rel.split("/")[0] in SYMLINK_TOPS else "union"
        data = rng.randbytes(rng.randrange(20_000, 90_000))
        home = box.homes(rel)[n % 2]
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_bytes(data)
        box.versions[rel].add(actors.digest(data))
        box.latest[rel] = actors.digest(data)


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


def _round(box: actors.Box, worker: Worker, rng: random.Random, story: list[str],
           tally: Counter) -> None:  # fmt: skip
    if rng.random() < 0.3:  # (after the checks of the round before)
        story += [f"user: {what}" for what in actors.user_tidies(box, set(_ledger_state(box)))]
    for _ in range(rng.randint(1, 3)):
        rel = rng.choice(VIDEOS + HOSTILE_VIDEOS)
        layout = box.layouts[rel]
        cached = _ledger_state(box)
        if rel in cached:
            op = "evict"
        elif layout == "union" and os.path.lexists(Path(box.world.fast) / rel):
            op = "adopt"
        else:
            op = "cache"
        pause = None
        if rng.random() < 0.7:
            pause = [rng.choice(CHECKPOINTS[layout, op]), rng.choice([1, 1, 2])]
        target = rel if rng.random() < 0.8 else rng.choice(VIDEOS + SUBTITLES)
        command = {"op": op, "path": rel, "layout": layout,
                   "original": rng.choice(ORIGINALS[layout]), "pause": pause}  # fmt: skip
        acted: list[str] = []

        def on_pause(point: str, acted=acted, target=target) -> None:
            acted.append(f"at {point}: " + _act(box, rng, target))

        begun = time.time()
        done = worker.run(command, on_pause)
        for entry in _ledger_state(box).values():
            if entry.cached_at >= begun:  # recorded by this action, from what it measured
                box.recorded[entry.relative_path] = begun
        tally[f"{layout} {op}: {_outcome(done)}"] += 1
        story.append(f"{layout} {op} {rel} ({command['original']}, pause {pause}) {acted}: {done}")
        if rng.random() < 0.2:
            story.append("between: " + _act(box, rng, rng.choice(VIDEOS + SUBTITLES)))
    actors.mount_pool(box)
    story.append(f"recover: {worker.run({'op': 'recover'}, lambda point: None)}")


def _outcome(done: list[str]) -> str:
    """What one action came to, for the tally: its failure, else what it did, else why
    it was skipped."""
    failed = [line for line in done[:-1] if line.startswith("failed")]
    if failed:
        return failed[0]
    did = [part.split()[0] for part in done[-1].split(", ") if not part.endswith(" 0")]
    if did:
        return ", ".join(did)
    return done[0] if len(done) > 1 else "nothing"


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
        if box.layouts[rel] == "symlink":
            _check_symlink_file(box, rel, versions, cached)
        else:
            _check_union_file(box, rel, versions)
    _check_working_names(box, cached)
    lines = box.mover_list()
    for rel, entry in cached.items():
        assert covered(lines, str(entry.fast_path)), f"{rel} is cached but not listed"
        if box.touched.get(rel, 0) >= box.recorded.get(rel, entry.cached_at):
            continue  # changed by someone else since cacherr measured it: it is untracked next
        _check_entry(entry)
    # What a hostile name would run, had anything run it: in the branches (the walk above
    # looks), or in the folder the command ran in.
    for folder in (REPO, tmp_path, Path(box.world.state_dir)):
        assert not [p for p in folder.iterdir() if p.name in EXECUTED], f"ran in {folder}"


def _check_union_file(box: actors.Box, rel: str, versions: set[str]) -> None:
    """Plex reads, through the view, the latest version: the first branch's copy."""
    where = box.where(rel)
    assert where, f"{rel} is gone from every branch"
    data = (Path(box.world.view) / rel).read_bytes()  # type: ignore[arg-type]
    assert actors.digest(data) in versions, f"{rel}: Plex reads bytes nobody wrote"
    assert actors.digest(data) == box.latest[rel], f"{rel}: Plex reads an older version"
    assert data == (where[0] / rel).read_bytes(), f"{rel}: the view serves another copy"


def _check_symlink_file(box: actors.Box, rel: str, versions: set[str], cached: dict) -> None:
    """A library folder holds the name: the original in place, or cacherr's symlink to
    its copy in the cache folder, which exists; Plex reads the latest version there. A
    symlink of a file cacherr does not track is only left where someone else changed
    the file (cacherr untracked it, leaving it alone). Two folders hold the name only
    where someone moved the file while cacherr cached it: recovery cannot tell a move
    from a loss, so it puts the original back at its own name from the backup."""
    where = box.where(rel)
    assert where, f"{rel} is gone from every library folder"
    assert len(where) == 1 or rel in box.moved, f"{rel} is in two library folders"
    read = []
    for name in (root / rel for root in where):
        if name.is_symlink():
            assert os.readlink(name) == str(box.world.symlink_dir / rel), (
                f"{name} is a symlink cacherr did not write: {os.readlink(name)}")  # fmt: skip
            assert measure(box.world.symlink_dir / rel) is not None, f"{name} points nowhere"
            assert rel in cached or rel in box.touched, f"{name}: cacherr's symlink, not cached"
        read.append(actors.digest(name.read_bytes()))
        assert read[-1] in versions, f"{name}: Plex reads bytes nobody wrote"
    assert box.latest[rel] in read, f"{rel}: Plex reads an older version"


def _check_working_names(box: actors.Box, cached: dict) -> None:
    """No temporary file or link is left anywhere; a backup is a cached file's, unless
    someone else changed the file (cacherr then untracks it and leaves both alone)."""
    for branch in box.branches:
        for folder, _, names in os.walk(branch):
            for name in names:
                path = Path(folder) / name
                assert not name.endswith((TEMP_SUFFIX, LINK_SUFFIX)), f"{path} was left"
                assert name not in EXECUTED, f"{path}: a hostile name was run"
                if name.endswith(BACKUP_SUFFIX):
                    base = next((r for r in box.roots if r in path.parents), branch)
                    rel = str(path.with_name(name[1 : -len(BACKUP_SUFFIX)]).relative_to(base))
                    entry = cached.get(rel)
                    recorded = entry is not None and entry.backup_name == name and \
                        Path(entry.slow_branch) == base  # fmt: skip
                    assert recorded or rel in box.touched, f"{path}: a backup of nothing cached"


def _check_entry(entry: CachedFile) -> None:
    """A cached file nobody else touched is as the ledger says, on every side."""
    rel = entry.relative_path
    assert entry.fast.matches(measure(entry.fast_path)), f"{rel}: the fast copy differs"
    if entry.layout == "symlink":
        assert is_our_symlink(entry.slow_path, entry.link_target), (
            f"{rel}: {entry.slow_path} is not cacherr's symlink")  # fmt: skip
        backup = backup_path(entry.slow_path)
        if entry.original == "backup":
            assert entry.slow.matches(measure(backup)), f"{rel}: the backup differs"
        else:
            assert not os.path.lexists(backup), f"{rel}: a backup under original: move"
    elif entry.original == "shadow" and entry.slow is not None:
        assert entry.slow.matches(measure(entry.slow_path)), f"{rel}: the original differs"
    elif entry.original == "backup" and entry.kind == "cached":
        backup = entry.slow_path.with_name(entry.backup_name)  # type: ignore[union-attr]
        assert entry.slow.matches(measure(backup)), f"{rel}: the backup differs"  # type: ignore[union-attr]


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
    tally: Counter = Counter()
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
                        _round(box, worker, rng, story, tally)
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
    print("\n".join(f"  {count:5} {what}" for what, count in sorted(tally.items())))
