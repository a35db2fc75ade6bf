"""A pool or disk that did not mount (issue 11, point 5): recovery leaves the action
pending and settles it once the branch is back, an eviction refuses instead of
untracking, a RAM file system where a pool is expected is refused, and `evict --all`
with the pool or the state missing exits 1 having created nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cacherr.engine import Refused
from cacherr.engine.paths import require_fast_branch
from cacherr.state.ledger import Ledger
from cacherr.testing.sandbox import Sandbox
from tests.helpers import require_fuse, require_root, require_tool
from tests.integration.engine_helpers import rows
from tests.integration.engine_helpers.world import World

REPO = Path(__file__).resolve().parents[2]
DATA = os.urandom(96 * 1024)


@pytest.fixture
def world(tmp_path):
    require_fuse()
    with Sandbox(tmp_path / "mnt", disks=2) as box:
        yield World.of(box, tmp_path / "state")


def _run_row(world: World, spec: str, kind: str, rel: str, env=None, unmounted=None):
    """run_row in its own process; with `unmounted`, in a mount namespace where that
    branch is not mounted (the host keeps it: the disk is only missing for cacherr)."""
    argv = [sys.executable, "-m", "tests.integration.engine_helpers.run_row", world.to_json(),
            spec, kind, rel, "8192"]  # fmt: skip
    if unmounted is not None:
        unshare = require_tool("unshare")
        argv = [unshare, "--mount", "--propagation", "private", "sh", "-c",
                'umount "$0" && exec "$@"', str(unmounted), *argv]  # fmt: skip
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {}), "PYTHONPATH": str(REPO)})  # fmt: skip


def _running(world: World) -> list[str]:
    ledger = Ledger.open(world.state_dir)
    try:
        return [row[0] for row in ledger.conn.execute(
            "SELECT relative_path FROM journal_actions WHERE state = 'running'")]  # fmt: skip
    finally:
        ledger.close()


def test_recovery_with_the_pool_not_mounted_waits_and_settles_once_it_is_back(world):
    rel = "Movies/Pool away/p.mkv"
    rows.write_original(world, "union/move", rel, DATA)
    killed = _run_row(world, "union/move", "cache", rel,
                      env={"CACHERR_TEST_KILL_AT": "original-unlinked:1"})  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    # Only the pool holds the file now. Start-up with the pool not mounted:
    away = _run_row(world, "union/move", "recover", rel, unmounted=world.fast)
    assert away.returncode == 0, away.stderr
    assert _running(world) == [rel]  # pending, not settled as "inconsistent"
    # The pool is back: the next recovery finishes the action.
    [recovered] = rows.engine(world, "union/move").recover()
    assert (recovered.state, recovered.outcome) == ("done", "cached")
    assert rows.check_consistent(world, "union/move", {rel: DATA}) == {rel: "cached"}


def test_an_eviction_with_the_slow_disk_not_mounted_refuses_and_keeps_the_file(world):
    rel = "Movies/Disk away/d.mkv"
    rows.write_original(world, "union/shadow", rel, DATA)
    engine = rows.engine(world, "union/shadow")
    engine.cache(rel)
    disk = Path(world.slow[0])
    os.rename(disk, disk.with_name("disk1-away"))
    disk.mkdir()  # what an unmounted disk leaves: an empty folder
    try:
        with pytest.raises(Refused, match="not mounted|no folder for the share"):
            engine.evict(rel)
        assert engine.ledger.get(rel) is not None  # still cached, not untracked
    finally:
        disk.rmdir()
        os.rename(disk.with_name("disk1-away"), disk)
    assert engine.evict(rel).outcome == "evicted"
    assert rows.check_consistent(world, "union/shadow", {rel: DATA}) == {rel: "not-cached"}


def _mount(kind: str, source: str, point: Path, *options: str) -> None:
    point.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", *options, "-t", kind, source, str(point)], check=True)


def test_a_ram_file_system_where_a_pool_is_expected_is_refused(tmp_path):
    require_root()
    ram, ramfs, bound = tmp_path / "ram", tmp_path / "ramfs", tmp_path / "bound"
    _mount("tmpfs", "cacherr-test-ram", ram)
    try:
        (ram / "pool" / "Movies").mkdir(parents=True)
        (ram / "Movies").mkdir()
        require_fast_branch(ram, "Movies")  # a RAM disk mounted there on purpose
        with pytest.raises(Refused, match="RAM"):
            require_fast_branch(ram / "pool", "Movies")  # a folder in one: /mnt bound in Docker
        bound.mkdir()
        subprocess.run(["mount", "--bind", str(ram / "pool"), str(bound)], check=True)
        try:
            with pytest.raises(Refused, match="RAM"):
                require_fast_branch(bound, "Movies")  # a bind of a folder of the RAM root
        finally:
            subprocess.run(["umount", str(bound)], check=True)
        _mount("ramfs", "cacherr-test-ramfs", ramfs)
        try:
            (ramfs / "Movies").mkdir()
            with pytest.raises(Refused, match="ramfs"):
                require_fast_branch(ramfs, "Movies")
        finally:
            subprocess.run(["umount", str(ramfs)], check=True)
        with pytest.raises(Refused, match="no folder for the share"):
            require_fast_branch(ram, "TV")  # mounted, but not the share's pool (yet)
    finally:
        subprocess.run(["umount", str(ram)], check=True)


RULES = """\
version: 1
plex: {{url: 'http://127.0.0.1:9', token: t}}
paths: [{{plex: /data, host: '{view}'}}]
cache:
  layout: union
  union: {{view: '{view}', fast: '{fast}', slow: ['{slow}']}}
rules: [{{name: r, select: ondeck}}]
state_dir: '{state}'
"""


def _evict_all(tmp_path: Path, fast: Path, state: Path) -> subprocess.CompletedProcess:
    (tmp_path / "view").mkdir(exist_ok=True)
    (tmp_path / "slow").mkdir(exist_ok=True)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(view=tmp_path / "view", fast=fast, slow=tmp_path / "slow",
                                  state=state))  # fmt: skip
    environ = {k: v for k, v in os.environ.items() if k != "CACHERR_CONFIG"}
    return subprocess.run([sys.executable, "-m", "cacherr", "-c", str(rules), "evict", "--all"],
                          capture_output=True, text=True, env=environ, timeout=60)  # fmt: skip


def test_evict_all_with_the_state_missing_exits_1_and_creates_no_database(tmp_path):
    state = tmp_path / "pool" / "appdata" / "cacherr"  # on a pool that did not mount
    done = _evict_all(tmp_path, tmp_path / "fast", state)
    assert done.returncode == 1, done.stderr
    assert "no state database" in done.stderr and "nothing was evicted" in done.stderr
    assert not state.exists() and not (tmp_path / "pool").exists()


def test_evict_all_with_the_pool_not_mounted_exits_1(tmp_path):
    state = tmp_path / "state"
    Ledger.open(state).close()  # cacherr ran here before
    fast = tmp_path / "fast"
    (fast / "Movies").mkdir(parents=True)  # a folder where the pool should be mounted
    done = _evict_all(tmp_path, fast, state)
    assert done.returncode == 1, done.stderr
    assert "fast branch" in done.stderr and "nothing was evicted" in done.stderr


def test_a_running_service_settles_an_action_that_waited_for_its_pool_once_it_is_back(world):
    """Start-up recovery left an action pending (the pool was not mounted); the service's
    idle worker tries again, settles it once the pool is back, and /health stops saying
    that something waits."""
    from dataclasses import dataclass

    from cacherr.health import HealthState
    from cacherr.metrics import Metrics
    from cacherr.transfer_worker import TransferWorker

    rel = "Movies/Pool back/p.mkv"
    rows.write_original(world, "union/move", rel, DATA)
    killed = _run_row(world, "union/move", "cache", rel,
                      env={"CACHERR_TEST_KILL_AT": "original-unlinked:1"})  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    engine = rows.engine(world, "union/move")

    @dataclass
    class ServiceSide:  # what the worker reads of its service here
        health: HealthState
        metrics: Metrics
        clock = staticmethod(lambda: 1_000.0)
        dry_run = True  # no mover list in this world

    service = ServiceSide(HealthState(world.state_dir), Metrics(rule_names=[], sources=["plex"]))
    away = _run_row(world, "union/move", "recover", rel, unmounted=world.fast)
    assert away.returncode == 0, away.stderr
    service.health.set_waiting_actions([f"{rel}: waiting: the pool is not mounted"])
    before = service.health.report()
    assert before["status"] == "degraded" and before["waiting_actions"]["count"] == 1
    assert any("wait for a disk or pool" in problem for problem in before["problems"])
    worker = TransferWorker(service)  # type: ignore[arg-type]
    worker.retry_waiting(engine, engine.ledger)
    assert _running(world) == []
    report = service.health.report()
    assert report["waiting_actions"] == {"count": 0, "actions": []}
    assert not any("wait for a disk" in problem for problem in report["problems"])
    assert service.metrics["cacherr_recovered_actions_total"]._value.get() == 1
    assert rows.check_consistent(world, "union/move", {rel: DATA}) == {rel: "cached"}
