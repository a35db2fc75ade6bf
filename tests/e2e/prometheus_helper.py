"""A real Prometheus (the Debian `prometheus` binary) on loopback, for end-to-end tests.

`running_prometheus(workdir, targets)` starts one scraping `targets` every second with the
shipped alert rules loaded, and stops it afterwards. `dashboard_queries()` and
`alert_queries()` give every PromQL expression the shipped dashboard and rules run, with
Grafana's variables replaced so Prometheus can evaluate them.

Every wait is a bounded poll of an observable state (ready, target up, non-empty result).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.helpers import require_tool

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "grafana" / "cacherr.json"
RULES = ROOT / "prometheus" / "cacherr.rules.yml"
POLL_SECONDS = 0.1

# Grafana's variables, replaced so that Prometheus can evaluate a panel's expression.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "$job": ".+",
    "$instance": ".+",
}


class PrometheusError(Exception):
    """Prometheus did not start, or did not get where a test needed it in time."""


@dataclass
class Query:
    """One expression to evaluate, and where it comes from (for messages)."""

    origin: str
    expr: str


@dataclass
class Prometheus:
    """A running Prometheus: its origin and process, and the few API calls tests need."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def api(self, path: str, **params: str) -> dict:
        """GET /api/v1/<path> and return its JSON document (errors are documents too)."""
        query = urllib.parse.urlencode(params)
        request = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            return json.load(error)

    def query(self, expr: str) -> dict:
        """Evaluate an instant query now; return the API's document."""
        return self.api("query", query=expr)

    def targets(self) -> list[dict]:
        return self.api("targets")["data"]["activeTargets"]

    def wait_for_targets_up(self, count: int, timeout_seconds: float = 30.0) -> list[dict]:
        """Poll /api/v1/targets until `count` targets are up; raise PrometheusError if not."""
        deadline = time.monotonic() + timeout_seconds
        targets: list[dict] = []
        while time.monotonic() < deadline:
            self.check_alive()
            targets = self.targets()
            if len([t for t in targets if t["health"] == "up"]) >= count:
                return targets
            time.sleep(POLL_SECONDS)
        raise PrometheusError(f"targets not up within {timeout_seconds}s: {targets}")

    def wait_for_results(self, queries: Iterable[Query], timeout_seconds: float = 30.0
                         ) -> dict[str, dict]:
        """Poll until every query succeeds with a non-empty result; return {expr: document}.

        Raise PrometheusError naming the queries that failed or stayed empty. Rates need two
        scrapes, so an empty result is retried until the deadline; a failed one is not.
        """
        pending = {query.expr: query for query in queries}
        answers: dict[str, dict] = {}
        deadline = time.monotonic() + timeout_seconds
        while pending:
            for expr, query in list(pending.items()):
                document = self.query(expr)
                answers[expr] = document
                if document.get("status") != "success":
                    raise PrometheusError(f"{query.origin}: {expr}: {document}")
                if document["data"]["result"]:
                    del pending[expr]
            if not pending or time.monotonic() >= deadline:
                break
            self.check_alive()
            time.sleep(POLL_SECONDS)
        if pending:
            empty = "\n".join(f"  {query.origin}: {query.expr}" for query in pending.values())
            raise PrometheusError(f"empty after {timeout_seconds}s:\n{empty}")
        return answers

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise PrometheusError(f"prometheus exited {self.process.returncode}:\n"
                                  + self.log_path.read_text(errors="replace")[-4000:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_config(workdir: Path, targets: Iterable[str], rule_files: Iterable[Path],
                 job: str = "cacherr", scrape_interval: str = "1s") -> Path:
    """Write a prometheus.yml scraping `targets` (host:port) as `job`; return its path."""
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval,
                   "scrape_timeout": scrape_interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
    }
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def running_prometheus(workdir: Path, targets: Iterable[str],
                       rule_files: Iterable[Path] = (RULES,), job: str = "cacherr",
                       ready_timeout_seconds: float = 30.0) -> Iterator[Prometheus]:
    """Start Prometheus on 127.0.0.1 scraping `targets` every second; stop it on exit.

    Skips (fails in CI) without the `prometheus` binary. Raise PrometheusError if it does
    not become ready in time.
    """
    binary = require_tool("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(workdir, targets, rule_files, job)
    port = free_port()
    log_path = workdir / "prometheus.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
             "--web.enable-lifecycle"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    prometheus = Prometheus(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    try:
        deadline = time.monotonic() + ready_timeout_seconds
        while True:
            prometheus.check_alive()
            try:
                with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() >= deadline:
                raise PrometheusError(f"prometheus not ready within {ready_timeout_seconds}s")
            time.sleep(POLL_SECONDS)
        yield prometheus
    finally:
        prometheus.stop()


def substitute(expr: str) -> str:
    """Replace Grafana's variables in a dashboard expression."""
    for variable in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(variable, GRAFANA_VARIABLES[variable])
        expr = expr.replace("${" + variable[1:] + "}", GRAFANA_VARIABLES[variable])
    return expr


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_queries(path: Path = DASHBOARD) -> list[Query]:
    """Return every panel target of the dashboard, ready for Prometheus."""
    dashboard = json.loads(path.read_text())
    return [Query(f"panel {panel['title']!r} {target['refId']}", substitute(target["expr"]))
            for panel in _panels(dashboard["panels"]) for target in panel.get("targets", [])]


def alert_queries(path: Path = RULES) -> list[Query]:
    """Return the expression of every alert rule."""
    document = yaml.safe_load(path.read_text())
    return [Query(f"alert {rule['alert']}", rule["expr"])
            for group in document["groups"] for rule in group["rules"]]
