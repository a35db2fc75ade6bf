"""Notifications through real Apprise into a local HTTP sink, and `unraid://` into a fake script."""

from __future__ import annotations

import logging
import os
import socket
import stat
import time
from pathlib import Path

import pytest

from cacherr.config.model import NotifyConfig
from cacherr.metrics import Metrics
from cacherr.notify.notifier import CycleSummary, Notifier
from tests.notify_sink import Sink

GIB = 1024 ** 3
ALL_EVENTS = ("summary", "error", "cache_full", "source_down", "source_recovered")


@pytest.fixture
def sink():
    receiver = Sink()
    yield receiver
    receiver.close()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def make_notifier(urls, metrics, events=ALL_EVENTS, **options) -> Notifier:
    return Notifier(NotifyConfig(urls=tuple(urls), events=tuple(events)), metrics, **options)


def counts(metrics: Metrics, event: str) -> tuple[float, float]:
    get = metrics.registry.get_sample_value
    return (get("cacherr_notifications_total", {"event": event}),
            get("cacherr_notification_failures_total", {"event": event}))


def refused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_summary_of_a_cycle_that_moved_files_is_delivered(sink, metrics):
    notifier = make_notifier([sink.url()], metrics)
    sent = notifier.summary(CycleSummary(
        cached_files=3, cached_bytes=3 * GIB, evicted_files=1, evicted_bytes=GIB // 2,
        skipped_by_reason={"no_space": 2, "in_session": 1, "held": 0}, failed_files=1))
    assert sent is True
    assert notifier.flush(10)
    assert len(sink.received) == 1
    delivered = sink.received[0]
    assert delivered["path"] == "/hook"
    assert delivered["content_type"].startswith("application/json")
    assert delivered["json"]["title"] == "cacherr: cycle summary"
    assert delivered["json"]["message"] == (
        "Cached 3 file(s), 3.0 GiB.\nEvicted 1 file(s), 512.0 MiB.\n"
        "Skipped 3 (in_session 1, no_space 2).\nFailed 1; see the log.")
    assert delivered["json"]["type"] == "warning"
    assert counts(metrics, "summary") == (1, 0)
    notifier.close()


def test_a_cycle_that_moved_nothing_sends_no_summary(sink, metrics):
    notifier = make_notifier([sink.url()], metrics)
    assert notifier.summary(CycleSummary(skipped_by_reason={"no_space": 4})) is False
    assert notifier.flush(10)
    assert sink.received == []
    assert counts(metrics, "summary") == (0, 0)


def test_an_error_event_is_delivered_as_a_failure_with_tokens_redacted(sink, metrics):
    notifier = make_notifier([sink.url()], metrics)
    assert notifier.error("cycle failed",
                          "GET http://plex:32400/library?X-Plex-Token=abc123secret: 500")
    assert notifier.flush(10)
    (delivered,) = sink.received
    assert delivered["json"]["title"] == "cacherr: cycle failed"
    assert delivered["json"]["type"] == "failure"
    assert "abc123secret" not in delivered["json"]["message"]
    assert delivered["json"]["message"] == "GET http://plex:32400/... 500"
    assert counts(metrics, "error") == (1, 0)


def test_source_down_then_recovered_is_sent_once_each_and_not_repeated_while_down(
        sink, metrics):
    clock = [1000.0]
    notifier = make_notifier([sink.url()], metrics, clock=lambda: clock[0])
    assert notifier.source_state("plex", up=True) is False  # first seen up: nothing
    assert notifier.source_state("plex", up=False, error="connection refused") is True
    clock[0] += 600
    assert notifier.source_state("plex", up=False) is False
    assert notifier.source_state("plex", up=False) is False
    clock[0] += 600
    assert notifier.source_state("plex", up=True) is True
    assert notifier.source_state("plex", up=True) is False
    assert notifier.source_state("trakt", up=False) is True  # first seen down: sent
    assert notifier.flush(10)
    titles = [message["json"]["title"] for message in sink.received]
    assert titles == ["cacherr: plex is down", "cacherr: plex recovered",
                      "cacherr: trakt is down"]
    assert "connection refused" in sink.received[0]["json"]["message"]
    assert "after 20m" in sink.received[1]["json"]["message"]
    assert counts(metrics, "source_down") == (2, 0)
    assert counts(metrics, "source_recovered") == (1, 0)


def test_cache_full_is_sent_when_the_cache_fills_and_again_only_after_it_had_room(
        sink, metrics):
    notifier = make_notifier([sink.url()], metrics)
    assert notifier.cache_state(True, used_bytes=90 * GIB, budget_bytes=90 * GIB,
                                waiting_files=2, waiting_bytes=4 * GIB) is True
    assert notifier.cache_state(True, used_bytes=90 * GIB, budget_bytes=90 * GIB) is False
    assert notifier.cache_state(False, used_bytes=10 * GIB, budget_bytes=90 * GIB) is False
    assert notifier.cache_state(True, used_bytes=90 * GIB, budget_bytes=90 * GIB) is True
    assert notifier.flush(10)
    assert [m["json"]["title"] for m in sink.received] == ["cacherr: cache full"] * 2
    assert "2 wanted file(s), 4.0 GiB" in sink.received[0]["json"]["message"]


def test_an_event_not_listed_in_events_is_not_sent_or_counted(sink, metrics):
    notifier = make_notifier([sink.url()], metrics, events=("summary",))
    assert notifier.error("cycle failed", "boom") is False
    assert notifier.source_state("plex", up=False) is False
    assert notifier.send("cache_full", "t", "b") is False
    assert notifier.flush(10)
    assert sink.received == []
    assert counts(metrics, "error") == (0, 0)
    assert counts(metrics, "source_down") == (0, 0)


def test_a_refused_receiver_is_counted_as_a_failure_and_nothing_raises(metrics, caplog):
    caplog.set_level(logging.WARNING, logger="cacherr")
    notifier = make_notifier([f"json://127.0.0.1:{refused_port()}/hook"], metrics)
    assert notifier.error("cycle failed", "boom") is True
    assert notifier.flush(20)
    assert counts(metrics, "error") == (1, 1)
    assert any("notification error not sent (FAILURE)" in record.getMessage()
               for record in caplog.records)


def test_a_receiver_that_hangs_does_not_stall_the_caller_and_overflow_is_dropped(
        sink, metrics):
    sink.release.clear()  # the receiver takes the request and does not answer
    notifier = make_notifier([sink.url()], metrics, queue_size=1)
    started = time.monotonic()
    assert notifier.error("first") is True
    assert sink.arrived.wait(10)  # the worker is now stuck in the first request
    assert notifier.error("second") is True  # waits in the queue
    assert notifier.error("third") is False  # the queue is full: dropped, counted
    assert time.monotonic() - started < 5  # none of the calls waited for the receiver
    assert counts(metrics, "error") == (1, 1)
    sink.release.set()
    assert notifier.flush(20)
    assert [m["json"]["title"] for m in sink.received] == ["cacherr: first", "cacherr: second"]
    assert counts(metrics, "error") == (3, 1)
    notifier.close()


def test_credentials_in_urls_never_reach_the_logs(metrics, caplog):
    caplog.set_level(logging.DEBUG)
    port = refused_port()
    notifier = make_notifier([f"json://alice:hunter2pass@127.0.0.1:{port}/hook",
                              "nosuchscheme://bob:hunter3pass@example.invalid/x"], metrics)
    assert notifier.service_count == 1
    assert notifier.error("cycle failed", "boom")
    assert notifier.flush(20)
    assert counts(metrics, "error") == (1, 1)
    messages = [record.getMessage() for record in caplog.records]
    assert any("left out" in message for message in messages)
    assert any("not sent" in message for message in messages)
    for message in messages:
        assert "hunter2pass" not in message
        assert "hunter3pass" not in message


# -- unraid:// ------------------------------------------------------------------------


def fake_notify_script(directory: Path) -> tuple[Path, Path]:
    """Return (script, argv file): the script writes its arguments, NUL-separated."""
    script = directory / "notify"
    record = directory / "argv"
    script.write_text(f"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > {record}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script, record


def test_unraid_runs_the_notify_script_with_event_subject_description_message_and_level(
        tmp_path, metrics):
    script, record = fake_notify_script(tmp_path)
    notifier = Notifier(NotifyConfig(urls=("unraid://",), events=ALL_EVENTS,
                                     unraid_notify_script=str(script)), metrics)
    assert notifier.error("cycle failed", "first line\nsecond line")
    assert notifier.flush(20)
    argv = record.read_bytes().split(b"\0")[:-1]
    assert [argument.decode() for argument in argv] == [
        "-e", "cacherr", "-s", "cacherr: cycle failed", "-d", "first line",
        "-m", "first line\\nsecond line", "-i", "alert"]
    assert counts(metrics, "error") == (1, 0)


def test_unraid_reports_a_failure_when_the_script_is_missing(tmp_path, metrics):
    missing = tmp_path / "no-such-notify"
    notifier = Notifier(NotifyConfig(urls=("unraid://",), events=ALL_EVENTS,
                                     unraid_notify_script=str(missing)), metrics)
    assert notifier.summary(CycleSummary(cached_files=1, cached_bytes=GIB))
    assert notifier.flush(20)
    assert counts(metrics, "summary") == (1, 1)
    assert not os.path.exists(missing)
