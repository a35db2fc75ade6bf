"""The metric catalogue: SPEC §7 names, bounded label sets at 0, a clean exposition."""

from __future__ import annotations

import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cacherr import metrics as catalogue
from cacherr.metrics import CATALOGUE, CATALOGUE_NAMES, Metrics, create_registry
from tests.helpers import require_tool

SPEC_NAMES = {
    "cacherr_build_info", "cacherr_config_last_reload_successful", "cacherr_runs_total",
    "cacherr_run_failures_total", "cacherr_last_run_timestamp_seconds",
    "cacherr_last_success_timestamp_seconds", "cacherr_run_duration_seconds",
    "cacherr_next_run_timestamp_seconds", "cacherr_files_moved_total",
    "cacherr_moved_bytes_total", "cacherr_move_failures_total", "cacherr_moves_skipped_total",
    "cacherr_planned_moves", "cacherr_cached_files", "cacherr_cached_bytes",
    "cacherr_filesystem_size_bytes", "cacherr_filesystem_avail_bytes", "cacherr_source_up",
    "cacherr_source_request_failures_total", "cacherr_active_sessions",
    "cacherr_notifications_total", "cacherr_notification_failures_total",
    "cacherr_recovered_actions_total", "cacherr_playback_starts_total",
    "cacherr_playback_cache_hits_total", "cacherr_job_failures_total",
    "cacherr_scheduler_heartbeat_timestamp_seconds",
}
SPEC_LABELS = {
    "cacherr_build_info": ("version",),
    "cacherr_files_moved_total": ("direction",),
    "cacherr_moved_bytes_total": ("direction",),
    "cacherr_move_failures_total": ("direction", "reason"),
    "cacherr_moves_skipped_total": ("reason",),
    "cacherr_planned_moves": ("direction",),
    "cacherr_cached_files": ("rule",),
    "cacherr_cached_bytes": ("rule",),
    "cacherr_filesystem_size_bytes": ("role",),
    "cacherr_filesystem_avail_bytes": ("role",),
    "cacherr_source_up": ("source",),
    "cacherr_source_request_failures_total": ("source",),
    "cacherr_notifications_total": ("event",),
    "cacherr_notification_failures_total": ("event",),
    "cacherr_job_failures_total": ("job",),
}


def exposed_samples(metrics: Metrics) -> dict[str, list]:
    """Given Metrics, return {family name: samples} parsed from its text exposition."""
    text = metrics.exposition().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def sample_names(metrics: Metrics) -> set[str]:
    return {sample.name for samples in exposed_samples(metrics).values() for sample in samples}


def test_every_spec_metric_is_in_the_catalogue_with_its_labels():
    assert SPEC_NAMES <= CATALOGUE_NAMES
    by_name = {spec.name: spec for spec in CATALOGUE}
    for name, labels in SPEC_LABELS.items():
        assert by_name[name].labels == labels, name
    assert by_name["cacherr_run_duration_seconds"].kind == "histogram"


def test_every_catalogued_metric_is_exposed_under_its_catalogue_name():
    names = sample_names(Metrics(rule_names=["ondeck"]))
    for spec in CATALOGUE:
        if spec.kind == "histogram":
            assert f"{spec.name}_bucket" in names, spec.name
            assert f"{spec.name}_count" in names, spec.name
        else:
            assert spec.name in names, spec.name


def test_every_catalogued_metric_has_help_text_and_the_cacherr_prefix():
    for spec in CATALOGUE:
        assert spec.name.startswith("cacherr_")
        assert len(spec.help) > 10 and spec.help.endswith("."), spec.name
        assert spec.name.endswith("_total") == (spec.kind == "counter"), spec.name


def test_every_bounded_label_set_is_exposed_at_zero_before_any_event():
    samples = exposed_samples(Metrics(rule_names=["ondeck", "watchlist"]))
    expected = {
        "cacherr_files_moved": [{"direction": d} for d in catalogue.DIRECTIONS],
        "cacherr_moved_bytes": [{"direction": d} for d in catalogue.DIRECTIONS],
        "cacherr_move_failures": [{"direction": d, "reason": r} for d in catalogue.DIRECTIONS
                                  for r in catalogue.MOVE_FAILURE_REASONS],
        "cacherr_moves_skipped": [{"reason": r} for r in catalogue.SKIP_REASONS],
        "cacherr_planned_moves": [{"direction": d} for d in catalogue.DIRECTIONS],
        "cacherr_cached_files": [{"rule": r} for r in ("ondeck", "watchlist")],
        "cacherr_cached_bytes": [{"rule": r} for r in ("ondeck", "watchlist")],
        "cacherr_filesystem_size_bytes": [{"role": r} for r in catalogue.ROLES],
        "cacherr_filesystem_avail_bytes": [{"role": r} for r in catalogue.ROLES],
        "cacherr_source_up": [{"source": s} for s in catalogue.SOURCES],
        "cacherr_source_request_failures": [{"source": s} for s in catalogue.SOURCES],
        "cacherr_source_skipped_elements": [{"source": s} for s in catalogue.SOURCES],
        "cacherr_notifications": [{"event": e} for e in catalogue.EVENTS],
        "cacherr_notification_failures": [{"event": e} for e in catalogue.EVENTS],
        "cacherr_job_failures": [{"job": j} for j in catalogue.JOBS],
        "cacherr_alerts_received": [{"type": t} for t in catalogue.ALERT_TYPES],
    }
    for family, label_list in expected.items():
        found = {tuple(sorted(sample.labels.items())): sample.value
                 for sample in samples[family]}
        wanted = {tuple(sorted(labels.items())) for labels in label_list}
        assert set(found) == wanted, family
        assert set(found.values()) == {0.0}, family


def test_a_new_metrics_object_reports_its_rules_file_as_loaded():
    metrics = Metrics()
    get = metrics.registry.get_sample_value
    assert get("cacherr_config_last_reload_successful") == 1
    assert get("cacherr_config_last_reload_success_timestamp_seconds") > 0
    metrics.record_config_reload(False)
    assert get("cacherr_config_last_reload_successful") == 0


def test_no_created_series_are_exposed():
    metrics = Metrics()
    metrics.record_run(started=1000.0, duration_seconds=3.0, ok=True)
    metrics.record_move("to_cache", 10)
    text = metrics.exposition().decode()
    assert "_created" not in text
    assert "cacherr_runs_total 1.0" in text


def test_the_process_and_python_collectors_are_on_the_registry():
    names = sample_names(Metrics())
    assert "python_info" in names
    assert "python_gc_collections_total" in names
    assert "process_start_time_seconds" in names


def test_two_metrics_objects_on_their_own_registries_do_not_collide():
    first, second = Metrics(create_registry()), Metrics(create_registry())
    first.record_move("to_cache", 5)
    assert second.registry.get_sample_value(
        "cacherr_files_moved_total", {"direction": "to_cache"}) == 0.0
    assert first.registry.get_sample_value(
        "cacherr_files_moved_total", {"direction": "to_cache"}) == 1.0


def test_promtool_check_metrics_passes_on_the_exposition():
    promtool = require_tool("promtool")
    metrics = Metrics(rule_names=["ondeck", "now-playing"])
    metrics.record_run(started=1000.0, duration_seconds=42.0, ok=False)
    metrics.record_failure("to_slow", "verify_failed")
    completed = subprocess.run([promtool, "check", "metrics"], input=metrics.exposition(),
                               capture_output=True, timeout=30, check=False)
    assert completed.returncode == 0, completed.stdout.decode() + completed.stderr.decode()


def test_a_run_sets_counters_timestamps_and_the_duration_histogram():
    metrics = Metrics()
    get = metrics.registry.get_sample_value
    metrics.record_run(started=1000.0, duration_seconds=20.0, ok=True)
    metrics.record_run(started=5000.0, duration_seconds=700.0, ok=False)
    assert get("cacherr_runs_total") == 2
    assert get("cacherr_run_failures_total") == 1
    assert get("cacherr_last_run_timestamp_seconds") == 5700.0
    assert get("cacherr_last_success_timestamp_seconds") == 1020.0
    assert get("cacherr_run_duration_seconds_count") == 2
    assert get("cacherr_run_duration_seconds_bucket", {"le": "30.0"}) == 1
    assert get("cacherr_run_duration_seconds_bucket", {"le": "1200.0"}) == 2


def test_moves_skips_and_failures_count_with_unknown_reasons_as_other():
    metrics = Metrics()
    get = metrics.registry.get_sample_value
    metrics.record_move("to_cache", 1000)
    metrics.record_move("to_cache", 24)
    metrics.record_failure("to_slow", "cosmic_ray")
    metrics.record_skip("in_session", count=3)
    metrics.record_skip("what")
    assert get("cacherr_files_moved_total", {"direction": "to_cache"}) == 2
    assert get("cacherr_moved_bytes_total", {"direction": "to_cache"}) == 1024
    assert get("cacherr_move_failures_total", {"direction": "to_slow", "reason": "other"}) == 1
    assert get("cacherr_moves_skipped_total", {"reason": "in_session"}) == 3
    assert get("cacherr_moves_skipped_total", {"reason": "other"}) == 1
    with pytest.raises(ValueError):
        metrics.record_move("sideways", 1)


def test_init_rules_after_a_reload_drops_removed_rules_and_adds_new_ones_at_zero():
    metrics = Metrics(rule_names=["ondeck", "old"])
    get = metrics.registry.get_sample_value
    metrics.set_cached({"ondeck": (3, 3000), "old": (1, 10)})
    metrics.init_rules(["ondeck", "new"])
    assert get("cacherr_cached_files", {"rule": "old"}) is None
    assert get("cacherr_cached_bytes", {"rule": "new"}) == 0
    assert get("cacherr_cached_bytes", {"rule": "ondeck"}) == 3000
    metrics.set_cached({"new": (2, 200)})
    assert get("cacherr_cached_files", {"rule": "ondeck"}) == 0
    assert get("cacherr_cached_files", {"rule": "new"}) == 2


def test_init_sources_leaves_no_source_up_series_for_an_unused_source():
    metrics = Metrics(sources=["plex", "plextv"])
    get = metrics.registry.get_sample_value
    assert get("cacherr_source_up", {"source": "trakt"}) is None
    assert get("cacherr_source_up", {"source": "plex"}) == 0
    metrics.set_source("plex", up=True)
    assert get("cacherr_source_up", {"source": "plex"}) == 1
    metrics.init_sources(["plex"])
    assert get("cacherr_source_up", {"source": "plextv"}) is None


def test_the_remaining_updates_land_on_their_metrics():
    metrics = Metrics()
    get = metrics.registry.get_sample_value
    metrics.set_filesystems(fast=(1000, 250), slow=(9000, 100))
    metrics.set_planned({"to_cache": 4})
    metrics.set_active_sessions(2)
    metrics.record_playback_start(cache_hit=True)
    metrics.record_playback_start(cache_hit=False)
    metrics.record_notification("summary", ok=False)
    metrics.record_job_failure("sessions")
    metrics.record_source_failure("trakt", 2)
    metrics.record_skipped_elements("plex", 3)
    metrics.record_recovered(3)
    metrics.record_config_reload(False)
    metrics.heartbeat(at=77.0)
    metrics.set_schedule(3600.0, next_run_at=99.0)
    metrics.set_budget(800)
    assert get("cacherr_filesystem_avail_bytes", {"role": "fast"}) == 250
    assert get("cacherr_filesystem_size_bytes", {"role": "slow"}) == 9000
    assert get("cacherr_planned_moves", {"direction": "to_slow"}) == 0
    assert get("cacherr_planned_moves", {"direction": "to_cache"}) == 4
    assert get("cacherr_active_sessions") == 2
    assert get("cacherr_playback_starts_total") == 2
    assert get("cacherr_playback_cache_hits_total") == 1
    assert get("cacherr_notifications_total", {"event": "summary"}) == 1
    assert get("cacherr_notification_failures_total", {"event": "summary"}) == 1
    assert get("cacherr_job_failures_total", {"job": "sessions"}) == 1
    assert get("cacherr_source_request_failures_total", {"source": "trakt"}) == 2
    assert get("cacherr_source_skipped_elements_total", {"source": "plex"}) == 3
    assert get("cacherr_recovered_actions_total") == 3
    assert get("cacherr_config_last_reload_successful") == 0
    assert get("cacherr_scheduler_heartbeat_timestamp_seconds") == 77.0
    assert get("cacherr_next_run_timestamp_seconds") == 99.0
    assert get("cacherr_schedule_interval_seconds") == 3600.0
    assert get("cacherr_cache_budget_bytes") == 800
    assert get("cacherr_build_info", {"version": catalogue.__version__}) == 1


def test_the_alert_stream_gauge_exists_only_while_the_stream_is_used():
    metrics = Metrics()
    get = metrics.registry.get_sample_value
    metrics.set_alerts_connected(True)
    assert get("cacherr_alerts_connected") == 1
    metrics.init_alerts(False)
    assert get("cacherr_alerts_connected") is None
    assert "cacherr_alerts_connected" not in metrics.exposition().decode()
    metrics.init_alerts(False)  # twice is harmless
    metrics.init_alerts(True)
    assert get("cacherr_alerts_connected") == 0, "back, and not claiming a connection"


def test_alerts_count_by_bounded_type_and_playback_delays_land_in_sub_second_buckets():
    metrics = Metrics()
    get = metrics.registry.get_sample_value
    for kind in ("playing", "playing", "timeline", "transcodeSession.update"):
        metrics.record_alert(kind)
    assert get("cacherr_alerts_received_total", {"type": "playing"}) == 2
    assert get("cacherr_alerts_received_total", {"type": "other"}) == 1
    metrics.observe_playback_to_cached(0.3)
    metrics.observe_playback_to_cached(-1.0)  # a clock step back is not a negative delay
    metrics.observe_playback_to_cached(42.0)
    bucket = lambda le: get("cacherr_playback_to_cached_seconds_bucket", {"le": le})  # noqa: E731
    assert (bucket("0.25"), bucket("0.5"), bucket("60.0")) == (1, 2, 3)
    assert get("cacherr_playback_to_cached_seconds_count") == 3
