"""The real `cacherr run` on Plex's alert stream: a playback (and its look-ahead), a
finished playback and a new movie are cached long before any poll or cycle could have;
with the stream killed mid-test, polling takes over within sessions_every + 2 s; when
it comes back, the new connection delivers again."""

from __future__ import annotations

import signal
import time

import pytest

from cacherr.testing.fakealerts import PATH
from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.sandbox import Sandbox
from cacherr.testing.scenarios import Movie, Version
from cacherr.testing.world import PLEX_ROOT, content
from tests.e2e.cycle_support import populate, small_world, write_rules
from tests.e2e.service_support import RunningService
from tests.helpers import require_fuse, wait_for

BODY = """\
rules:
  - name: now-playing
    select: playing
    episodes_ahead: 1
    keep: {until: watched}
    priority: 90
  - name: just-finished
    select: playing
    when: complete
    within: 1d
    episodes_ahead: 2
    keep: {while: selected}
    priority: 80
  - name: new
    select: recently_added
    within: 7d
    keep: {while: selected}
    priority: 50
schedule: {every: 1h, sessions_every: SESSIONS_EVERY}
server: {listen: '127.0.0.1:0'}
"""
EPISODE = "TV/Example Show/Season 02/Example Show - S02E0{}.mkv"
NEW_MOVIE = "Movies/New Movie (2024)/New Movie (2024).mkv"
# Far beyond what the checks below wait: only an alert can explain a quick cache.
LONG_POLL = "60s"


@pytest.fixture
def running(tmp_path):
    require_fuse()
    scenario = small_world()
    with FakePlex(scenario) as fake, Sandbox(tmp_path / "sb", disks=2) as sandbox:
        populate(sandbox, scenario)
        rules = write_rules(tmp_path / "rules.yaml", fake, sandbox, tmp_path / "state",
                            BODY.replace("SESSIONS_EVERY", LONG_POLL))
        service = RunningService(rules, tmp_path / "state", fake.env())
        try:
            wait_for(lambda: (service.metric("cacherr_runs_total") or 0) >= 1
                     and service.metric("cacherr_alerts_connected") == 1,
                     what="the first cycle and the stream")
            yield fake, sandbox, service, rules
        finally:
            service.stop()


def cached_within(sandbox, paths, seconds: float, what: str) -> float:
    started = time.monotonic()
    wait_for(lambda: all((sandbox.fast / p).exists() for p in paths), timeout_seconds=seconds,
             interval_seconds=0.02, what=what)
    return time.monotonic() - started


def episode_key(fake: FakePlex, season: int, index: int) -> int:
    show = fake.scenario.shows[0]
    return next(e.rating_key for s in show.seasons if s.index == season
                for e in s.episodes if e.index == index)


def test_alerts_cache_playbacks_finished_plays_and_new_movies_and_polling_covers_a_dead_stream(
        running):
    fake, sandbox, service, rules = running

    # A playback: the episode and its look-ahead, long before the 60 s poll.
    fake.start_session("owner", episode_key(fake, 2, 1))
    cached_within(sandbox, [EPISODE.format(1), EPISODE.format(2)], 10, "the playback")
    assert service.metric("cacherr_alerts_received_total", 'type="playing"') >= 1
    wait_for(lambda: service.metric("cacherr_playback_to_cached_seconds_count") == 1,
             what="the playback's delay observed")
    assert service.metric("cacherr_playback_to_cached_seconds_bucket", 'le="5.0"') == 1

    # A finished playback: `when: complete` with two ahead brings the third episode.
    fake.mark_watched("owner", episode_key(fake, 2, 1), at=time.time())
    fake.stop_session("owner")
    cached_within(sandbox, [EPISODE.format(3)], 10, "the episode after the finished one")

    # A new movie: the timeline wakes the recently_added round, an hour before the cycle.
    plex_path = f"{PLEX_ROOT}/{NEW_MOVIE}"
    sandbox.write_file(NEW_MOVIE, content(plex_path, 40 * 1024), disk=1)
    fake.add_movie(Movie(150, "New Movie", 2024, [Version([(plex_path, 40 * 1024)])],
                         added_at=time.time()))
    cached_within(sandbox, [NEW_MOVIE], 10, "the new movie")
    assert service.metric("cacherr_alerts_received_total", 'type="timeline"') >= 2

    # The stream dies and stays refused: polling every sessions_every takes over.
    reloaded = service.metric("cacherr_config_last_reload_success_timestamp_seconds")
    rules.write_text(rules.read_text().replace(f"sessions_every: {LONG_POLL}",
                                               "sessions_every: 2s"))
    service.signal(signal.SIGHUP)
    wait_for(lambda: service.metric(
        "cacherr_config_last_reload_success_timestamp_seconds") != reloaded, what="the reload")
    fake.fail("pms", PATH)
    fake.alerts.kill()
    wait_for(lambda: service.metric("cacherr_alerts_connected") == 0, timeout_seconds=5,
             what="the stream seen down")
    other = "Movies/Other Movie (2001)/Other Movie (2001).mkv"
    fake.start_session("owner", fake.scenario.movies[2].rating_key)
    delay = cached_within(sandbox, [other], 2 + 2 + 5, "the playback after the kill")
    assert delay <= 2 + 2, f"polling took {delay:.1f}s, more than sessions_every + 2 s"
    assert fake.alerts.connected == 0

    # Plex accepts the stream again: it reconnects and delivers.
    fake.clear_faults()
    wait_for(lambda: service.metric("cacherr_alerts_connected") == 1, timeout_seconds=30,
             what="the stream back")
    playing_before = service.metric("cacherr_alerts_received_total", 'type="playing"')
    fake.start_session("owner", fake.scenario.movies[0].rating_key)
    wait_for(lambda: service.metric("cacherr_alerts_received_total", 'type="playing"')
             > playing_before, timeout_seconds=5, what="a message on the new connection")
    assert service.process.poll() is None
