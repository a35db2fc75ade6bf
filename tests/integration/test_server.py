"""The HTTP server (SPEC §6) on loopback, its runtime file, and `cacherr healthcheck`."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cacherr.api import EvictRequest
from cacherr.config.model import ServerConfig
from cacherr.health import HealthState
from cacherr.metrics import Metrics
from cacherr.runtime import read_runtime_file, request_evict, service_origin
from cacherr.server import Server


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


CACHED = [
    {"path": "/media/tv/Show/S01E01.mkv", "rules": ["ondeck"], "users": ["Alice"],
     "size_bytes": 100},
    {"path": "/media/tv/Show/S01E02.mkv", "rules": ["ondeck", "watchlist"],
     "users": ["alice", "bob"], "size_bytes": 200},
    {"path": "/media/movies/Film.mkv", "rules": ["watchlist"], "users": ["bob"],
     "size_bytes": 300},
    {"path": "/media/movies/Pinned.mkv", "rules": ["pinned"], "users": [], "size_bytes": 400},
]


class EvictRecorder:
    def __init__(self) -> None:
        self.requests: list[EvictRequest] = []

    def __call__(self, request: EvictRequest) -> dict:
        self.requests.append(request)
        return {"queued": len(request.paths), "all": request.all}


@pytest.fixture
def state_dir(tmp_path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def health(state_dir, clock) -> HealthState:
    state = HealthState(state_dir, stale_after_seconds=60, clock=clock)
    state.heartbeat()
    return state


@pytest.fixture
def evict() -> EvictRecorder:
    return EvictRecorder()


TOKEN = "0123456789abcdef-test-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def server(state_dir, health, evict):
    metrics = Metrics(rule_names=["ondeck", "watchlist", "pinned"])
    metrics.record_move("to_cache", 4096)
    with Server("127.0.0.1", 0, metrics=metrics, health=health, cached_files=lambda: CACHED,
                evict=evict, state_dir=state_dir, token=TOKEN) as running:
        yield running


def get(server: Server, path: str, method: str = "GET", body: bytes | None = None,
        headers: dict | None = None) -> tuple[int, dict, bytes]:
    """Return (status, headers, body) of a request; HTTP errors are answers too."""
    request = urllib.request.Request(server.url + path, data=body, method=method,
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def post_evict(server: Server, payload, content_type: str = "application/json",
               headers: dict | None = None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return get(server, "/api/evict", "POST", body,
               {"Content-Type": content_type, **(BEARER if headers is None else headers)})


# -- routes ---------------------------------------------------------------------------


def test_the_landing_page_links_to_every_get_endpoint(server):
    status, headers, body = get(server, "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    for link in ('href="/metrics"', 'href="/health"', 'href="/api/cached"'):
        assert link.encode() in body


def test_metrics_are_served_in_the_prometheus_text_format(server):
    status, headers, body = get(server, "/metrics")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {family.name: family for family in
                text_string_to_metric_families(body.decode())}
    moved = {sample.labels["direction"]: sample.value
             for sample in families["cacherr_moved_bytes"].samples}
    assert moved == {"to_cache": 4096.0, "to_slow": 0.0}
    assert "cacherr_build_info" in families or "cacherr_build" in families


def test_health_is_ok_with_a_fresh_heartbeat_and_a_writable_state_dir(server):
    status, headers, body = get(server, "/health")
    report = json.loads(body)
    assert (status, report["status"]) == (200, "ok")
    assert headers["Content-Type"] == "application/json"
    assert report["problems"] == []
    assert report["state_dir"]["writable"] is True


def test_health_is_degraded_but_200_for_sources_cycle_guards_untracked_and_reload(
        server, health):
    health.set_source("plex", up=True)
    health.set_source("trakt", up=False, error="HTTP 503")
    health.record_cycle(started=10.0, finished=20.0, ok=False, error="1 move failed")
    health.set_guard("mover", "unknown")
    health.set_guard("parity_check", "not_running")
    health.set_untracked(["/mnt/cache/media/a.mkv"])
    health.set_config_reload(False, "rules.yaml:3:1: bad")
    status, _, body = get(server, "/health")
    report = json.loads(body)
    assert (status, report["status"]) == (200, "degraded")
    assert report["sources"]["trakt"]["up"] is False
    assert report["sources"]["trakt"]["error"] == "HTTP 503"
    assert report["sources"]["plex"]["up"] is True
    assert report["last_cycle"]["ok"] is False
    assert report["guards"] == {"mover": "unknown", "parity_check": "not_running"}
    assert report["untracked"] == {"count": 1, "paths": ["/mnt/cache/media/a.mkv"]}
    assert report["config"]["last_reload_ok"] is False
    problems = " | ".join(report["problems"])
    for expected in ("trakt is down", "last cycle failed", "mover is unknown", "untracked",
                     "reload rejected"):
        assert expected in problems


def test_health_is_failing_with_503_when_the_heartbeat_is_stale(server, health, clock):
    health.set_source("plex", up=False)  # degraded details do not hide the failure
    clock.now += 61
    status, _, body = get(server, "/health")
    report = json.loads(body)
    assert (status, report["status"]) == (503, "failing")
    assert "heartbeat" in report["problems"][0]
    health.heartbeat()
    status, _, body = get(server, "/health")
    assert (status, json.loads(body)["status"]) == (200, "degraded")


def test_health_is_failing_when_the_state_dir_is_gone_or_reported_unwritable(
        server, health, state_dir):
    health.set_state_dir_error("ledger write failed: No space left on device")
    status, _, body = get(server, "/health")
    assert (status, json.loads(body)["status"]) == (503, "failing")
    health.set_state_dir_error(None)
    assert get(server, "/health")[0] == 200
    for leftover in state_dir.iterdir():
        leftover.unlink()
    state_dir.rmdir()
    status, _, body = get(server, "/health")
    report = json.loads(body)
    assert (status, report["status"]) == (503, "failing")
    assert report["state_dir"]["writable"] is False


def test_health_fails_when_the_loop_never_beats_after_start(state_dir, clock):
    health = HealthState(state_dir, stale_after_seconds=30, clock=clock)
    with Server("127.0.0.1", 0, metrics=Metrics(), health=health) as running:
        assert get(running, "/health")[0] == 200
        clock.now += 31
        assert get(running, "/health")[0] == 503


def test_cached_lists_every_file_with_its_attribution(server):
    status, headers, body = get(server, "/api/cached")
    assert status == 200
    assert json.loads(body) == CACHED
    assert headers["X-Total-Count"] == "4"


def test_cached_filters_by_rule_and_by_user_case_insensitively(server):
    _, _, body = get(server, "/api/cached?rule=watchlist")
    assert [entry["size_bytes"] for entry in json.loads(body)] == [200, 300]
    _, headers, body = get(server, "/api/cached?user=ALICE")
    assert [entry["size_bytes"] for entry in json.loads(body)] == [100, 200]
    assert headers["X-Total-Count"] == "2"
    _, _, body = get(server, "/api/cached?user=bob&rule=ondeck")
    assert [entry["size_bytes"] for entry in json.loads(body)] == [200]
    _, _, body = get(server, "/api/cached?user=nobody")
    assert json.loads(body) == []


def test_cached_pages_with_limit_and_offset_and_reports_the_total(server):
    _, headers, body = get(server, "/api/cached?limit=2&offset=1")
    assert [entry["size_bytes"] for entry in json.loads(body)] == [200, 300]
    assert headers["X-Total-Count"] == "4"
    _, _, body = get(server, "/api/cached?limit=2&offset=3")
    assert [entry["size_bytes"] for entry in json.loads(body)] == [400]
    _, _, body = get(server, "/api/cached?offset=10")
    assert json.loads(body) == []


@pytest.mark.parametrize("query", ["limit=x", "limit=-1", "offset=1.5", "rule=a&rule=b"])
def test_cached_rejects_bad_paging_with_400(server, query):
    status, _, body = get(server, f"/api/cached?{query}")
    assert status == 400
    assert json.loads(body)["error"]


def test_evict_hands_the_request_to_the_callable_and_returns_its_result(server, evict):
    status, _, body = post_evict(server, {"paths": ["/data/tv/a.mkv", "/mnt/user/b.mkv"],
                                          "hold_seconds": 7200})
    assert status == 200
    assert json.loads(body) == {"queued": 2, "all": False}
    status, _, body = post_evict(server, {"all": True, "hold_seconds": None})
    assert status == 200
    assert evict.requests == [
        EvictRequest(paths=("/data/tv/a.mkv", "/mnt/user/b.mkv"), all=False,
                     hold_seconds=7200.0),
        EvictRequest(paths=(), all=True, hold_seconds=None),
    ]


@pytest.mark.parametrize("payload", [
    {}, {"paths": []}, {"paths": ["/a"], "all": True}, {"paths": "/a"}, {"paths": [""]},
    {"all": "yes"}, {"all": True, "hold_seconds": -1}, {"all": True, "hold_seconds": "2h"},
    {"all": True, "force": True}, [1, 2], b"{not json", b"NaN",
    {"all": True, "hold_seconds": 1e300}, {"all": True, "hold_seconds": 30 * 86400 + 1},
    {"all": True, "hold_seconds": float("inf")}, b"[" * 5000 + b"]" * 5000,
    {"paths": [[[["/a"]]]]},
])
def test_evict_rejects_a_malformed_body_with_400_and_calls_nothing(server, evict, payload):
    status, _, body = post_evict(server, payload)
    assert status == 400
    assert json.loads(body)["error"]
    assert evict.requests == []


def test_evict_needs_a_json_content_type(server, evict):
    status, _, _ = post_evict(server, {"all": True}, content_type="text/plain")
    assert status == 415
    assert evict.requests == []


def test_unknown_paths_are_404_and_wrong_methods_405(server):
    for path in ("/nope", "/metrics/extra", "/api", "/healthz"):
        status, _, body = get(server, path)
        assert status == 404, path
        assert "no such path" in json.loads(body)["error"]
    status, headers, _ = get(server, "/api/evict")
    assert (status, headers["Allow"]) == (405, "POST")
    assert get(server, "/health", "POST", b"{}", {"Content-Type": "application/json"})[0] == 405


def test_a_callable_that_raises_gives_500_and_the_server_keeps_serving(state_dir, health):
    def broken():
        raise RuntimeError("ledger closed")

    with Server("127.0.0.1", 0, metrics=Metrics(), health=health,
                cached_files=broken) as running:
        status, _, body = get(running, "/api/cached")
        assert (status, json.loads(body)) == (500, {"error": "internal error"})
        assert get(running, "/health")[0] == 200


def test_endpoints_without_their_callable_answer_503(state_dir, health):
    with Server("127.0.0.1", 0, metrics=Metrics(), health=health, token=TOKEN) as running:
        assert get(running, "/api/cached")[0] == 503
        assert post_evict(running, {"all": True})[0] == 503


# -- the runtime file -----------------------------------------------------------------


def test_the_runtime_file_names_the_bound_port_and_pid_and_goes_away_on_stop(
        state_dir, health):
    running = Server("127.0.0.1", 0, metrics=Metrics(), health=health, state_dir=state_dir)
    host, port = running.start()
    try:
        assert port != 0
        runtime = read_runtime_file(state_dir)
        assert runtime["host"] == host == "127.0.0.1"
        assert runtime["port"] == port
        assert runtime["pid"] == os.getpid()
        assert sorted(path.name for path in state_dir.iterdir()) == ["api.sock", "runtime.json"]
        assert stat.S_IMODE((state_dir / "api.sock").stat().st_mode) == 0o600
    finally:
        running.stop()
    assert list(state_dir.iterdir()) == []


# -- cacherr healthcheck --------------------------------------------------------------


def healthcheck(*arguments: str, env: dict | None = None, cwd: Path | None = None):
    environ = {key: value for key, value in os.environ.items()
               if key not in ("CACHERR_CONFIG", "CACHERR_LISTEN")}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "cacherr", *arguments, "healthcheck"],
                          capture_output=True, text=True, env=environ, cwd=cwd, timeout=60)


def free_port() -> int:
    """Return a loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def broken_rules(tmp_path: Path, state_dir: Path) -> Path:
    """A rules file that does not validate but names its state_dir."""
    path = tmp_path / "rules.yaml"
    path.write_text(f"version: 7\nplex: nope\nstate_dir: {state_dir}\n")
    return path


def test_healthcheck_exits_0_against_a_healthy_service_found_through_its_runtime_file(
        server, tmp_path, state_dir):
    result = healthcheck("-c", str(broken_rules(tmp_path, state_dir)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f":{server.address[1]}/health: ok" in result.stderr


def test_healthcheck_exits_0_when_degraded(server, health, tmp_path, state_dir):
    health.set_source("plex", up=False)
    result = healthcheck("-c", str(broken_rules(tmp_path, state_dir)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_healthcheck_exits_1_against_a_failing_service(server, clock, tmp_path, state_dir):
    clock.now += 3600
    result = healthcheck("-c", str(broken_rules(tmp_path, state_dir)), cwd=tmp_path)
    assert result.returncode == 1
    assert "503" in result.stderr


def test_healthcheck_exits_1_with_nothing_listening(tmp_path):
    result = healthcheck(env={"CACHERR_LISTEN": f"127.0.0.1:{free_port()}"}, cwd=tmp_path)
    assert result.returncode == 1


def test_healthcheck_exits_1_not_2_with_a_broken_rules_file_and_no_server(tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "runtime.json").write_text(json.dumps(
        {"host": "0.0.0.0", "port": free_port(), "pid": 1}))
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nplex: [\n")  # not even YAML
    for arguments in (("-c", str(rules)), ("-c", str(tmp_path / "missing.yaml")), ()):
        result = healthcheck(*arguments, cwd=tmp_path)
        assert result.returncode == 1, (arguments, result.stderr)


def test_healthcheck_honours_cacherr_listen_over_the_runtime_file(
        server, tmp_path, state_dir):
    # The runtime file points at nothing; CACHERR_LISTEN at the service (0.0.0.0 means here).
    (state_dir / "runtime.json").write_text(json.dumps(
        {"host": "127.0.0.1", "port": free_port(), "pid": 1}))
    rules = broken_rules(tmp_path, state_dir)
    port = server.address[1]
    assert healthcheck("-c", str(rules), cwd=tmp_path).returncode == 1
    result = healthcheck("-c", str(rules), env={"CACHERR_LISTEN": f"0.0.0.0:{port}"},
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = healthcheck(env={"CACHERR_LISTEN": "not-a-port"}, cwd=tmp_path)
    assert result.returncode == 1


def test_healthcheck_finds_the_state_dir_of_a_valid_rules_file(server, tmp_path, state_dir):
    (tmp_path / "media").mkdir()
    (tmp_path / "ssd").mkdir()
    rules = tmp_path / "valid.yaml"
    rules.write_text(
        "version: 1\n"
        "plex: {url: 'http://127.0.0.1:9', token: t}\n"
        f"paths: [{{plex: /data, host: {tmp_path}/media}}]\n"
        f"cache: {{layout: symlink, symlink: {{dir: {tmp_path}/ssd, plex_dir: /ssd}}}}\n"
        "rules: [{name: r, select: ondeck}]\n"
        f"state_dir: {state_dir}\n")
    from cacherr.config import loader

    assert loader.load(rules, {}, offline=True).state_dir == state_dir
    result = healthcheck(env={"CACHERR_CONFIG": str(rules)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


# -- the client side, for `cacherr evict` -----------------------------------------------


def test_request_evict_reaches_a_service_found_through_its_runtime_file(server, evict,
                                                                         state_dir):
    origin = service_origin(state_dir)
    assert origin == server.url
    answer = request_evict(origin, EvictRequest(paths=("/data/a.mkv",), hold_seconds=60.0),
                           token=TOKEN)
    assert answer == {"queued": 1, "all": False}
    assert evict.requests == [EvictRequest(paths=("/data/a.mkv",), hold_seconds=60.0)]


def test_request_evict_raises_with_the_services_reason_when_refused(server, evict):
    with pytest.raises(ValueError, match="HTTP 400 give paths or all"):
        request_evict(server.url, EvictRequest(), token=TOKEN)
    with pytest.raises(ValueError, match="HTTP 401"):
        request_evict(server.url, EvictRequest(all=True), token="not-the-token-at-all")
    assert evict.requests == []


def test_request_evict_raises_oserror_when_nothing_listens(tmp_path):
    assert service_origin(tmp_path) is None
    with pytest.raises(OSError):
        request_evict(f"http://127.0.0.1:{free_port()}", EvictRequest(all=True))


def test_a_server_from_config_binds_server_listen_and_writes_to_state_dir(state_dir, health):
    config = SimpleNamespace(server=ServerConfig(listen_host="127.0.0.1", listen_port=0),
                             state_dir=state_dir)
    with Server.from_config(config, metrics=Metrics(), health=health) as running:
        assert running.address[0] == "127.0.0.1"
        assert read_runtime_file(state_dir)["port"] == running.address[1]
