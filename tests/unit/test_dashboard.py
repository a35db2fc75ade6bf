"""The Grafana dashboard and the alert rules: catalogued metrics only, portable, linted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from cacherr.metrics import CATALOGUE_NAMES

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "grafana" / "cacherr.json"
RULES = ROOT / "prometheus" / "cacherr.rules.yml"

METRIC_NAME = re.compile(r"\bcacherr_[a-z_]+\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Metrics from Prometheus itself or the default collectors, allowed in expressions.
NON_CACHERR_METRICS = {"up", "process_start_time_seconds"}
# Catalogued, but on purpose in neither the dashboard nor the alerts.
NOT_CHARTED = {"cacherr_config_last_reload_success_timestamp_seconds"}
PANEL_KINDS_WITH_UNITS = {"stat", "timeseries", "gauge", "bargauge", "table"}


def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def all_panels(panels: list[dict]) -> list[dict]:
    """Given a panel list, return every panel, including those inside collapsed rows."""
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(all_panels(panel.get("panels", [])))
    return found


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in all_panels(load_dashboard()["panels"])
            for target in panel.get("targets", [])]


def rule_exprs() -> list[str]:
    document = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in document["groups"] for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """Given a PromQL expression, return the cacherr metric names it reads."""
    names = set()
    for name in METRIC_NAME.findall(expr):
        for suffix in HISTOGRAM_SUFFIXES:
            base = name.removesuffix(suffix)
            if base != name and base in CATALOGUE_NAMES:
                name = base
        names.add(name)
    return names


def walk(node):
    """Yield every dict inside a JSON document."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_the_dashboard_only_queries_catalogued_metrics():
    dashboard = load_dashboard()
    variable_queries = [variable["definition"] for variable in dashboard["templating"]["list"]
                        if variable["type"] == "query"]
    exprs = dashboard_exprs() + variable_queries
    assert len(exprs) > 20
    for expr in exprs:
        unknown = metric_names(expr) - CATALOGUE_NAMES
        assert not unknown, f"{expr}: {unknown}"


def test_the_alert_rules_only_use_catalogued_metrics():
    for expr in rule_exprs():
        unknown = metric_names(expr) - CATALOGUE_NAMES
        assert not unknown, f"{expr}: {unknown}"
        words = set(re.findall(r"\b([a-z_]+)\s*(?:\{|$|\s|\))", expr))
        others = {word for word in words if word.endswith(("_seconds", "_total", "_bytes"))
                  and not word.startswith("cacherr_")}
        assert others <= NON_CACHERR_METRICS, expr


def test_the_metric_name_check_catches_a_misspelled_name():
    assert metric_names("rate(cacherr_moved_byte_total[5m])") - CATALOGUE_NAMES == {
        "cacherr_moved_byte_total"}
    assert metric_names("cacherr_run_duration_seconds_bucket") == {
        "cacherr_run_duration_seconds"}


def test_every_catalogued_metric_is_charted_or_alerted_on():
    dashboard = load_dashboard()
    used = set()
    for expr in dashboard_exprs() + rule_exprs() + [
            variable.get("definition", "") for variable in dashboard["templating"]["list"]]:
        used |= metric_names(expr)
    assert CATALOGUE_NAMES - used == NOT_CHARTED


def test_every_panel_has_a_unit_a_title_and_a_description():
    panels = [panel for panel in all_panels(load_dashboard()["panels"])
              if panel["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["type"] in PANEL_KINDS_WITH_UNITS, panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel["title"] and panel.get("description"), panel.get("id")


def test_the_datasource_is_a_variable_and_never_a_hard_coded_uid():
    dashboard = load_dashboard()
    text = DASHBOARD.read_text()
    assert "__inputs" not in dashboard
    assert "${DS_" not in text
    variables = [variable for variable in dashboard["templating"]["list"]
                 if variable["type"] == "datasource"]
    assert [(v["name"], v["query"]) for v in variables] == [("datasource", "prometheus")]
    references = [node["datasource"] for node in walk(dashboard) if "datasource" in node]
    assert references
    for reference in references:
        assert reference == {"type": "prometheus", "uid": "${datasource}"}
    for panel in all_panels(dashboard["panels"]):
        if panel["type"] != "row":
            assert panel.get("datasource") == {"type": "prometheus", "uid": "${datasource}"}


def test_every_rate_and_increase_uses_the_rate_interval():
    exprs = dashboard_exprs()
    functions = 0
    for expr in exprs:
        calls = len(re.findall(r"\b(?:rate|irate|increase|delta|deriv)\(", expr))
        ranges = re.findall(r"\[([^\]]*)\]", expr)
        functions += calls
        assert calls == len(ranges), expr
        assert all(window == "$__rate_interval" for window in ranges), expr
    assert functions > 5


def test_panel_ids_are_unique_and_the_uid_is_fixed():
    dashboard = load_dashboard()
    ids = [panel["id"] for panel in all_panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "cacherr"
    assert dashboard["id"] is None
