"""Sidecars travel with their video: cached, journalled, in the ledger with `sidecar_of`,
listed for the mover, and evicted when the last video referencing them leaves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cacherr.cycle.moverlist import MoverList
from cacherr.engine import InUse, Refused
from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse
from tests.integration.engine_helpers import rows
from tests.integration.engine_helpers.world import World

VIDEO = os.urandom(100 * 1024)
FOLDER = "Movies/Heat (1995)"
SUBTITLES = {
    f"{FOLDER}/Heat (1995).srt": b"1\n00:00:01,000 --> 00:00:02,000\nhello\n",
    f"{FOLDER}/Heat (1995).en.srt": b"english",
    f"{FOLDER}/Heat (1995).en.forced.srt": b"forced english",
    f"{FOLDER}/Heat (1995).pt-BR.sdh.ass": b"portuguese",
    f"{FOLDER}/Heat (1995).idx": b"vobsub index",
    f"{FOLDER}/Heat (1995).sub": b"vobsub data",
}
NOT_SIDECARS = {
    f"{FOLDER}/Heat (1995) Extended.mkv": b"another cut",
    f"{FOLDER}/Heat (1995) Extended.en.srt": b"the other cut's subtitles",
    f"{FOLDER}/poster.jpg": b"a poster",
    f"{FOLDER}/notes.txt": b"not a subtitle",
}


@pytest.fixture
def world(tmp_path):
    require_fuse()
    with Sandbox(tmp_path / "mnt", disks=2) as box:
        yield World.of(box, tmp_path / "state")


def _write(world: World, spec: str, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        rows.write_original(world, spec, rel, data)


@pytest.mark.parametrize("spec", ["union/shadow/subtitles", "union/move/subtitles",
                                  "symlink/backup/subtitles", "symlink/move/subtitles"])
def test_subtitles_with_language_and_forced_tags_travel_with_their_video(world, spec, tmp_path):
    video = f"{FOLDER}/Heat (1995).mkv"
    everything = {video: VIDEO, **SUBTITLES, **NOT_SIDECARS}
    _write(world, spec, everything)
    mover_list = MoverList(tmp_path / "mover.txt")
    engine = rows.engine(world, spec, mover_list=mover_list)
    result = engine.cache(video)
    assert sorted(result.sidecars) == sorted(SUBTITLES) and result.detail == ""
    states = rows.check_consistent(world, spec, everything)
    assert {rel for rel, state in states.items() if state == "cached"} == {video, *SUBTITLES}
    for rel in SUBTITLES:
        entry = engine.ledger.get(rel)
        assert entry.sidecar_of == video and entry.original == engine.original
        assert engine.ledger.sidecar_refs(rel) == [video]
    assert [e.relative_path for e in engine.ledger.files()] == [video]  # what the planner sees
    fast = rows.fast_root(world, spec)
    assert mover_list.entries() == sorted(str(fast / rel) for rel in SUBTITLES)  # the cycle adds the video
    with pytest.raises(Refused, match="sidecar of"):
        engine.evict(next(iter(SUBTITLES)))

    result = engine.evict(video)
    assert result.outcome == "evicted" and sorted(result.sidecars) == sorted(SUBTITLES)
    assert set(rows.check_consistent(world, spec, everything).values()) == {"not-cached"}
    assert engine.ledger.files(sidecars=True) == [] and mover_list.entries() == []


def test_with_all_a_shared_poster_stays_until_the_last_video_leaves(world, tmp_path):
    spec = "union/shadow/all"
    folder = "TV/Show/Season 01"
    episodes = [f"{folder}/Show S01E0{n}.mkv" for n in (1, 2)]
    shared = {f"{folder}/poster.jpg": b"poster", f"{folder}/season.nfo": b"<season/>"}
    own = {f"{folder}/Show S01E01.en.srt": b"e1 subs"}
    everything = {**{e: VIDEO for e in episodes}, **shared, **own}
    _write(world, spec, everything)
    mover_list = MoverList(tmp_path / "mover.txt")
    engine = rows.engine(world, spec, mover_list=mover_list)
    first = engine.cache(episodes[0])
    assert sorted(first.sidecars) == sorted([*shared, *own])
    second = engine.cache(episodes[1])
    assert sorted(second.sidecars) == sorted([*shared, *own])  # referenced, not copied again
    for rel in shared:
        assert engine.ledger.sidecar_refs(rel) == episodes

    gone = engine.evict(episodes[0]).sidecars
    assert gone == ()  # every sidecar is still referenced by episode 2
    states = rows.check_consistent(world, spec, everything)
    assert states[f"{folder}/poster.jpg"] == "cached" and states[episodes[0]] == "not-cached"
    assert mover_list.entries() == sorted(str(Path(world.fast) / r) for r in [*shared, *own])

    gone = engine.evict(episodes[1]).sidecars
    assert sorted(gone) == sorted([*shared, *own])
    assert set(rows.check_consistent(world, spec, everything).values()) == {"not-cached"}
    assert mover_list.entries() == []


def test_a_sidecar_already_on_the_pool_is_adopted_with_its_video(world):
    spec = "union/shadow/subtitles"
    video = f"{FOLDER}/Heat (1995).mkv"
    world.write_original("union", video, VIDEO)
    fast_srt = rows.write_on_fast(world, f"{FOLDER}/Heat (1995).en.srt", b"downloaded to the pool")
    engine = rows.engine(world, spec)
    assert engine.cache(video).sidecars == (f"{FOLDER}/Heat (1995).en.srt",)
    entry = engine.ledger.get(f"{FOLDER}/Heat (1995).en.srt")
    assert (entry.kind, entry.sidecar_of) == ("adopted", video)
    engine.evict(video)
    assert fast_srt.read_bytes() == b"downloaded to the pool"  # released, never deleted
    assert engine.ledger.files(sidecars=True) == []


def test_an_adopted_video_brings_its_sidecars_along(world):
    spec = "union/move/subtitles"
    video = f"{FOLDER}/Heat (1995).mkv"
    rows.write_on_fast(world, video, VIDEO)
    rows.write_on_fast(world, f"{FOLDER}/Heat (1995).en.srt", b"on the pool too")
    engine = rows.engine(world, spec)
    assert engine.adopt(video).sidecars == (f"{FOLDER}/Heat (1995).en.srt",)
    engine.evict(video)  # original: move: both go to a slow disk
    for rel, data in ((video, VIDEO), (f"{FOLDER}/Heat (1995).en.srt", b"on the pool too")):
        assert not (Path(world.fast) / rel).exists()
        assert rows.plex_path(world, spec, rel).read_bytes() == data


def test_a_player_on_the_video_keeps_its_sidecars_too(world):
    spec = "union/backup/subtitles"
    video = f"{FOLDER}/Heat (1995).mkv"
    _write(world, spec, {video: VIDEO, **SUBTITLES})
    engine = rows.engine(world, spec)
    engine.cache(video)
    playing = rows.engine(world, spec, ledger=engine.ledger, session_check=lambda p: p == video)
    with pytest.raises(InUse):
        playing.evict(video)
    states = rows.check_consistent(world, spec, {video: VIDEO, **SUBTITLES})
    assert set(states.values()) == {"cached"}


def test_a_wanted_file_that_came_as_a_sidecar_is_kept_for_itself(world):
    spec = "union/shadow/all"
    video, extra = f"{FOLDER}/Heat (1995).mkv", f"{FOLDER}/Heat (1995).trailer.m2v"
    _write(world, spec, {video: VIDEO, extra: b"a video type cacherr does not know"})
    engine = rows.engine(world, spec)
    assert engine.cache(video).sidecars == (extra,)
    assert engine.cache(extra).outcome == "cached"  # a rule wants it now
    assert engine.ledger.get(extra).sidecar_of is None
    assert [e.relative_path for e in engine.ledger.files()] == [video, extra]
    engine.evict(video)
    assert engine.ledger.get(extra) is not None and (Path(world.fast) / extra).exists()
    with pytest.raises(Refused, match="already in the ledger"):
        engine.adopt(extra)


def test_a_wanted_file_the_planner_finds_on_the_pool_as_a_sidecar_is_adopted_for_itself(world):
    spec = "union/shadow/all"
    video, extra = f"{FOLDER}/Heat (1995).mkv", f"{FOLDER}/Heat (1995).sample.divx2"
    _write(world, spec, {video: VIDEO, extra: b"sample"})
    engine = rows.engine(world, spec)
    engine.cache(video)
    assert engine.adopt(extra).outcome == "adopted"
    assert engine.ledger.get(extra).sidecar_of is None
