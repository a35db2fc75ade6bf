"""Pure parts of the engine's part 2: sidecar names, the Held error, per-branch locks and
per-file claims."""

from __future__ import annotations

import threading

import pytest

from cacherr.config.model import HostConfig
from cacherr.engine import Cancelled, Held, Refused
from cacherr.engine.guards import BranchLocks, FileClaims, require_not_held
from cacherr.engine.sidecars import sidecar_names


def test_subtitle_names_match_the_basename_with_language_and_forced_tags():
    names = [
        "Movie.mkv", "Movie.srt", "Movie.en.srt", "Movie.en.forced.srt", "Movie.EN.SDH.SRT",
        "Movie.vtt", "Movie.sup", "Movie.ssa", "Movie.Extended.mkv", "Movie.Extended.en.srt",
        "Movie2.srt", "Movie.en.txt", ".Movie.en.srt.cacherr-tmp", "poster.jpg",
    ]  # fmt: skip
    assert sidecar_names("subtitles", "Movie.mkv", names) == [
        "Movie.EN.SDH.SRT", "Movie.en.forced.srt", "Movie.en.srt", "Movie.srt", "Movie.ssa",
        "Movie.sup", "Movie.vtt",
    ]  # fmt: skip
    # The longest matching basename owns a subtitle: the other cut keeps its own.
    assert sidecar_names("subtitles", "Movie.Extended.mkv", names) == ["Movie.Extended.en.srt"]


def test_all_takes_every_sibling_but_videos_and_hidden_names_and_none_takes_nothing():
    names = ["A.mkv", "B.mp4", "poster.jpg", "fanart.jpg", "A.nfo", "B.srt", ".A.mkv.cacherr-tmp"]
    assert sidecar_names("all", "A.mkv", names) == ["A.nfo", "B.srt", "fanart.jpg", "poster.jpg"]
    assert sidecar_names("none", "A.mkv", names) == []
    with pytest.raises(ValueError, match="sidecars must be one of"):
        sidecar_names("some", "A.mkv", names)


def test_held_names_the_file_the_reason_and_what_to_wait_for():
    held = Held("Movies/A/a.mkv", "parity_check")
    assert held.reason == "parity_check" and held.path == "Movies/A/a.mkv"
    assert str(held) == (
        "Movies/A/a.mkv: held: a parity check or rebuild is running; it starts once that ends"
    )


def test_no_host_and_unknown_guards_never_hold(tmp_path):
    require_not_held(None, "Movies/A/a.mkv")
    nowhere = tmp_path / "absent"
    require_not_held(HostConfig(nowhere / "run/mover.pid", nowhere / "e", nowhere / "b"), "x/y")


def test_a_transfer_waiting_for_its_disk_stops_when_cancelled():
    waiting = threading.Event()
    locks = BranchLocks(on_wait=lambda branch: waiting.set())
    cancel = threading.Event()
    outcome: list[object] = []

    def second() -> None:
        try:
            with locks.held("/mnt/disk1/", cancel):  # the same disk, spelled differently
                outcome.append("ran")
        except Cancelled as error:
            outcome.append(error)

    with locks.held("/mnt/disk1"):
        thread = threading.Thread(target=second)
        thread.start()
        assert waiting.wait(timeout=10)
        cancel.set()
        thread.join(timeout=10)
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled)
    with locks.held("/mnt/disk1", cancel):  # released: free again
        pass


def test_one_action_per_file_others_are_refused_or_wait_their_turn():
    claims = FileClaims()
    order: list[str] = []
    with claims.claimed("Movies/A/poster.jpg"):
        refused = pytest.raises(Refused, match="another action on this file")
        with refused, claims.claimed("Movies/A/poster.jpg"):
            pass
        with claims.claimed("Movies/B/poster.jpg"):  # another file: free
            pass
        waiter_started = threading.Event()

        def waiter() -> None:
            waiter_started.set()
            with claims.claimed("Movies/A/poster.jpg", wait=True):
                order.append("second")

        thread = threading.Thread(target=waiter)
        thread.start()
        assert waiter_started.wait(timeout=10)
        order.append("first")
    thread.join(timeout=10)
    assert order == ["first", "second"]
    cancel = threading.Event()
    cancel.set()
    waiting = claims.claimed("Movies/A/poster.jpg", wait=True, cancel=cancel)
    with claims.claimed("Movies/A/poster.jpg"), pytest.raises(Cancelled), waiting:
        pass
