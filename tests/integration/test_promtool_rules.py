"""The shipped alert rules load in Prometheus and pass their own promtool unit tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import require_tool

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "prometheus"


def run_promtool(*arguments: str) -> subprocess.CompletedProcess:
    promtool = require_tool("promtool")
    return subprocess.run([promtool, *arguments], cwd=PROMETHEUS_DIR, capture_output=True,
                          text=True, timeout=60, check=False)


def test_promtool_check_rules_accepts_the_alert_rules():
    completed = run_promtool("check", "rules", "cacherr.rules.yml")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "SUCCESS: 8 rules found" in completed.stdout


def test_promtool_test_rules_passes_a_firing_and_a_quiet_case_for_each_alert():
    completed = run_promtool("test", "rules", "cacherr.rules.test.yml")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "SUCCESS" in completed.stdout


def test_every_alert_has_a_promtool_case_that_fires_and_one_that_stays_quiet():
    import yaml

    rules = yaml.safe_load((PROMETHEUS_DIR / "cacherr.rules.yml").read_text())
    tests = yaml.safe_load((PROMETHEUS_DIR / "cacherr.rules.test.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert alerts == {"CacherrDown", "NoRecentSuccess", "SchedulerStalled", "CacheAlmostFull",
                      "SourceDown", "MoveFailures", "ConfigReloadFailed", "AlertStreamDown"}
    firing, quiet = set(), set()
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == alerts
    assert quiet == alerts
