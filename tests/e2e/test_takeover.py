"""A PlexCache user's cache is taken over: its pool copies are adopted, its `.plexcached`
backups are restored on the array, and every file stays intact and tracked."""

from __future__ import annotations

import json

import pytest

from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.sandbox import Sandbox
from tests.e2e.cycle_support import cacherr, populate, small_world, write_rules
from tests.helpers import require_fuse

WITH_BACKUP = "Movies/Trending Movie (2001)/Trending Movie (2001).mkv"
MOVED = "Movies/Other Movie (2001)/Other Movie (2001).mkv"
LISTED = "TV/Example Show/Season 01/Example Show - S01E01.mkv"


@pytest.fixture
def plexcached(tmp_path):
    """A sandbox as PlexCache-R leaves it: one file copied to the pool with the array copy
    renamed to .plexcached, one moved (array copy gone), one copied and listed."""
    require_fuse()
    scenario = small_world()
    with FakePlex(scenario) as fake, Sandbox(tmp_path / "sb", disks=2) as sandbox:
        written = populate(sandbox, scenario)
        for relative in (WITH_BACKUP, MOVED, LISTED):
            slow = next(b / relative for b in sandbox.slow if (b / relative).exists())
            pool = sandbox.fast / relative
            pool.parent.mkdir(parents=True, exist_ok=True)
            pool.write_bytes(written[relative])
            if relative == WITH_BACKUP:
                slow.rename(slow.with_name(slow.name + ".plexcached"))
            elif relative == MOVED:
                slow.unlink()
        listing = tmp_path / "plexcache_cached_files.txt"
        listing.write_text(f"{sandbox.fast / LISTED}\n{sandbox.fast / MOVED}\n")
        rules = write_rules(tmp_path / "rules.yaml", fake, sandbox, tmp_path / "state")
        yield fake, sandbox, written, rules, listing


def test_a_plexcache_cache_is_taken_over_intact_and_tracked(plexcached):
    fake, sandbox, written, rules, listing = plexcached
    result = cacherr(rules, "init", "--take-over", str(listing), fake=fake)
    assert result.returncode == 0, result.stderr
    assert "took over 3 file(s), restored 1 backup(s), 0 problem(s)" in result.stderr
    for relative, data in written.items():
        assert sandbox.read_view(relative) == data, relative
    assert not list(sandbox.root.rglob("*.plexcached"))
    slow_copy = next(b / WITH_BACKUP for b in sandbox.slow if (b / WITH_BACKUP).exists())
    assert slow_copy.read_bytes() == written[WITH_BACKUP]
    tracked = json.loads(cacherr(rules, "ls", "--format", "json", fake=fake).stdout)
    assert {e["path"]: e["kind"] for e in tracked} == {
        WITH_BACKUP: "adopted", MOVED: "adopted", LISTED: "adopted"}
    # From now on cacherr manages them: evict --all leaves every file intact.
    assert cacherr(rules, "evict", "--all", fake=fake).returncode == 0
    for relative, data in written.items():
        assert sandbox.read_view(relative) == data, relative


@pytest.mark.parametrize("junk", ["huge", "binary"])
def test_a_huge_or_binary_list_is_refused_before_anything_is_touched(plexcached, junk):
    fake, sandbox, written, rules, listing = plexcached
    if junk == "huge":
        with listing.open("wb") as handle:  # sparse: 17 MiB that take no disk
            handle.truncate(17 * 1024 * 1024)
        expected = "larger than a list of cached files can be (16 MiB)"
    else:
        listing.write_bytes(b"\xff\xfe\x00binary\n")
        expected = "is not UTF-8 text"
    before = {p: p.stat().st_mtime_ns for p in sandbox.root.rglob("*") if p.is_file()}
    result = cacherr(rules, "init", "--take-over", str(listing), fake=fake)
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (rules.parent / "state").exists()  # no lock, no ledger
    assert {p: p.stat().st_mtime_ns for p in sandbox.root.rglob("*") if p.is_file()} == before
