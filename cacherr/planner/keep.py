"""Keep rules: does a rule still keep a file it selected?"""

from __future__ import annotations

from collections.abc import Iterable

from cacherr.config.model import Rule
from cacherr.planner.model import PlanInput
from cacherr.state.ledger import Attribution


def rule_keeps(rule: Rule | None, relative_path: str, attributions: Iterable[Attribution],
               selected_now: bool, plan_input: PlanInput) -> bool:
    """Given one rule and its attributions of one file, return True while it keeps the file.

    A rule that is gone from the config keeps nothing. A rule this round did not evaluate,
    or whose source failed within the grace, keeps what it selected. Otherwise its `keep`
    decides: while selected (and `min` after), `for` D from first selection, or
    `until` watched by every user it was selected for (and `grace` after).
    """
    if rule is None:
        return False
    rows = list(attributions)
    now = plan_input.now
    if rule.name not in plan_input.evaluated_rules:
        return bool(rows) or selected_now
    failing_since = plan_input.failed_rules.get(rule.name)
    if failing_since is not None and rows and \
            now - failing_since < plan_input.source_failure_grace_seconds:
        return True  # past the grace, keep rules apply to what the rule still selects
    keep = rule.keep
    first = min((row.first_selected_at for row in rows), default=now)
    last = max((row.last_selected_at for row in rows), default=now)
    if keep.for_seconds is not None:
        return now - first < keep.for_seconds
    if keep.until_watched:
        if selected_now:
            return True
        users = {row.user for row in rows}
        watched = plan_input.watched.get(relative_path, {})
        if not users or any(user not in watched for user in users):
            return True
        return now - max(watched[user] for user in users) < keep.grace_seconds
    return selected_now or now - last < keep.min_seconds


def wanted_and_kept(rule: Rule | None, relative_path: str,
                    attributions: Iterable[Attribution], plan_input: PlanInput) -> bool:
    """A rule that selects a file this round wants it cached while its keep allows:
    `for: D` wants it only for D from first selection (no re-caching after)."""
    if rule is None:
        return False
    if rule.keep.for_seconds is not None:
        first = min((row.first_selected_at for row in attributions), default=plan_input.now)
        return plan_input.now - first < rule.keep.for_seconds
    return True
