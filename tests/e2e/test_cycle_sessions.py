"""End to end: sessions as real Plex reports them. A transcoded session names no file (its
Part describes the transcoder's output); a Live TV session reads no library file at all.
The real `cacherr` command against the fake Plex and the mergerfs Unraid emulation:
the transcoded file is cached by a `playing` rule, never evicted nor moved while it
plays (SPEC §4, invariant 6), and Live TV fails nothing."""

from __future__ import annotations

from tests.e2e.cycle_support import cacherr, on_fast

OTHER = "Movies/Other Movie (2001)/Other Movie (2001).mkv"
PLAYING_RULE = ("rules:\n  - name: now-playing\n    select: playing\n"
                "    keep: {while: selected}\n    priority: 90\n")


def on_slow(sandbox, share_path: str) -> bool:
    return any((branch / share_path).is_file() for branch in sandbox.slow)


def play_other_transcoded_and_live_tv(fake) -> None:
    other = fake.scenario.movies[2]
    fake.start_session("owner", other.rating_key, transcode=True)
    fake.start_session("owner", 0, kind="live")


def test_a_transcoded_file_is_cached_by_a_playing_rule_and_not_evicted_while_it_plays(world):
    fake, sandbox, written, rules = world
    with_playing = rules.read_text().replace("rules:\n", PLAYING_RULE, 1)
    rules.write_text(with_playing)
    play_other_transcoded_and_live_tv(fake)
    first = cacherr(rules, "run", "--once", fake=fake)
    assert first.returncode == 0, first.stderr
    assert "failed: none" in first.stderr  # the selection's line: Live TV failed no source
    assert OTHER in on_fast(sandbox)

    # Nothing selects it any more, but the transcode goes on: it stays on the pool.
    rules.write_text(with_playing.replace(PLAYING_RULE, "rules:\n", 1))
    held = cacherr(rules, "run", "--once", fake=fake)
    assert held.returncode == 0, held.stderr
    assert OTHER in on_fast(sandbox)
    assert "in_session 1" in held.stderr

    fake.stop_session("owner")
    assert cacherr(rules, "run", "--once", fake=fake).returncode == 0
    assert OTHER not in on_fast(sandbox)
    for share_path, data in written.items():
        assert sandbox.read_view(share_path) == data, share_path


def test_a_transcoded_file_is_not_moved_off_its_disk_while_it_plays(world):
    fake, sandbox, written, rules = world
    text = rules.read_text().replace("  layout: union\n", "  layout: union\n  original: backup\n", 1)
    rules.write_text(text.replace("rules:\n", PLAYING_RULE, 1))
    play_other_transcoded_and_live_tv(fake)
    result = cacherr(rules, "run", "--once", fake=fake)
    assert result.returncode in (0, 1), result.stderr
    # the engine asks the sessions again before hiding the original: the transcode is seen
    assert f"cache {OTHER} failed (in_use): a player is reading {OTHER}" in result.stderr
    assert on_slow(sandbox, OTHER), "the original was moved away while it was transcoded"
    assert OTHER not in on_fast(sandbox)
    assert sandbox.read_view(OTHER) == written[OTHER]
    # everything nobody plays was cached (and moved) as usual
    assert "Movies/Trending Movie (2001)/Trending Movie (2001).mkv" in on_fast(sandbox)
