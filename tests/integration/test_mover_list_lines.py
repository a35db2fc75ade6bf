"""The mover list stays short and protects copies in progress (issue 11, point 8): one
line per fully cached folder, a pattern per share for temporary files, and doctor warns
before one share's lines grow past what Mover Tuning can hand to find."""

from __future__ import annotations

from pathlib import Path

from cacherr.cycle.moverlist import SHARE_LIMIT_BYTES, MoverList
from cacherr.doctor.audit import mover_list_length


def _files(fast: Path, *relative: str) -> list[Path]:
    made = []
    for rel in relative:
        path = fast / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        made.append(path)
    return made


def test_a_fully_cached_folder_is_one_line_and_temporary_files_one_pattern(tmp_path):
    fast = tmp_path / "cache"
    season = [f"TV/Show/Season 01/e{n}.mkv" for n in range(1, 9)] + ["TV/Show/Season 01/e1.srt"]
    show = season + ["TV/Show/Season 02/e1.mkv", "TV/Show/poster.jpg"]
    _files(fast, *show, "Movies/A/a.mkv", "Movies/A/trailer.mkv", "Movies/B/b.mkv")
    (fast / "Movies/B/.b2.mkv.cacherr-tmp").write_bytes(b"half")  # a copy in progress
    mover_list = MoverList(tmp_path / "mover.txt", fast)
    entries = [fast / rel for rel in show] + [fast / "Movies/A/a.mkv", fast / "Movies/B/b.mkv",
                                              fast / "Movies/B/b2.mkv"]  # fmt: skip
    mover_list.rewrite(entries)
    assert mover_list.entries() == [
        f"{fast}/Movies/*.cacherr-tmp",
        f"{fast}/TV/*.cacherr-tmp",
        f"{fast}/Movies/A/a.mkv",  # its folder holds a file cacherr does not list
        f"{fast}/Movies/B/",  # its temporary file aside, all listed
        f"{fast}/TV/Show/",  # the outermost fully listed folder, never the share itself
    ]
    for path in entries + [fast / "Movies/B/.b2.mkv.cacherr-tmp"]:
        assert mover_list.covers(path), path
    assert not mover_list.covers(fast / "Movies/A/trailer.mkv")
    # A download lands in a listed folder: the next write lists files again.
    _files(fast, "TV/Show/Season 02/e2.mkv")
    mover_list.remove(fast / "TV/Show/poster.jpg")
    assert mover_list.covers(fast / "TV/Show/Season 01/e3.mkv")
    assert not mover_list.covers(fast / "TV/Show/Season 02/e2.mkv")
    assert not mover_list.covers(fast / "TV/Show/poster.jpg")


def test_doctor_warns_when_a_shares_lines_approach_mover_tunings_limit(tmp_path):
    fast = tmp_path / "cache"
    listing = tmp_path / "mover.txt"
    name = "x" * 200
    count = int(0.8 * SHARE_LIMIT_BYTES) // (len(f"{fast}/Movies/{name}/0000.mkv") + 14) + 1
    MoverList(listing).rewrite(f"{fast}/Movies/{name}/{n:04d}.mkv" for n in range(count))
    [finding] = mover_list_length(listing, fast)
    assert finding.level == "warning" and "'Movies'" in finding.message
    MoverList(listing).rewrite(f"{fast}/Movies/{name}/{n:04d}.mkv" for n in range(count // 2))
    assert mover_list_length(listing, fast) == []
