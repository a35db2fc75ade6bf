"""A real Prometheus scrapes cacherr's server: every dashboard panel has data, every alert runs."""

from __future__ import annotations

import time

import pytest

from cacherr.health import HealthState
from cacherr.metrics import CATALOGUE, Metrics
from cacherr.server import Server
from tests.e2e.prometheus_helper import (
    PrometheusError,
    Query,
    alert_queries,
    dashboard_queries,
    running_prometheus,
)

GIB = 1024 ** 3


def sample_metrics() -> Metrics:
    """Metrics as after a few cycles of a service with two rules."""
    metrics = Metrics(rule_names=["ondeck", "watchlist"])
    now = time.time()
    metrics.set_schedule(3600, next_run_at=now + 1800)
    metrics.set_budget(400 * GIB)
    metrics.heartbeat(at=now)
    metrics.record_run(started=now - 120, duration_seconds=42, ok=True)
    metrics.record_run(started=now - 60, duration_seconds=7, ok=False)
    metrics.record_move("to_cache", 3 * GIB)
    metrics.record_move("to_slow", GIB)
    metrics.record_failure("to_cache", "enospc")
    metrics.record_skip("in_session", 2)
    metrics.set_planned({"to_cache": 2, "to_slow": 1})
    metrics.set_cached({"ondeck": (12, 60 * GIB), "watchlist": (3, 20 * GIB)})
    metrics.set_filesystems(fast=(500 * GIB, 300 * GIB), slow=(8000 * GIB, 2000 * GIB))
    for source in ("plex", "plextv", "trakt"):
        metrics.set_source(source, up=source != "trakt")
    metrics.record_source_failure("trakt")
    metrics.set_active_sessions(2)
    metrics.record_playback_start(cache_hit=True)
    metrics.record_playback_start(cache_hit=False)
    metrics.record_notification("summary", ok=True)
    metrics.record_recovered(1)
    metrics.set_alerts_connected(False)  # Plex answers (source_up), its alert stream does not
    metrics.record_alert("playing")
    metrics.observe_playback_to_cached(0.4)
    return metrics


@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    """A cacherr server with sample metrics, and a Prometheus that has scraped it."""
    workdir = tmp_path_factory.mktemp("prometheus")
    state_dir = workdir / "state"
    state_dir.mkdir()
    health = HealthState(state_dir)
    health.heartbeat()
    with Server("127.0.0.1", 0, metrics=sample_metrics(), health=health) as server:
        host, port = server.address
        with running_prometheus(workdir, [f"{host}:{port}"]) as prometheus:
            prometheus.wait_for_targets_up(1)
            yield prometheus


def test_prometheus_scrapes_the_server_and_sees_every_catalogued_metric(scraped):
    targets = scraped.targets()
    assert [target["health"] for target in targets] == ["up"]
    names = set(scraped.api("label/__name__/values")["data"])
    for spec in CATALOGUE:
        exposed = f"{spec.name}_bucket" if spec.kind == "histogram" else spec.name
        assert exposed in names, spec.name


def test_every_dashboard_expression_returns_data_from_a_real_prometheus(scraped):
    queries = dashboard_queries()
    assert len(queries) > 20
    answers = scraped.wait_for_results(queries, timeout_seconds=30)
    assert set(answers) == {query.expr for query in queries}
    fill = scraped.query(next(q.expr for q in queries if "Cache fill'" in q.origin))
    assert float(fill["data"]["result"][0]["value"][1]) == pytest.approx(0.4)


def test_a_misspelled_metric_fails_the_non_empty_check(scraped):
    with pytest.raises(PrometheusError, match="empty"):
        scraped.wait_for_results([Query("typo", "cacherr_moved_byte_total")],
                                 timeout_seconds=0)


def test_every_alert_expression_is_accepted_and_the_rules_are_loaded(scraped):
    for query in alert_queries():
        document = scraped.query(query.expr)
        assert document["status"] == "success", (query.origin, document)
    groups = scraped.api("rules")["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert loaded == {query.origin.removeprefix("alert ") for query in alert_queries()}


def test_the_source_down_alert_expression_sees_the_down_source(scraped):
    expr = next(q.expr for q in alert_queries() if q.origin == "alert SourceDown")
    result = scraped.query(expr)["data"]["result"]
    assert [series["metric"]["source"] for series in result] == ["trakt"]


def test_the_alert_stream_down_expression_sees_a_stream_down_while_plex_answers(scraped):
    expr = next(q.expr for q in alert_queries() if q.origin == "alert AlertStreamDown")
    result = scraped.query(expr)["data"]["result"]
    assert [series["metric"]["__name__"] for series in result] == ["cacherr_alerts_connected"]
