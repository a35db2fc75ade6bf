"""A real `cacherr run` watched the way users watch it: a real Prometheus scrapes it and
every dashboard expression has data, `promtool check metrics` accepts its /metrics, and
Apprise delivers its events to a local receiver, a dead receiver notwithstanding."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cacherr.metrics import CATALOGUE
from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.sandbox import Sandbox
from tests.e2e.cycle_support import populate, small_world, write_rules
from tests.e2e.prometheus_helper import (
    Query,
    alert_queries,
    dashboard_queries,
    running_prometheus,
)
from tests.e2e.service_support import RunningService
from tests.helpers import require_fuse, require_tool, wait_for

MISSING = "Movies/Watchlist Movie (2001)/Watchlist Movie (2001).mkv"


class Receiver:
    """An Apprise json:// sink on loopback: every notification's JSON body, in order."""

    def __init__(self):
        self.messages: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.messages.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/notify"

    def titles(self) -> list[str]:
        with self.lock:
            return [message.get("title", "") for message in self.messages]

    def close(self):
        self.server.shutdown()


@pytest.fixture
def observed(tmp_path):
    require_fuse()
    scenario = small_world()
    receiver = Receiver()
    with FakePlex(scenario) as fake, Sandbox(tmp_path / "sb", disks=2) as sandbox:
        written = populate(sandbox, scenario)
        for branch in sandbox.slow:  # Plex lists a file no disk holds: its transfer fails
            (branch / MISSING).unlink(missing_ok=True)
        rules = write_rules(tmp_path / "rules.yaml", fake, sandbox, tmp_path / "state")
        rules.write_text(rules.read_text() + (
            "schedule: {every: 1h, sessions_every: 2s}\n"
            "server: {listen: '127.0.0.1:0'}\n"
            f"notify: {{urls: ['{receiver.url}', 'json://127.0.0.1:1/refused'], "
            "events: [summary, error, cache_full, source_down, source_recovered]}\n"))
        service = RunningService(rules, tmp_path / "state", fake.env())
        try:
            yield fake, sandbox, written, service, receiver, tmp_path
        finally:
            service.stop()
            receiver.close()


def test_the_running_service_is_watched_by_prometheus_promtool_and_apprise(observed):
    fake, sandbox, written, service, receiver, tmp_path = observed
    # Apprise: a summary after the cycle that moved files, and an error for the failure.
    wait_for(lambda: any("summary" in t.lower() or "cached" in t.lower()
                         for t in receiver.titles()), what="the summary notification")
    wait_for(lambda: any("fail" in t.lower() for t in receiver.titles()),
             what="the error notification")
    # promtool accepts the exposition of the running service.
    promtool = require_tool("promtool")
    _, body = service.get("/metrics")
    checked = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = body.decode()
    for spec in CATALOGUE:
        assert spec.name in text, spec.name
    # A real Prometheus scrapes it; every dashboard expression returns data.
    port = service.origin.rsplit(":", 1)[1]
    with running_prometheus(tmp_path / "prometheus", [f"127.0.0.1:{port}"]) as prometheus:
        prometheus.wait_for_targets_up(1)
        answers = prometheus.wait_for_results(dashboard_queries(), timeout_seconds=40)
        assert set(answers) == {query.expr for query in dashboard_queries()}
        # Alert expressions are quiet while nothing is wrong; every series each one reads
        # (with its label matchers) must exist in the scraped data.
        series = [Query(query.origin, name + (labels or ""))
                  for query in alert_queries()
                  for name, labels in re.findall(
                      r"\b(cacherr_[a-z0-9_]+|up|process_[a-z_]+)(\{[^}]*\})?", query.expr)]
        assert len(series) >= len(alert_queries())
        prometheus.wait_for_results(series, timeout_seconds=40)
    # source_down then source_recovered, and the dead receiver never stopped the loop.
    # Plex goes down: its alert stream closes with it, and sessions are polled again.
    fake.fail("pms", "/", status=500)
    fake.alerts.kill()
    wait_for(lambda: any("down" in t.lower() for t in receiver.titles()), timeout_seconds=20,
             what="source_down")
    fake.clear_faults()
    wait_for(lambda: any("recover" in t.lower() for t in receiver.titles()), timeout_seconds=20,
             what="source_recovered")
    assert service.process.poll() is None
    assert service.metric("cacherr_notification_failures_total", 'event="summary"') >= 1
