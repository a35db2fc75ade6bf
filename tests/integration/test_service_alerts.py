"""The service with the fake Plex's real alert stream: a notification queues the session
round at once (bursts coalesce into one), the round plans the played file, polling is a
backstop while the stream is up and takes over when it is killed, and comes back to rest
when the stream reconnects. Jobs are run on the test's thread, one at a time."""

from __future__ import annotations

import queue

import pytest

from cacherr.config import loader
from cacherr.service import Service
from cacherr.sources.http import RetryPolicy
from cacherr.sources.select import select_all
from cacherr.state.ledger import Ledger
from cacherr.testing.fakealerts import PATH
from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.world import small_world, write_library
from tests.helpers import wait_for

RULES = """\
version: 1
plex: {{url: '{url}', token: OWNER-TOKEN, timeout: 5s, alerts: {alerts}}}
paths: [{{plex: /data/media, host: '{root}/media'}}]
cache: {{layout: symlink, symlink: {{dir: '{root}/ssd', plex_dir: /ssd}}}}
rules:
  - name: now-playing
    select: playing
    keep: {{until: watched}}
schedule: {{every: 1h, sessions_every: 2s}}
server: {{listen: '127.0.0.1:0'}}
state_dir: '{root}/state'
"""
OTHER = "Movies/Other Movie (2001)/Other Movie (2001).mkv"


def quick_select(config, **kwargs):
    """The real selection, without waiting between retries."""
    return select_all(config, retry=RetryPolicy(attempts=2, backoff_seconds=0.01), **kwargs)


@pytest.fixture
def world(tmp_path):
    for folder in ("media", "ssd", "state"):
        (tmp_path / folder).mkdir()
    with FakePlex(small_world()) as fake:
        write_library(tmp_path / "media", fake.scenario)
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES.format(url=fake.pms_url, root=tmp_path, alerts="true"))
        service = Service(loader.load(rules, {}, offline=True), dry_run=False, select=quick_select)
        service.ledger = Ledger.open(service.config.state_dir)
        try:
            yield fake, service, rules
        finally:
            if service.alerting is not None:
                service.alerting.stop()
            service.ledger.close()
            service.notifier.close(timeout_seconds=1)


def take_job(service: Service, timeout_seconds: float | None = None):
    """Take the next job as the planner thread does (a job taken may be queued again)."""
    name, function = (service._jobs.get(timeout=timeout_seconds) if timeout_seconds
                      else service._jobs.get_nowait())
    with service._jobs_lock:
        service._queued_jobs.discard(name)
    return name, function


def queued(service: Service) -> list[str]:
    """The names of the jobs waiting, taken off the queue."""
    names = []
    while True:
        try:
            names.append(take_job(service)[0])
        except queue.Empty:
            return names


def test_a_playback_notification_queues_the_session_round_which_plans_the_file(world):
    fake, service, _ = world
    service._start_alerts()
    wait_for(service.alerting.covers_sessions, what="the stream connected")
    fake.start_session("owner", fake.scenario.movies[2].rating_key)
    name, job = take_job(service, 10)
    assert name == "sessions"
    job()
    transfer = service.queue.take(timeout_seconds=1)
    assert (transfer.action.kind, transfer.action.relative_path) == ("cache", OTHER)
    assert service.metrics["cacherr_alerts_received_total"].labels("playing")._value.get() == 1
    assert service.metrics["cacherr_playback_starts_total"]._value.get() == 1


def test_a_burst_of_playbacks_queues_one_round(world):
    fake, service, _ = world
    service._start_alerts()
    wait_for(service.alerting.covers_sessions, what="the stream connected")
    for movie in fake.scenario.movies:
        fake.start_session("owner", movie.rating_key)
    wait_for(lambda: service.alerting.tracker.live_sessions == 3, timeout_seconds=10,
             what="three sessions seen on the stream")
    assert queued(service) == ["sessions"]


def test_polling_rests_while_the_stream_is_up_takes_over_when_killed_and_rests_again(world):
    fake, service, _ = world
    service._start_alerts()
    wait_for(service.alerting.covers_sessions, what="the stream connected")
    service.watch_sessions()  # the first poll (as the first cycle would have)
    service._poll_sessions()
    assert queued(service) == [], "the stream covers sessions: no poll"
    fake.fail("pms", PATH)
    assert fake.alerts.kill() == 1
    wait_for(lambda: not service.alerting.covers_sessions(), timeout_seconds=5,
             what="the stream seen down")
    assert service.metrics["cacherr_alerts_connected"]._value.get() == 0
    service._poll_sessions()
    assert queued(service) == ["sessions"], "polling took over"
    fake.clear_faults()
    wait_for(service.alerting.covers_sessions, timeout_seconds=10, what="the stream back")
    service._poll_sessions()
    assert queued(service) == []
    assert service.metrics["cacherr_alerts_connected"]._value.get() == 1


def test_the_backstop_poll_runs_even_while_the_stream_is_up(world, monkeypatch):
    fake, service, _ = world
    service._start_alerts()
    wait_for(service.alerting.covers_sessions, what="the stream connected")
    service.watch_sessions()
    monkeypatch.setattr("cacherr.service.BACKSTOP_SECONDS", 0.0)
    service._poll_sessions()
    assert queued(service) == ["sessions"]


def test_reloading_with_alerts_off_closes_the_stream_and_drops_its_gauge(world):
    fake, service, rules = world
    service._start_alerts()
    wait_for(lambda: fake.alerts.connected == 1, what="the stream connected")
    rules.write_text(rules.read_text().replace("alerts: true", "alerts: false"))
    service.reload()
    assert service.alerting is None
    wait_for(lambda: fake.alerts.connected == 0, timeout_seconds=5, what="the stream closed")
    assert b"cacherr_alerts_connected" not in service.metrics.exposition()
    service._poll_sessions()
    # the cycle the reload queued (new rules apply at once), then the poll
    assert queued(service) == ["cycle", "sessions"], "without the stream, every tick polls"


def test_while_plex_fails_every_tick_polls_even_with_the_stream_up(world):
    fake, service, _ = world
    service._start_alerts()
    wait_for(service.alerting.covers_sessions, what="the stream connected")
    fake.fail("pms", "/status/sessions", status=500)
    service.watch_sessions()  # a round (woken by an alert, or the backstop) finds Plex failing
    service._poll_sessions()
    assert queued(service) == ["sessions"], "a failing Plex is watched every tick"
    fake.clear_faults()
    service.watch_sessions()
    service._poll_sessions()
    assert queued(service) == [], "answered again: back to the stream"


def test_an_alert_ahead_of_the_session_list_is_checked_again_until_plex_lists_it(world):
    fake, service, _ = world
    service._start_alerts()
    wait_for(service.alerting.covers_sessions, what="the stream connected")
    session = {"user": "owner", "rating_key": fake.scenario.movies[2].rating_key,
               "state": "playing", "offset_ms": 0, "session_key": 77}
    fake.alerts.playing(session)  # notified before /status/sessions lists it
    name, job = take_job(service, 10)
    job()
    assert service.queue.idle(), "nothing listed yet, nothing planned"
    with fake.lock:
        fake.scenario.sessions.append(session)
    name, job = take_job(service, 5)  # queued again by the recheck, not by an alert
    assert name == "sessions"
    job()
    transfer = service.queue.take(timeout_seconds=1)
    assert transfer.action.relative_path == OTHER
