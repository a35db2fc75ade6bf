"""Invariant 9 around the engine: at every checkpoint of a cache and an evict (sidecars
included, and across a SIGKILL), the mover exclusion file lists every file cacherr has
on the fast side, lists nothing else, and keeps the user's own lines around its block.
MoverList is driven around the engine as cacherr/cycle/execute.py drives it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cacherr.cycle.moverlist import BEGIN, END, MoverList, covered
from cacherr.engine.paths import temp_path
from cacherr.state.ledger import Ledger
from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse
from tests.integration.engine_helpers import rows
from tests.integration.engine_helpers.watched import Watched
from tests.integration.engine_helpers.world import World

REPO = Path(__file__).resolve().parents[2]
SPEC = "union/move/subtitles"
VIDEO = "Movies/Alien (1979)/Alien (1979).mkv"
SIDECARS = ["Movies/Alien (1979)/Alien (1979).en.srt",
            "Movies/Alien (1979)/Alien (1979).fr.forced.srt"]  # fmt: skip
USER_BEFORE = ["/mnt/cache/Downloads", "/mnt/cache/Movies/Mine (2001)/mine.mkv"]
USER_AFTER = ["/mnt/cache/Music/*.flac"]


@pytest.fixture
def world(tmp_path):
    require_fuse()
    with Sandbox(tmp_path / "mnt", disks=2) as box:
        world = World.of(box, tmp_path / "state")
        rows.write_original(world, SPEC, VIDEO, os.urandom(200 * 1024))
        for rel in SIDECARS:
            rows.write_original(world, SPEC, rel, os.urandom(20 * 1024))
        yield world


@pytest.fixture
def listing(tmp_path) -> Path:
    path = tmp_path / "mover-exclude.txt"
    path.write_text("\n".join([*USER_BEFORE, BEGIN, END, *USER_AFTER]) + "\r\n")
    return path


def _content(listing: Path) -> list[str]:
    """cacherr's block, after checking the user's lines and the file's form."""
    text = listing.read_text()
    assert text.endswith("\n") and "\n\n" not in text and "\r" not in text
    lines = text[:-1].split("\n")
    start, end = lines.index(BEGIN), lines.index(END)
    assert lines[:start] == USER_BEFORE and lines[end + 1 :] == USER_AFTER
    return lines[start + 1 : end]


def _on_fast(world: World) -> set[str]:
    """What cacherr has on the fast side now: placed copies and copies being written."""
    fast = Path(world.fast)
    return {str(fast / rel) for rel in [VIDEO, *SIDECARS]
            if os.path.lexists(fast / rel) or os.path.lexists(temp_path(fast / rel))}  # fmt: skip


def _watch(world: World, listing: Path, seen: list[tuple[str, list[str]]]):
    everything = {str(Path(world.fast) / rel) for rel in [VIDEO, *SIDECARS]}

    def look(name: str) -> None:
        block = _content(listing)
        assert _on_fast(world) <= set(block) <= everything, (name, block)
        seen.append((name, block))

    return look


def test_the_list_covers_the_fast_side_at_every_step_of_a_cache_and_an_evict(world, listing):
    seen: list[tuple[str, list[str]]] = []
    mover_list = MoverList(listing)
    engine = rows.engine(world, SPEC, checkpoints=Watched(_watch(world, listing, seen)),
                         chunk_size_bytes=16 * 1024, mover_list=mover_list)  # fmt: skip
    fast = Path(world.fast)
    mover_list.add(fast / VIDEO)  # the cycle: an entry before its copy starts
    assert _content(listing) == [str(fast / VIDEO)]
    engine.cache(VIDEO)
    assert _content(listing) == sorted(str(fast / rel) for rel in [VIDEO, *SIDECARS])
    sizes = [len(block) for _, block in seen]
    assert sizes == sorted(sizes) and sizes[0] == 1 and sizes[-1] == 3  # only ever grows
    assert len(seen) > 30  # every step and chunk was looked at

    seen.clear()
    engine.evict(VIDEO)
    sizes = [len(block) for _, block in seen]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == 3  # only ever shrinks
    assert _content(listing) == [str(fast / VIDEO)]  # the sidecars left with their copies
    mover_list.remove(fast / VIDEO)  # the cycle: out once the eviction is durable
    assert _content(listing) == []
    assert _on_fast(world) == set()


def test_after_a_sigkill_mid_cache_the_list_still_covers_and_settles_from_the_ledger(
    world, listing
):
    killed = subprocess.run(
        [sys.executable, "-m", "tests.integration.engine_helpers.run_row", world.to_json(),
         SPEC, "cache", VIDEO, str(4096)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO), "ENGINE_TEST_MOVER_LIST": str(listing),
             "CACHERR_TEST_KILL_AT": "copy-chunk:53"},  # inside the first sidecar's copy
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    fast = Path(world.fast)
    block = _content(listing)
    # The sidecar's temporary copy is there, covered (by the share's pattern, and by the
    # folder line: every file of the folder is cacherr's), as Mover Tuning reads the list.
    assert block == [f"{fast}/Movies/*.cacherr-tmp", f"{fast}/Movies/Alien (1979)/"]
    assert os.path.lexists(temp_path(fast / SIDECARS[0]))
    assert all(covered(block, str(p)) for p in [fast / VIDEO, temp_path(fast / SIDECARS[0])])

    # Start-up: recovery, then the list rewritten from the ledger (settle_mover_list).
    ledger = Ledger.open(world.state_dir)
    engine = rows.engine(world, SPEC, ledger=ledger)
    [recovered] = engine.recover()
    assert (recovered.relative_path, recovered.outcome) == (SIDECARS[0], "rolled-back")
    mover_list = MoverList(listing)
    mover_list.rewrite(str(e.fast_path) for e in ledger.files(sidecars=True))
    assert _content(listing) == [str(fast / VIDEO)] and _on_fast(world) == {str(fast / VIDEO)}

    # The evict after the crash: at every step the list still covers the fast side.
    seen: list[tuple[str, list[str]]] = []
    engine = rows.engine(world, SPEC, ledger=ledger, mover_list=mover_list,
                         checkpoints=Watched(_watch(world, listing, seen)))  # fmt: skip
    engine.evict(VIDEO)
    assert seen and all(block == [str(fast / VIDEO)] for _, block in seen)
    mover_list.remove(fast / VIDEO)
    assert _content(listing) == [] and _on_fast(world) == set()
    rows.check_consistent(world, SPEC, {
        rel: (Path(world.slow[0]) / rel).read_bytes() for rel in [VIDEO, *SIDECARS]
    })  # fmt: skip
