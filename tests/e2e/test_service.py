"""The real `cacherr run` service: a first cycle at start, /health and /metrics, the
session watcher, SIGHUP reloads, SIGTERM stops (also during a copy), outages degrade."""

from __future__ import annotations

import os
import signal
import time

import pytest

from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.sandbox import Sandbox
from tests.e2e.cycle_support import populate, small_world, write_rules
from tests.e2e.service_support import RunningService
from tests.helpers import require_fuse, wait_for

TRENDING = "Movies/Trending Movie (2001)/Trending Movie (2001).mkv"
OTHER = "Movies/Other Movie (2001)/Other Movie (2001).mkv"
SERVICE = ("schedule: {every: 1h, sessions_every: 2s}\n"
           "server: {listen: '127.0.0.1:0'}\n")
PLAYING = ("rules:\n  - name: now-playing\n    select: playing\n"
           "    keep: {until: watched}\n    priority: 90\n")


@pytest.fixture
def world(tmp_path):
    require_fuse()
    scenario = small_world()
    with FakePlex(scenario) as fake, Sandbox(tmp_path / "sb", disks=2) as sandbox:
        written = populate(sandbox, scenario)
        rules = write_rules(tmp_path / "rules.yaml", fake, sandbox, tmp_path / "state")
        rules.write_text(rules.read_text().replace("rules:\n", PLAYING, 1) + SERVICE)
        yield fake, sandbox, written, rules, tmp_path / "state"


def on_fast(sandbox) -> set[str]:
    return {str(p.relative_to(sandbox.fast)) for p in sandbox.fast.rglob("*") if p.is_file()}


@pytest.fixture
def service(world):
    fake, sandbox, written, rules, state = world
    running = RunningService(rules, state, fake.env())
    yield running
    running.stop()


def test_the_service_caches_at_start_serves_health_and_metrics_and_stops_on_sigterm(world, service):
    fake, sandbox, written, rules, state = world
    wait_for(lambda: TRENDING in on_fast(sandbox), what="the first cycle's transfers")
    status, health = service.health()
    assert status == 200 and health["status"] == "ok", health
    wait_for(lambda: service.metric("cacherr_files_moved_total", 'direction="to_cache"') == 5,
             what="five files counted as moved")
    assert service.metric("cacherr_runs_total") == 1
    assert service.metric("cacherr_source_up", 'source="plex"') == 1
    # Both slow disks are folders of one file system here: it counts once.
    disk = os.statvfs(sandbox.slow[0])
    assert service.metric("cacherr_filesystem_size_bytes", 'role="slow"') == \
        disk.f_blocks * disk.f_frsize
    landing_status, landing = service.get("/")
    assert landing_status == 200 and b"/metrics" in landing
    cached_status, cached = service.get("/api/cached?rule=trending")
    assert cached_status == 200 and TRENDING.encode() in cached
    started = time.monotonic()
    assert service.stop(timeout_seconds=5) == 0
    assert time.monotonic() - started < 5
    assert not (state / "runtime.json").exists()


def test_a_new_playback_is_cached_by_the_session_watcher(world, service):
    fake, sandbox, written, rules, state = world
    wait_for(lambda: TRENDING in on_fast(sandbox), what="the first cycle")
    fake.start_session("owner", fake.scenario.movies[2].rating_key)
    wait_for(lambda: OTHER in on_fast(sandbox), timeout_seconds=15,
             what="the playing file on the fast branch")
    assert service.metric("cacherr_playback_starts_total") >= 1
    assert sandbox.read_view(OTHER) == written[OTHER]
    # The session poll says something at INFO only when it found something.
    log = service.output()
    assert "new playback(s): owner: Other Movie" in log
    assert "selection: 0 files wanted" not in log


def test_sighup_with_a_broken_file_keeps_the_old_rules_and_a_fixed_file_reloads(world, service):
    fake, sandbox, written, rules, state = world
    good = rules.read_text()
    rules.write_text(good + "colour: blue\n")
    service.signal(signal.SIGHUP)
    wait_for(lambda: service.metric("cacherr_config_last_reload_successful") == 0,
             what="the rejected reload")
    status, health = service.health()
    assert status == 200 and health["status"] == "degraded"
    assert "colour" in service.output()
    wait_for(lambda: service.metric("cacherr_runs_total") == 1, what="the first cycle")
    rules.write_text(good)
    service.signal(signal.SIGHUP)
    wait_for(lambda: service.metric("cacherr_config_last_reload_successful") == 1,
             what="the accepted reload")
    # the new rules apply at once: a cycle runs now, not at the next scheduled one (1h)
    wait_for(lambda: service.metric("cacherr_runs_total") == 2, what="a cycle after the reload")
    assert service.process.poll() is None


def test_a_plex_outage_degrades_health_but_never_fails_it(world, service):
    fake, sandbox, written, rules, state = world
    wait_for(lambda: TRENDING in on_fast(sandbox), what="the first cycle")
    fake.fail("pms", "/", status=500)
    wait_for(lambda: service.metric("cacherr_source_up", 'source="plex"') == 0,
             timeout_seconds=20, what="plex reported down by the session watcher or a cycle")
    status, health = service.health()
    assert status == 200 and health["status"] == "degraded"
    fake.clear_faults()
    assert service.process.poll() is None


def test_sigterm_during_a_copy_exits_0_quickly_and_leaves_no_partial_file(world):
    fake, sandbox, written, rules, state = world
    env = dict(fake.env(), CACHERR_TEST_KILL_AT="copy-chunk:2", CACHERR_TEST_KILL_SIGNAL="TERM")
    rules.write_text(rules.read_text())
    service = RunningService(rules, state, env)
    try:
        code = service.process.wait(timeout=10)
    finally:
        service.stop()
    assert code == 0, service.output()
    assert not [p for p in sandbox.fast.rglob("*") if "cacherr" in p.name]
    for path, data in written.items():
        assert sandbox.read_view(path) == data


def test_read_only_commands_work_and_evict_goes_through_the_running_service(world, service):
    import json

    from tests.e2e.cycle_support import cacherr

    fake, sandbox, written, rules, state = world
    wait_for(lambda: TRENDING in on_fast(sandbox), what="the first cycle")
    wait_for(lambda: len(on_fast(sandbox)) == 5, what="all five transfers")
    listing = cacherr(rules, "ls", "--format", "json", fake=fake)
    assert listing.returncode == 0 and len(json.loads(listing.stdout)) == 5
    assert cacherr(rules, "plan", "--json", fake=fake).returncode == 0
    result = cacherr(rules, "evict", f"/data/media/{TRENDING}", "--hold", "1d", fake=fake)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == f"evicted {TRENDING}"  # done when the command returns
    assert TRENDING not in on_fast(sandbox)
    assert sandbox.read_view(TRENDING) == written[TRENDING]
