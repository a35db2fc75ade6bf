"""One action's failure is that action's, never the cycle's or the worker's (issue 11,
points 7–9): a refused name is a counted skip, a mover list that cannot be written fails
that action (and lists nothing it did not write), any other exception is a failure with
reason `other`, and the service's transfer worker lives on; /health says when it does not."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from cacherr.config import loader
from cacherr.config.model import SymlinkLayout
from cacherr.cycle.execute import Report, execute
from cacherr.cycle.moverlist import MoverList
from cacherr.cycle.transfers import Transfer
from cacherr.engine import Engine
from cacherr.health import HealthState
from cacherr.planner import PlannedAction
from cacherr.service import Service
from cacherr.state.ledger import Ledger
from tests.helpers import require_root, wait_for
from tests.integration.test_service_jobs import RULES


class ExplodingEngine(Engine):
    """A real engine whose cache of one file hits a bug (what a bug looks like)."""

    def cache(self, relative_path: str, *, root: Path | None = None):
        if "boom" in relative_path:
            raise RuntimeError("a bug in one transfer")
        return super().cache(relative_path, root=root)


@pytest.fixture(autouse=True)
def ssd(tmp_path):
    """The cache folder on a file system of its own (the originals' is another device)."""
    require_root()
    folder = tmp_path / "ssd"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "cacherr-test-ssd", str(folder)], check=True)
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=True)


def _engine(tmp_path: Path, cls=Engine) -> Engine:
    media, ssd = tmp_path / "media", tmp_path / "ssd"
    (media / "Movies" / "A").mkdir(parents=True, exist_ok=True)
    (media / "Movies" / "A" / "a.mkv").write_bytes(b"a" * 1000)
    return cls(Ledger.open(tmp_path / "state"), layout="symlink", original="backup",
               symlink=SymlinkLayout(dir=ssd, plex_dir="/ssd"), roots=[media])  # fmt: skip


def cache(path: str) -> PlannedAction:
    return PlannedAction("cache", path, 1000, 50)


def test_hostile_names_are_counted_skips_and_the_rest_of_the_plan_runs(tmp_path):
    engine = _engine(tmp_path)
    report = Report()
    hostile = ["Movies/$(touch PWNED).mkv", "Movies/`touch PWNED`.mkv", 'Movies/a "b".mkv',
               "Movies/line\nbreak.mkv"]  # fmt: skip
    execute([*map(cache, hostile), cache("Movies/A/a.mkv")], engine, {}, report)
    assert report.skipped["name"] == len(hostile)
    assert report.failures == [] and report.cached_files == 1
    assert not list(tmp_path.rglob("PWNED")) and not list(Path.cwd().glob("PWNED"))


def test_a_mover_list_that_cannot_be_written_fails_that_action_only(tmp_path):
    engine = _engine(tmp_path)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the list's folder should be")
    mover_list = MoverList(blocker / "mover.txt", tmp_path / "ssd")
    report = Report()
    execute([cache("Movies/A/a.mkv")], engine, {}, report, mover_list=mover_list)
    assert report.failures == [("to_cache", "io_error", "Movies/A/a.mkv")]
    assert engine.ledger.get("Movies/A/a.mkv") is None  # not copied: it was not listed
    blocker.unlink()
    mover_list.add(tmp_path / "ssd" / "Movies" / "B" / "b.mkv")
    assert mover_list.entries() == [f"{tmp_path}/ssd/Movies/*.cacherr-tmp",
                                    f"{tmp_path}/ssd/Movies/B/b.mkv"]  # fmt: skip


def test_an_exception_in_one_action_is_a_failure_and_the_next_action_runs(tmp_path):
    engine = _engine(tmp_path, ExplodingEngine)
    report = Report()
    execute([cache("Movies/boom.mkv"), cache("Movies/A/a.mkv")], engine, {}, report)
    assert report.failures == [("to_cache", "other", "Movies/boom.mkv")]
    assert report.cached_files == 1




def test_the_transfer_worker_survives_an_exception_and_carries_on(tmp_path, monkeypatch):
    _engine(tmp_path).ledger.close()  # the media and the folders
    (tmp_path / "rules.yaml").write_text(RULES.format(root=tmp_path))
    config = loader.load(tmp_path / "rules.yaml", {}, offline=True)
    service = Service(config, dry_run=False)
    carried: list[str] = []
    real_execute = execute

    def execute_with_a_bug(actions, *args, **kwargs):
        for action in actions:
            if "boom" in action.relative_path:
                raise RuntimeError("a bug outside the engine")
            carried.append(action.relative_path)
        return real_execute(actions, *args, **kwargs)

    monkeypatch.setattr("cacherr.transfer_worker.execute", execute_with_a_bug)
    service.worker.start()
    service.health.watch_worker(service.worker.is_alive)
    try:
        service.queue.put_first([Transfer(cache("Movies/boom.mkv"), None),
                                 Transfer(cache("Movies/A/a.mkv"), None)])  # fmt: skip
        wait_for(lambda: carried == ["Movies/A/a.mkv"] and service.queue.idle(),
                 what="the transfer after the failing one")  # fmt: skip
        assert service.worker.is_alive()
        failures = service.metrics["cacherr_move_failures_total"]
        assert failures.labels(direction="to_cache", reason="other")._value.get() == 1
        assert service.health.report()["transfer_worker"] == {"alive": True}
    finally:
        service.stopping.set()
        service.queue.close()
        service.worker.join(timeout=10)
        service.notifier.close(timeout_seconds=1)
    assert not service.worker.is_alive()


def test_health_is_degraded_while_the_transfer_worker_is_not_alive(tmp_path):
    health = HealthState(tmp_path)
    health.heartbeat()
    alive = threading.Event()
    health.watch_worker(alive.is_set)
    report = health.report()
    assert report["status"] == "degraded" and report["transfer_worker"] == {"alive": False}
    assert any("transfer worker" in problem for problem in report["problems"])
    alive.set()
    assert health.report()["status"] == "ok"


def test_a_file_cached_before_the_name_rule_is_still_put_back(tmp_path, monkeypatch):
    rel = "Movies/Ca$h (2010)/Ca$h (2010).mkv"
    engine = _engine(tmp_path)
    (tmp_path / "media" / rel).parent.mkdir(parents=True)
    (tmp_path / "media" / rel).write_bytes(b"cash" * 500)
    with monkeypatch.context() as before_the_rule:
        before_the_rule.setattr("cacherr.engine.paths.name_problem", lambda name: None)
        assert engine.cache(rel).outcome == "cached"
    report = Report()
    execute([PlannedAction("evict", rel, 2000, 50)], engine, {}, report)
    assert report.evicted_files == 1 and report.failures == []
    assert (tmp_path / "media" / rel).read_bytes() == b"cash" * 500
