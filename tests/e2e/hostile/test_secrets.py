"""Planted secrets (the Plex token, the API token, the Trakt client id, a user token, the
friends' feed URL, a working and a dead Apprise URL, all in the 0600 .env) appear nowhere:
not in any command's output, the service's log, an endpoint's answer, the metrics, a
notification, or any file but that .env; also when Plex refuses the token and a
notification fails."""

from __future__ import annotations

import json
import signal
import urllib.request

import pytest

from tests.e2e.hostile.world import files_with_secrets, hostile_world, leaks
from tests.helpers import require_root, wait_for


@pytest.fixture
def world(tmp_path):
    require_root()
    with hostile_world(tmp_path) as built:
        yield built


def request(origin: str, path: str, method: str = "GET", body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    call = urllib.request.Request(origin + path, data=body, method=method, headers=headers or {})
    try:
        with opener.open(call, timeout=30) as response:
            return response.status, response.read() + str(dict(response.headers)).encode()
    except urllib.error.HTTPError as error:
        return error.code, error.read() + str(dict(error.headers)).encode()


def test_planted_secrets_appear_nowhere_but_the_env_file(world):
    outputs: dict[str, str] = {}

    def run(name: str, *args: str, env=None) -> None:
        result = world.cacherr(*args, env=env)
        outputs[name] = result.stdout + result.stderr
        assert "Traceback" not in outputs[name], outputs[name]

    run("validate", "validate")
    run("validate --offline", "validate", "--offline")
    run("plan", "plan")
    run("plan --json", "plan", "--json")
    run("run --once --dry-run", "run", "--once", "--dry-run")
    world.fake.fail("pms", "/library/sections", status=401, times=1)
    run("run --once, Plex refusing the token", "run", "--once")
    assert "check plex.token" in outputs["run --once, Plex refusing the token"]
    run("run --once --log-json", "run", "--once", "--log-json")
    assert world.on_fast(), "nothing was cached: the world is broken"
    for form in ("table", "json", "csv"):
        run(f"ls {form}", "ls", "--format", form)
    run("doctor", "doctor")
    run("healthcheck", "healthcheck")
    run("schema", "schema")

    service = world.service()
    try:
        wait_for(lambda: service.metric("cacherr_runs_total") == 1, what="the first cycle")
        origin = service.origin
        answers = {path: request(origin, path) for path in
                   ("/", "/metrics", "/health", "/api/cached", "/nope", "/api/evict")}
        token = world.secrets["CACHERR_API_TOKEN"]
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                        {"Authorization": f"Bearer {token}", "Content-Type": "text/plain"}):
            answers[f"POST {headers}"] = request(origin, "/api/evict", "POST", b'{"all": true}',
                                                 headers)
        answers["POST with the token"] = request(
            origin, "/api/evict", "POST", b'{"paths": ["/nowhere/x.mkv"]}',
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        run("evict --all through the socket", "evict", "--all")
        world.rules.write_text(world.rules.read_text().replace("'${GOOD_HOOK}'",
                                                               "'nosuch://${GOOD_HOOK}'"))
        service.signal(signal.SIGHUP)
        wait_for(lambda: service.metric("cacherr_config_last_reload_successful") == 0,
                 what="the rejected reload")
        answers["/health after the reload"] = request(origin, "/health")
        answers["/metrics at the end"] = request(origin, "/metrics")
    finally:
        assert service.stop() == 0
    outputs["service log"] = (world.root / "service.log").read_text()
    assert "notification" in outputs["service log"]  # the dead hook failed, and said so

    found = {name: leaks(text, world) for name, text in outputs.items()}
    found.update({name: leaks(body, world) for name, (_, body) in answers.items()})
    found.update({f"notification {n}": leaks(json.dumps(item["json"]), world)
                  for n, item in enumerate(world.sink.received)})
    assert world.sink.received, "no notification arrived: the test proves nothing"
    assert {name: hits for name, hits in found.items() if hits} == {}
    assert files_with_secrets(world) == {}
    assert (world.root / ".env").stat().st_mode & 0o777 == 0o600
