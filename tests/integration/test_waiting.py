"""`run --wait-for-rules`: with no valid rules file, answer /health (degraded, saying why)
and /metrics, start as soon as the file is valid (SIGHUP, or saving it), stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from cacherr.testing.sandbox import Sandbox
from cacherr.waiting import RulesWaiter, listen_address
from tests.container.deployment import free_port
from tests.helpers import get_local, require_fuse, wait_for

RULES = """\
version: 1
plex: {{url: "http://127.0.0.1:9", token: t}}
paths: [{{plex: /data/media, host: '{view}'}}]
cache:
  layout: union
  union: {{view: '{view}', fast: '{fast}', slow: ['{slow}']}}
rules: [{{name: r, select: ondeck}}]
state_dir: '{state}'
"""


@pytest.fixture
def sandbox(tmp_path):
    require_fuse()
    with Sandbox(tmp_path / "mnt", disks=1) as box:
        yield box


def _valid(box: Sandbox, tmp_path: Path) -> str:
    return RULES.format(view=box.view, fast=box.fast, slow=box.slow[0], state=tmp_path / "state")


def _waiting_health(port: int) -> dict | None:
    status, body = get_local(port, "/health")
    if status != 200:
        return None
    health = json.loads(body)
    return health if health["config"]["waiting_for_rules"] else None


def _in_background(action, watchdog_seconds: float = 60.0):
    """Run `action` on a thread; SIGTERM this process if the waiter is still waiting then,
    so that a broken waiter fails the test instead of hanging it."""
    done = threading.Event()

    def run():
        try:
            action()
        finally:
            if not done.wait(watchdog_seconds):
                os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return done


def test_a_missing_file_is_waited_for_healthy_and_sighup_starts_once_it_is_valid(
        sandbox, tmp_path):
    rules, port = tmp_path / "rules.yaml", free_port()
    # Only SIGHUP may wake it: the file-change check is an hour away.
    waiter = RulesWaiter(rules, {"CACHERR_LISTEN": f"127.0.0.1:{port}"},
                         check_every_seconds=3600)
    seen = {}

    def user():
        seen["health"] = wait_for(lambda: _waiting_health(port), what="the idle /health")
        seen["metrics"] = get_local(port, "/metrics")
        rules.write_text("version: 1\nplex: {url: x}\n")  # saved half-way: still invalid
        os.kill(os.getpid(), signal.SIGHUP)
        wait_for(lambda: "plex.token" in str((_waiting_health(port) or {}).get("problems")),
                 what="the half-written file's errors on /health")
        seen["half"] = _waiting_health(port)
        rules.write_text(_valid(sandbox, tmp_path))
        os.kill(os.getpid(), signal.SIGHUP)

    done = _in_background(user)
    config = waiter.wait()
    done.set()
    assert config is not None and config.source_path == rules
    health = seen["health"]
    assert health["status"] == "degraded"
    assert "cannot read the rules file" in health["config"]["waiting_for_rules"]
    status, metrics = seen["metrics"]
    assert status == 200 and b"cacherr_config_last_reload_successful 0.0" in metrics
    assert seen["half"]["status"] == "degraded"
    assert get_local(port, "/health")[0] == 0  # the waiting server is gone: the service binds next
    assert signal.getsignal(signal.SIGHUP) is not waiter._on_hup


def test_saving_a_valid_file_is_enough_without_sighup(sandbox, tmp_path):
    rules, port = tmp_path / "rules.yaml", free_port()
    rules.write_text("version: 2\n")
    waiter = RulesWaiter(rules, {"CACHERR_LISTEN": f"127.0.0.1:{port}"},
                         check_every_seconds=0.05)

    def user():
        wait_for(lambda: _waiting_health(port), what="the idle /health")
        rules.write_text(_valid(sandbox, tmp_path))

    done = _in_background(user)
    config = waiter.wait()
    done.set()
    assert config is not None and config.state_dir == tmp_path / "state"


def test_a_state_dir_that_cannot_hold_state_is_waited_out_too(sandbox, tmp_path):
    rules, port = tmp_path / "rules.yaml", free_port()
    on_tmpfs = _valid(sandbox, tmp_path).replace(str(tmp_path / "state"),
                                                 str(sandbox.fast / "state"))
    rules.write_text(on_tmpfs)
    waiter = RulesWaiter(rules, {"CACHERR_LISTEN": f"127.0.0.1:{port}"},
                         check_every_seconds=0.05)
    seen = {}

    def user():
        seen["health"] = wait_for(lambda: _waiting_health(port), what="the idle /health")
        os.kill(os.getpid(), signal.SIGTERM)

    done = _in_background(user)
    assert waiter.wait() is None  # stopped while waiting: nothing started
    done.set()
    assert "state_dir" in seen["health"]["config"]["waiting_for_rules"]
    assert not (sandbox.fast / "state").exists()  # nothing was written
    assert get_local(port, "/health")[0] == 0


def test_the_waiting_address_is_cacherr_listen_then_the_file_s_then_the_default(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("server: {listen: '127.0.0.1:6001'}\nbroken: [\n")
    assert listen_address(rules, {"CACHERR_LISTEN": "127.0.0.1:7001"}) == ("127.0.0.1", 7001)
    assert listen_address(rules, {}) == ("0.0.0.0", 5445)  # unparsable: the default
    rules.write_text("server: {listen: '127.0.0.1:6001'}\nplex: 3\n")
    assert listen_address(rules, {}) == ("127.0.0.1", 6001)
    assert listen_address(rules, {"CACHERR_LISTEN": "nonsense"}) == ("127.0.0.1", 6001)
    assert listen_address(tmp_path / "missing.yaml", {}) == ("0.0.0.0", 5445)
