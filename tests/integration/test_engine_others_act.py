"""Others act at the worst moment (issue 11, points 1–3): the mover moves a file while
cacherr copies it, a tagger rewrites bytes keeping size and mtime, someone writes while
cacherr asks Plex about sessions, an *arr upgrade replaces a symlink. Nothing is lost:
a fast-side file goes only if it is provably cacherr's own copy and a complete
counterpart stays, and the identity is checked after the guards, just before acting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cacherr.engine import SourceChanged
from cacherr.engine import steps as engine_steps
from cacherr.engine.paths import temp_path
from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse, require_tool
from tests.integration.engine_helpers import rows
from tests.integration.engine_helpers.watched import Watched
from tests.integration.engine_helpers.world import World

REPO = Path(__file__).resolve().parents[2]
DATA = os.urandom(256 * 1024)
CHUNK_BYTES = 32 * 1024


@pytest.fixture
def world(tmp_path):
    require_fuse()
    with Sandbox(tmp_path / "mnt", disks=2) as box:
        yield World.of(box, tmp_path / "state")


def mover_moves(source: Path, target_folder: Path) -> None:
    """The mover: rsync -a (keeps mtime; writes the final name), then removes the source."""
    rsync = require_tool("rsync")
    subprocess.run([rsync, "-a", "--remove-source-files", str(source), f"{target_folder}/"],
                   check=True, capture_output=True)  # fmt: skip


def rewrite_in_place(path: Path, data: bytes) -> None:
    """A tagger or `rsync --inplace -t`: new bytes, the same size and mtime."""
    st = os.stat(path)
    with open(path, "r+b") as handle:
        handle.write(data[: st.st_size])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def once(action):
    """A progress hook that runs `action` at the first chunk only."""
    done = []

    def hook(copied: int, total: int) -> None:
        if not done:
            done.append(copied)
            action()

    return hook


# -- point 1: the mover moves the file while cacherr copies it --------------------------


@pytest.mark.parametrize("spec", ["union/shadow", "union/move", "union/backup"])
def test_a_move_by_the_mover_during_the_copy_keeps_the_movers_copy(world, spec):
    rel = f"Movies/Moved {spec.replace('/', ' ')}/m.mkv"
    source = rows.write_original(world, spec, rel, DATA)
    fast = Path(world.fast) / rel
    engine = rows.engine(world, spec, chunk_size_bytes=CHUNK_BYTES,
                         progress=once(lambda: mover_moves(source, fast.parent)))  # fmt: skip
    with pytest.raises(SourceChanged):
        engine.cache(rel)
    # The mover's copy is the only one now: same size and mtime as cacherr's would be.
    assert not source.exists() and fast.read_bytes() == DATA
    assert world.plex_path("union", rel).read_bytes() == DATA
    assert engine.ledger.get(rel) is None and not temp_path(fast).exists()


def test_a_move_by_the_mover_after_a_crash_mid_copy_keeps_the_movers_copy(world):
    rel = "Movies/Crashed then moved/c.mkv"
    source = rows.write_original(world, "union/shadow", rel, DATA)
    killed = subprocess.run(
        [sys.executable, "-m", "tests.integration.engine_helpers.run_row", world.to_json(),
         "union/shadow", "cache", rel, str(CHUNK_BYTES)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO), "CACHERR_TEST_KILL_AT": "copy-chunk:2"},
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    fast = Path(world.fast) / rel
    mover_moves(source, fast.parent)  # the mover ran before cacherr came back
    [recovered] = rows.engine(world, "union/shadow").recover()
    assert recovered.state == "aborted"
    assert fast.read_bytes() == DATA and world.plex_path("union", rel).read_bytes() == DATA
    assert not temp_path(fast).exists()


# -- point 2: a writer that keeps size and mtime -----------------------------------------


def test_an_in_place_edit_of_the_cached_copy_before_eviction_is_kept(world):
    rel = "Movies/Tagged/t.mkv"
    rows.write_original(world, "union/shadow", rel, DATA)
    engine = rows.engine(world, "union/shadow")
    engine.cache(rel)
    fast = Path(world.fast) / rel
    edited = os.urandom(len(DATA))
    rewrite_in_place(fast, edited)  # a tagger writing through the merged view
    assert engine.evict(rel).outcome == "untracked"
    assert fast.read_bytes() == edited == world.plex_path("union", rel).read_bytes()


def test_an_in_place_edit_of_the_original_during_a_move_copy_keeps_the_original(world):
    rel = "Movies/Tagged during copy/t.mkv"
    source = rows.write_original(world, "union/move", rel, DATA)
    edited = os.urandom(len(DATA))
    engine = rows.engine(world, "union/move", chunk_size_bytes=CHUNK_BYTES,
                         progress=once(lambda: rewrite_in_place(source, edited)))  # fmt: skip
    with pytest.raises(SourceChanged):
        engine.cache(rel)
    assert source.read_bytes() == edited == world.plex_path("union", rel).read_bytes()
    assert not (Path(world.fast) / rel).exists() and engine.ledger.get(rel) is None


def test_an_in_place_edit_of_the_cached_copy_while_it_is_copied_back_is_kept(world):
    rel = "Movies/Tagged during copy back/t.mkv"
    rows.write_original(world, "union/move", rel, DATA)
    rows.engine(world, "union/move").cache(rel)
    fast = Path(world.fast) / rel
    edited = os.urandom(len(DATA))
    engine = rows.engine(world, "union/move", chunk_size_bytes=CHUNK_BYTES,
                         progress=once(lambda: rewrite_in_place(fast, edited)))  # fmt: skip
    assert engine.evict(rel).outcome == "untracked"
    assert fast.read_bytes() == edited == world.plex_path("union", rel).read_bytes()
    slow = [Path(b) / rel for b in world.slow]
    assert not any(p.exists() or temp_path(p).exists() for p in slow)


def test_an_in_place_edit_through_the_view_as_the_copy_is_placed_is_never_deleted(world):
    rel = "Movies/Tagged as placed/t.mkv"
    rows.write_original(world, "union/shadow", rel, DATA)
    view = world.plex_path("union", rel)
    edited = os.urandom(len(DATA))

    def look(name: str) -> None:
        if name == "renamed":  # from its rename on, the view serves the copy
            rewrite_in_place(view, edited)

    engine = rows.engine(world, "union/shadow", checkpoints=Watched(look))
    # mergerfs sets the times on every branch that holds the file: the original's ctime
    # moves too, and the cache is rolled back; the copy now holds the edit, and stays.
    with pytest.raises(SourceChanged):
        engine.cache(rel)
    assert view.read_bytes() == edited
    assert (Path(world.fast) / rel).read_bytes() == edited
    assert engine.ledger.get(rel) is None


def test_an_in_place_edit_of_the_original_as_its_backup_is_linked_is_never_hidden(world):
    spec = "symlink/backup"
    rel = "Movies/Tagged as linked/t.mkv"
    original = rows.write_original(world, spec, rel, DATA)
    edited = os.urandom(len(DATA))

    def look(name: str) -> None:
        if name == "backup-linked":  # the link moved the ctime: this edit must still show
            rewrite_in_place(original, edited)

    engine = rows.engine(world, spec, checkpoints=Watched(look))
    with pytest.raises(SourceChanged):
        engine.cache(rel)  # never a symlink to the copy of the version before the edit
    assert not original.is_symlink() and original.read_bytes() == edited
    assert rows.check_consistent(world, spec, {rel: edited}) == {rel: "not-cached"}


# -- point 3: guards first, then the identity, then the system call -----------------------


def test_a_write_while_plex_is_asked_about_sessions_is_never_deleted(world):
    rel = "Movies/Written during the poll/w.mkv"
    rows.write_original(world, "union/shadow", rel, DATA)
    rows.engine(world, "union/shadow").cache(rel)
    fast = Path(world.fast) / rel
    written = os.urandom(len(DATA) + 100)

    def playing(path: str) -> bool:
        fast.write_bytes(written)  # someone writes while the poll takes its time
        return False

    engine = rows.engine(world, "union/shadow", session_check=playing)
    assert engine.evict(rel).outcome == "untracked"
    assert fast.read_bytes() == written == world.plex_path("union", rel).read_bytes()


@pytest.mark.parametrize("spec", ["symlink/backup", "symlink/move"])
def test_an_edit_through_the_symlink_during_the_poll_stays_what_plex_reads(world, spec):
    rel = f"Movies/Tagged through {spec.replace('/', ' ')}/t.mkv"
    original = rows.write_original(world, spec, rel, DATA)
    rows.engine(world, spec).cache(rel)
    edited = os.urandom(len(DATA))

    def playing(path: str) -> bool:
        rewrite_in_place(original, edited)  # through the symlink: into cacherr's copy
        return False

    engine = rows.engine(world, spec, session_check=playing)
    assert engine.evict(rel).outcome == "untracked"
    # Never swapped back behind the old version: Plex reads the edit, through the symlink.
    assert original.is_symlink() and original.read_bytes() == edited
    assert [p.name for p in original.parent.iterdir() if ".cacherr-" in p.name] in (
        [], [f".{original.name}.cacherr-backup"])  # fmt: skip


def upgrade_over(path: Path, data: bytes) -> None:
    """An *arr upgrade: the new file is written beside, then renamed over the old name."""
    beside = path.with_name(path.name + ".partial")
    beside.write_bytes(data)
    os.rename(beside, path)


@pytest.mark.parametrize("spec", ["symlink/backup", "symlink/move"])
def test_an_upgrade_replacing_the_symlink_during_the_poll_is_never_overwritten(world, spec):
    rel = f"Movies/Upgraded {spec.replace('/', ' ')}/u.mkv"
    original = rows.write_original(world, spec, rel, DATA)
    rows.engine(world, spec).cache(rel)
    assert original.is_symlink()
    upgrade = os.urandom(1000)

    def playing(path: str) -> bool:
        upgrade_over(original, upgrade)
        return False

    engine = rows.engine(world, spec, session_check=playing)
    assert engine.evict(rel).outcome == "untracked"
    assert not original.is_symlink() and original.read_bytes() == upgrade
    assert (world.symlink_dir / rel).read_bytes() == DATA  # the old version is kept too


@pytest.mark.parametrize("spec", ["symlink/backup", "symlink/move"])
def test_a_symlink_replaced_right_before_the_swap_back_is_swapped_back_in_place(
    world, spec, monkeypatch
):
    rel = f"Movies/Raced {spec.replace('/', ' ')}/r.mkv"
    original = rows.write_original(world, spec, rel, DATA)
    rows.engine(world, spec).cache(rel)
    upgrade = os.urandom(1000)
    real_exchange = engine_steps.rename_exchange

    def exchange_after_an_upgrade(first: Path, second: Path) -> bool:
        if second == original and original.is_symlink():
            upgrade_over(original, upgrade)  # between the last check and the exchange
        return real_exchange(first, second)

    monkeypatch.setattr(engine_steps, "rename_exchange", exchange_after_an_upgrade)
    assert rows.engine(world, spec).evict(rel).outcome == "untracked"
    assert not original.is_symlink() and original.read_bytes() == upgrade
    assert (world.symlink_dir / rel).read_bytes() == DATA
    leftovers = [p.name for p in original.parent.iterdir() if ".cacherr-" in p.name]
    assert leftovers in ([], [f".{original.name}.cacherr-backup"])  # at most the old version
    if leftovers:
        assert (original.parent / leftovers[0]).read_bytes() == DATA
