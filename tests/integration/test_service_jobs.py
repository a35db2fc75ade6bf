"""A job that raises is logged and counted, and the loop goes on."""

from __future__ import annotations

from pathlib import Path

from cacherr.config import loader
from cacherr.service import Service
from cacherr.state.ledger import Ledger

RULES = """\
version: 1
plex: {{url: 'http://127.0.0.1:9', token: t}}
paths: [{{plex: /data, host: '{root}/media'}}]
cache: {{layout: symlink, symlink: {{dir: '{root}/ssd', plex_dir: /ssd}}}}
rules: [{{name: r, select: ondeck}}]
server: {{listen: '127.0.0.1:0'}}
state_dir: '{root}/state'
"""


def test_a_job_that_raises_is_counted_and_the_next_one_runs(tmp_path: Path, caplog):
    for folder in ("media", "ssd", "state"):
        (tmp_path / folder).mkdir()
    (tmp_path / "rules.yaml").write_text(RULES.format(root=tmp_path))
    config = loader.load(tmp_path / "rules.yaml", {}, offline=True)
    calls = []

    def select(config, **kwargs):
        calls.append(kwargs)
        raise RuntimeError("selector exploded")

    service = Service(config, dry_run=False, select=select)
    service.ledger = Ledger.open(config.state_dir)
    try:
        service._job("cycle", service.full_cycle)
        service._job("cycle", service.full_cycle)
    finally:
        service.ledger.close()
        service.notifier.close(timeout_seconds=1)
    assert len(calls) == 2, "the second job ran after the first raised"
    assert service.metrics["cacherr_job_failures_total"].labels(job="cycle")._value.get() == 2
    assert service.metrics["cacherr_run_failures_total"]._value.get() == 2
    report = service.health.report()
    assert report["status"] == "degraded"
    assert "selector exploded" in caplog.text


class _StoppingEngine:
    """An engine whose copy is stopped by a clean stop (SIGTERM) half way."""

    union = None
    mover_list = None

    def __init__(self, fast: Path):
        self.symlink = type("Symlink", (), {"dir": fast})()
        self.layout = "symlink"

    def cache(self, relative_path, root=None):
        from cacherr.engine import Cancelled

        raise Cancelled(relative_path, "cancelled (SIGTERM); the partial copy was removed")


def test_a_transfer_stopped_by_a_clean_stop_is_counted_aborted_not_failed(tmp_path: Path):
    from cacherr.cycle.transfers import Transfer
    from cacherr.planner import PlannedAction

    for folder in ("media", "ssd", "state"):
        (tmp_path / folder).mkdir()
    (tmp_path / "rules.yaml").write_text(RULES.format(root=tmp_path))
    config = loader.load(tmp_path / "rules.yaml", {}, offline=True)
    service = Service(config, dry_run=False)
    sent = []
    service.notifier.send_message = sent.append
    ledger = Ledger.open(config.state_dir)
    try:
        service.transfers.transfer(Transfer(PlannedAction("cache", "Movies/a.mkv", 10, 50), None),
                                   _StoppingEngine(tmp_path / "ssd"), ledger)
        service.transfers.send_summary()
    finally:
        ledger.close()
    metric = service.metrics["cacherr_moves_skipped_total"]
    assert metric.labels(reason="aborted")._value.get() == 1
    failures = service.metrics["cacherr_move_failures_total"]
    assert sum(failures.labels(direction="to_cache", reason=reason)._value.get()
               for reason in ("io_error", "other")) == 0
    assert [message.event for message in sent] == []  # nothing moved, nothing failed
