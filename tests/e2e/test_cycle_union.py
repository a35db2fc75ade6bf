"""End to end: the real `cacherr` command against the fake Plex and the mergerfs Unraid
emulation caches On Deck with the next episodes, a watchlist movie and a Trakt movie,
and evicts them as the keep rules say, every merged-view path byte-identical throughout."""

from __future__ import annotations

import json
import os

import pytest

from tests.e2e.cycle_support import cacherr, on_fast

EPISODE = "TV/Example Show/Season {s:02d}/Example Show - S{s:02d}E{e:02d}.mkv"
TRENDING = "Movies/Trending Movie (2001)/Trending Movie (2001).mkv"
WATCHLIST = "Movies/Watchlist Movie (2001)/Watchlist Movie (2001).mkv"
OTHER = "Movies/Other Movie (2001)/Other Movie (2001).mkv"


def assert_view_intact(sandbox, written):
    for share_path, data in written.items():
        assert sandbox.read_view(share_path) == data, share_path
    for branch in sandbox.slow:  # shadow: every original stays where it was
        for path in branch.rglob("*"):
            if path.is_file():
                assert written[str(path.relative_to(branch))] == path.read_bytes()
    assert not [p for p in sandbox.fast.rglob(".*cacherr*")], "a working file was left"


def test_plan_shows_the_actions_and_changes_nothing(world, tmp_path):
    fake, sandbox, written, rules = world
    result = cacherr(rules, "plan", "--json", fake=fake)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    cached = {row["path"] for row in plan["actions"] if row["action"] == "cache"}
    assert cached == {EPISODE.format(s=1, e=3), EPISODE.format(s=2, e=1),
                      EPISODE.format(s=2, e=2), WATCHLIST, TRENDING}
    row = next(r for r in plan["actions"] if r["path"] == TRENDING)
    assert row["rules"] == ["trending"] and row["to"] == f"{sandbox.fast}/{TRENDING}"
    assert plan["totals"]["add_bytes"] == sum(len(written[p]) for p in cached)
    assert on_fast(sandbox) == set()
    assert not (tmp_path / "state" / "cacherr.db").exists()


def test_a_cycle_caches_the_selection_and_evicts_by_the_keep_rules(world):
    fake, sandbox, written, rules = world
    first = cacherr(rules, "run", "--once", fake=fake)
    assert first.returncode == 0, first.stderr
    assert "cached 5 files" in first.stderr
    assert on_fast(sandbox) == {EPISODE.format(s=1, e=3), EPISODE.format(s=2, e=1),
                                EPISODE.format(s=2, e=2), WATCHLIST, TRENDING}
    assert_view_intact(sandbox, written)

    again = cacherr(rules, "run", "--once", fake=fake)
    assert again.returncode == 0 and "cached 0 files" in again.stderr and "evicted 0" in again.stderr

    # The owner finishes S01E03 and drops the watchlist movie.
    show = fake.scenario.shows[0]
    fake.mark_watched("owner", show.seasons[0].episodes[2].rating_key)
    fake.watchlist_remove("owner", fake.scenario.movies[1].guid)
    third = cacherr(rules, "run", "--once", fake=fake)
    assert third.returncode == 0, third.stderr
    assert on_fast(sandbox) == {EPISODE.format(s=2, e=1), EPISODE.format(s=2, e=2),
                                EPISODE.format(s=2, e=3), TRENDING}
    assert "evicted 2" in third.stderr
    assert_view_intact(sandbox, written)


def test_a_second_run_while_one_holds_the_lock_exits_1(world, tmp_path):
    from cacherr.state.lock import RunLock

    fake, sandbox, written, rules = world
    with RunLock(tmp_path / "state"):
        result = cacherr(rules, "run", "--once", fake=fake)
    assert result.returncode == 1 and "another cacherr" in result.stderr
    assert on_fast(sandbox) == set()


def test_an_unreachable_plex_fails_the_run_and_evicts_nothing(world):
    fake, sandbox, written, rules = world
    assert cacherr(rules, "run", "--once", fake=fake).returncode == 0
    before = on_fast(sandbox)
    fake.fail("pms", "/", status=500)
    result = cacherr(rules, "run", "--once", fake=fake)
    assert result.returncode == 1
    assert "sources down: plex" in result.stderr
    assert on_fast(sandbox) == before


def test_ls_shows_what_is_cached_why_and_for_whom(world):
    fake, sandbox, written, rules = world
    assert cacherr(rules, "run", "--once", fake=fake).returncode == 0
    listing = json.loads(cacherr(rules, "ls", "--format", "json", fake=fake).stdout)
    assert {entry["path"] for entry in listing} == on_fast(sandbox)
    trending = next(entry for entry in listing if entry["path"] == TRENDING)
    assert trending["rules"] == ["trending"] and trending["size_bytes"] == len(written[TRENDING])
    assert trending["host_path"] == f"{sandbox.view}/{TRENDING}"
    only = json.loads(cacherr(rules, "ls", "--rule", "watchlists", "--format", "json",
                              fake=fake).stdout)
    assert [entry["path"] for entry in only] == [WATCHLIST]
    assert json.loads(cacherr(rules, "ls", "--user", "nobody", "--format", "json",
                              fake=fake).stdout) == []
    rows = cacherr(rules, "ls", "--format", "csv", fake=fake).stdout.splitlines()
    assert rows[0] == "path,size_bytes,kind,rules,users,since,host_path" and len(rows) == 6


def test_evict_puts_a_file_back_by_its_plex_path_and_holds_it(world):
    fake, sandbox, written, rules = world
    assert cacherr(rules, "run", "--once", fake=fake).returncode == 0
    result = cacherr(rules, "evict", f"/data/media/{TRENDING}", "--hold", "1d", fake=fake)
    assert result.returncode == 0, result.stderr
    assert TRENDING not in on_fast(sandbox)
    assert_view_intact(sandbox, written)
    again = cacherr(rules, "run", "--once", fake=fake)
    assert TRENDING not in on_fast(sandbox), "a held file was cached again"
    assert "held 1" in again.stderr


def test_evict_refuses_paths_it_did_not_cache_or_outside_the_roots(world):
    fake, sandbox, written, rules = world
    assert cacherr(rules, "run", "--once", fake=fake).returncode == 0
    before = on_fast(sandbox)
    result = cacherr(rules, "evict", f"{sandbox.view}/{OTHER}", "/etc/passwd",
                     f"{sandbox.view}/../../etc/passwd", fake=fake)
    assert result.returncode == 2
    assert "not cached by cacherr" in result.stderr and "outside the configured roots" in result.stderr
    assert on_fast(sandbox) == before


def test_evict_all_empties_the_cache_and_keeps_every_original(world):
    fake, sandbox, written, rules = world
    assert cacherr(rules, "run", "--once", fake=fake).returncode == 0
    (sandbox.fast / "Movies" / "not-ours.mkv").write_bytes(b"someone else's file")
    result = cacherr(rules, "evict", "--all", fake=fake)
    assert result.returncode == 0, result.stderr
    assert on_fast(sandbox) == {"Movies/not-ours.mkv"}
    assert_view_intact(sandbox, written)
    assert json.loads(cacherr(rules, "ls", "--format", "json", fake=fake).stdout) == []


def test_until_watched_keeps_a_played_file_until_its_user_has_watched_it(world):
    fake, sandbox, written, rules = world
    text = rules.read_text().replace("rules:\n", "rules:\n  - name: now-playing\n"
                                     "    select: playing\n    keep: {until: watched}\n"
                                     "    priority: 90\n", 1)
    rules.write_text(text)
    other = fake.scenario.movies[2]
    fake.start_session("owner", other.rating_key)
    assert cacherr(rules, "run", "--once", fake=fake).returncode == 0
    assert OTHER in on_fast(sandbox)
    fake.stop_session("owner")
    assert cacherr(rules, "run", "--once", fake=fake).returncode == 0
    assert OTHER in on_fast(sandbox), "evicted before its user watched it"
    import time

    fake.mark_watched("owner", other.rating_key, at=time.time())
    result = cacherr(rules, "run", "--once", fake=fake)
    assert result.returncode == 0, result.stderr
    assert OTHER not in on_fast(sandbox)
    assert_view_intact(sandbox, written)


def test_a_file_someone_is_playing_is_not_evicted_until_the_session_ends(world):
    fake, sandbox, written, rules = world
    assert cacherr(rules, "run", "--once", fake=fake).returncode == 0
    episode = fake.scenario.shows[0].seasons[0].episodes[2]
    fake.mark_watched("owner", episode.rating_key)
    fake.start_session("owner", episode.rating_key)
    held = cacherr(rules, "run", "--once", fake=fake)
    assert held.returncode == 0, held.stderr
    assert EPISODE.format(s=1, e=3) in on_fast(sandbox)
    assert "in_session 1" in held.stderr
    fake.stop_session("owner")
    assert cacherr(rules, "run", "--once", fake=fake).returncode == 0
    assert EPISODE.format(s=1, e=3) not in on_fast(sandbox)


def test_the_mover_list_follows_the_ledger_through_caching_eviction_and_a_crash(world, tmp_path):
    from cacherr.cycle.moverlist import MoverList

    fake, sandbox, written, rules = world
    exclude = tmp_path / "state" / "mover-exclude.txt"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    exclude.write_text("/mnt/cache/Users/own-line.mkv\n")
    assert cacherr(rules, "run", "--once", fake=fake).returncode == 0
    listed = MoverList(exclude)
    assert on_fast(sandbox) and all(listed.covers(sandbox.fast / p) for p in on_fast(sandbox))
    # Fully cached folders are one line each; temporary files are covered by a pattern.
    assert len(listed.entries()) < len(on_fast(sandbox)) + 2
    assert exclude.read_text().splitlines()[0] == "/mnt/cache/Users/own-line.mkv"

    # Killed in the middle of a copy: the entry was written before the copy started.
    fake.watchlist_add("owner", fake.scenario.movies[2].guid)
    killed = cacherr(rules, "run", "--once", fake=fake,
                     env={"CACHERR_TEST_KILL_AT": "copy-chunk:1"})
    assert killed.returncode == -9
    assert MoverList(exclude).covers(str(sandbox.fast / OTHER))
    assert OTHER not in on_fast(sandbox)

    # The next command that takes the lock settles the list from the ledger.
    assert cacherr(rules, "evict", "--all", fake=fake).returncode == 0
    assert MoverList(exclude).entries() == []
    assert exclude.read_text().splitlines()[0] == "/mnt/cache/Users/own-line.mkv"
    assert_view_intact(sandbox, written)


@pytest.mark.parametrize("mode", ["any", "same_disk"])
def test_defer_while_playing_holds_transfers_while_someone_streams(world, mode):
    fake, sandbox, written, rules = world
    rules.write_text(rules.read_text().replace("  min_free: 1MiB\n",
                                               f"  min_free: 1MiB\n  defer_while_playing: {mode}\n"))
    fake.start_session("owner", fake.scenario.movies[2].rating_key)  # Other Movie streams
    result = cacherr(rules, "run", "--once", fake=fake)
    assert result.returncode == 0, result.stderr
    cached = on_fast(sandbox)
    other_disk = next(b for b in sandbox.slow if (b / OTHER).exists())
    if mode == "same_disk":
        same = {p for p in written if (other_disk / p).exists()} - {OTHER}
        assert same and not (cached & same), "a transfer on the streamed disk ran"
        assert cached, "transfers on other disks were held too"
    else:
        assert cached == set()
    assert "deferred" in result.stderr


def test_a_wanted_file_already_on_the_pool_is_adopted_without_a_copy_and_released_later(world, tmp_path):
    from cacherr.cycle.moverlist import MoverList

    fake, sandbox, written, rules = world
    # A fresh download Unraid put on the pool: the same file on the fast branch only.
    slow_copy = next(b / TRENDING for b in sandbox.slow if (b / TRENDING).exists())
    fast_copy = sandbox.fast / TRENDING
    fast_copy.parent.mkdir(parents=True)
    fast_copy.write_bytes(written[TRENDING])
    slow_copy.unlink()
    inode = fast_copy.stat().st_ino
    plan = json.loads(cacherr(rules, "plan", "--json", fake=fake).stdout)
    assert [r["action"] for r in plan["actions"] if r["path"] == TRENDING] == ["adopt"]
    result = cacherr(rules, "run", "--once", fake=fake)
    assert result.returncode == 0, result.stderr
    assert "adopted 1" in result.stderr
    assert fast_copy.stat().st_ino == inode, "an adopted file is not copied"
    listing = json.loads(cacherr(rules, "ls", "--format", "json", fake=fake).stdout)
    assert next(e for e in listing if e["path"] == TRENDING)["kind"] == "adopted"
    exclude = tmp_path / "state" / "mover-exclude.txt"
    assert MoverList(exclude).covers(str(fast_copy))

    # Trakt drops it: released from the ledger and the list, left on the pool for the mover.
    fake.scenario.trakt_lists["movies/trending"] = []
    assert cacherr(rules, "run", "--once", fake=fake).returncode == 0
    assert fast_copy.exists() and fast_copy.read_bytes() == written[TRENDING]
    assert not MoverList(exclude).covers(str(fast_copy))
    listing = json.loads(cacherr(rules, "ls", "--format", "json", fake=fake).stdout)
    assert TRENDING not in {e["path"] for e in listing}


def test_subtitles_travel_with_their_video_through_a_cycle(world, tmp_path):
    from cacherr.cycle.moverlist import MoverList

    fake, sandbox, written, rules = world
    disk = next(b for b in sandbox.slow if (b / TRENDING).exists())
    subtitle = TRENDING.replace(".mkv", ".en.forced.srt")
    (disk / subtitle).write_text("1\n00:00:01,000 --> 00:00:02,000\nHello\n")
    assert cacherr(rules, "run", "--once", fake=fake).returncode == 0
    assert (sandbox.fast / subtitle).read_text() == (disk / subtitle).read_text()
    assert MoverList(tmp_path / "state" / "mover-exclude.txt").covers(str(sandbox.fast / subtitle))
    listed = {e["path"] for e in json.loads(cacherr(rules, "ls", "--format", "json", fake=fake).stdout)}
    assert subtitle not in listed and TRENDING in listed
    assert cacherr(rules, "evict", "--all", fake=fake).returncode == 0
    assert not (sandbox.fast / subtitle).exists() and (disk / subtitle).exists()
    assert MoverList(tmp_path / "state" / "mover-exclude.txt").entries() == []


def test_sidecars_with_names_cacherr_refuses_never_stop_a_cycle(world, tmp_path):
    """Issue 11, point 7: a subtitle with a latin-1 byte (not UTF-8) or a name Mover
    Tuning's shell would run is skipped and counted, every cycle; its video is cached."""
    from cacherr.cycle.moverlist import MoverList

    fake, sandbox, written, rules = world
    disk = next(b for b in sandbox.slow if (b / TRENDING).exists())
    folder = (disk / TRENDING).parent
    latin1 = os.path.join(os.fsencode(folder), b"Trending Movie (2001).fr\xe9.srt")
    with open(latin1, "wb") as handle:
        handle.write(b"1\n00:00:01,000 --> 00:00:02,000\nCaf\xe9\n")
    (folder / "Trending Movie (2001).$(touch PWNED).srt").write_text("1\n")
    runs = [cacherr(rules, "run", "--once", fake=fake) for _ in range(2)]  # every cycle
    for done in runs:
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    assert "name 2" in runs[0].stderr.splitlines()[-1]
    assert (sandbox.fast / TRENDING).read_bytes() == written[TRENDING]
    assert sorted(p.name for p in (sandbox.fast / TRENDING).parent.iterdir()) == [
        "Trending Movie (2001).mkv"]
    assert not list(tmp_path.rglob("PWNED")) and not list(sandbox.root.rglob("PWNED"))
    assert MoverList(tmp_path / "state" / "mover-exclude.txt").covers(sandbox.fast / TRENDING)
