"""A running service under hostile requests and at the worst moments: every write endpoint
refuses who has no token (403 when none is configured), bounds what it is sent, shrugs
off an alias bomb sent by SIGHUP, empties the cache on `evict --all` in the middle of a
cycle, and stops cleanly mid-copy without calling it an error."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from cacherr.server import _Handler
from tests.e2e.hostile.test_rules_input import alias_bomb
from tests.e2e.hostile.test_secrets import request
from tests.e2e.hostile.world import hostile_world
from tests.helpers import require_root, wait_for

WRITE_ROUTES = [(path, method) for path, methods in _Handler.ROUTES.items()
                for method in methods if method not in _Handler.READ_METHODS]


@pytest.fixture
def world(tmp_path):
    require_root()
    with hostile_world(tmp_path) as built:
        yield built


@pytest.fixture
def service(world):
    running = world.service()
    wait_for(lambda: running.metric("cacherr_runs_total") == 1, what="the first cycle")
    wait_for(lambda: len(world.on_fast()) == 4, what="the first cycle's four transfers")
    yield running
    running.stop()


def vm_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_every_write_endpoint_refuses_requests_without_the_token(world, service):
    token = world.secrets["CACHERR_API_TOKEN"]
    cached = world.on_fast()
    for path, method in WRITE_ROUTES:
        for headers in ({}, {"Authorization": "Bearer not-the-token-0123456789"},
                        {"Authorization": f"Basic {token}"}, {"Authorization": token}):
            status, body = request(service.origin, path, method, b'{"all": true}',
                                   {"Content-Type": "application/json", **headers})
            assert status == 401, (path, headers, body)
    assert world.on_fast() == cached
    # Without server.token every write endpoint is off, for everyone.
    world.rules.write_text(world.rules.read_text().replace(
        ", token: '${CACHERR_API_TOKEN}'", ""))
    loaded_at = service.metric("cacherr_config_last_reload_success_timestamp_seconds")
    service.signal(signal.SIGHUP)
    wait_for(lambda: service.metric("cacherr_config_last_reload_success_timestamp_seconds")
             > loaded_at, what="the reload without a token")
    for path, method in WRITE_ROUTES:
        for headers in ({}, {"Authorization": f"Bearer {token}"}):
            assert request(service.origin, path, method, b'{"all": true}',
                           {"Content-Type": "application/json", **headers})[0] == 403
    assert world.on_fast() == cached
    assert "Traceback" not in service.output()


@pytest.mark.parametrize(("body", "status"), [
    (b'{"all": true, "hold_seconds": 1e300}', 400),
    (b'{"all": true, "hold_seconds": 2678401}', 400),  # 31 days
    (b'{"paths": ' + b"[" * 30000 + b"]" * 30000 + b"}", 400),
    (b'{"paths": ["' + b"x" * 70000 + b'"]}', 413),
    (b"\xff\xfe\x00junk", 400),
])
def test_bad_bodies_are_refused_even_with_the_token(world, service, body, status):
    cached = world.on_fast()
    answer, text = request(service.origin, "/api/evict", "POST", body, {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {world.secrets['CACHERR_API_TOKEN']}"})
    assert answer == status, text
    assert request(service.origin, "/health")[0] == 200
    assert world.on_fast() == cached
    assert "Traceback" not in service.output()


def test_an_alias_bomb_sent_by_sighup_is_rejected_at_once_and_the_old_rules_stay(world, service):
    good = world.rules.read_text()
    world.rules.write_text(good + alias_bomb(7))
    peak = vm_peak_kib(service.process.pid)
    started = time.monotonic()
    service.signal(signal.SIGHUP)
    wait_for(lambda: service.metric("cacherr_config_last_reload_successful") == 0,
             what="the rejected reload")
    assert time.monotonic() - started < 5  # the loop looks at SIGHUP once a second
    assert vm_peak_kib(service.process.pid) - peak < 100 * 1024
    assert "aliases expand the rules file" in service.output()
    world.rules.write_text(good)
    service.signal(signal.SIGHUP)
    wait_for(lambda: service.metric("cacherr_config_last_reload_successful") == 1,
             what="the good file again")
    assert len(world.on_fast()) == 4


def test_evict_all_in_the_middle_of_a_cycle_cancels_waits_evicts_and_says_so(tmp_path):
    require_root()
    # 40 kB/s: each file takes one to three seconds, so the cycle is still copying.
    with hostile_world(tmp_path, cache_extra="  bandwidth: 40KB\n") as world:
        service = world.service()
        try:
            wait_for(lambda: service.metric("cacherr_files_moved_total",
                                            'direction="to_cache"') == 1,
                     what="the first of several transfers")
            result = world.cacherr("evict", "--all")
            assert result.returncode == 0, result.stderr
            lines = result.stderr.splitlines()
            cancelled = [line for line in lines if line.startswith("cancelled the queued cache")]
            evicted = [line for line in lines if line.startswith("evicted ")]
            assert cancelled and len(evicted) >= 2, result.stderr  # the one copying, too
            assert world.on_fast() == set()
            assert service.metric("cacherr_planned_moves", 'direction="to_cache"') == 0
            for relative, data in world.written.items():
                assert (world.media / relative).read_bytes() == data
            again = world.cacherr("evict", "--all")
            assert again.returncode == 0 and again.stderr.strip() == \
                "nothing cached: nothing to evict"
            assert json.loads(world.cacherr("ls", "--format", "json").stdout) == []
        finally:
            assert service.stop() == 0


def test_a_clean_stop_mid_copy_is_aborted_not_an_error(tmp_path):
    require_root()
    # Five 8 MiB chunks: SIGTERM comes after the second, the copy stops before the last.
    with hostile_world(tmp_path, first_episode_bytes=40 * 1024 * 1024) as world:
        service = world.service({"CACHERR_TEST_KILL_AT": "copy-chunk:2",
                                 "CACHERR_TEST_KILL_SIGNAL": "TERM"})
        try:
            code = service.process.wait(timeout=30)
        finally:
            service.stop()
        check_clean_stop(world, code)


def check_clean_stop(world, code: int) -> None:
    log = (world.root / "service.log").read_text()
    assert code == 0, log
    assert "aborted: cacherr is stopping" in log
    assert "failed" not in log.lower().replace("failed: none", "")
    assert [item for item in world.sink.received if item["json"].get("type") == "failure"] == []
    assert not [p for p in world.sandbox.fast.rglob("*") if "cacherr" in p.name]
    for relative, data in world.written.items():
        assert (world.media / relative).read_bytes() == data
