"""Builders for planner inputs, and a model of carrying out a plan (for property tests)."""

from __future__ import annotations

from dataclasses import replace

from cacherr.config.model import Keep, Rule, Size
from cacherr.planner import Plan, PlanInput, Space, Want
from cacherr.planner.keep import wanted_and_kept
from cacherr.state.ledger import Attribution, CachedFile, FileIdentity

GiB = 2**30
NOW = 1_000_000.0


def rule(name: str, priority: int = 50, **keep) -> Rule:
    keep_value = Keep(**keep) if keep else Keep(while_selected=True)
    return Rule(name=name, select="ondeck", keep=keep_value, priority=priority)


def cached(path: str, size: int, kind: str = "cached") -> CachedFile:
    return CachedFile(relative_path=path, layout="union", original="shadow", kind=kind,
                      fast_branch="/fast", fast=FileIdentity(size, 1, 1),
                      slow_branch="/slow", slow=FileIdentity(size, 1, 2), cached_at=NOW - 10)


def attribution(path: str, rule_name: str, user: str = "", first: float = NOW - 100,
                last: float = NOW) -> Attribution:
    return Attribution(path, rule_name, user, first, last)


def plan_input(*, rules, wants=(), cached_files=(), attributions=(), total=100 * GiB,
               free=None, max_size="100%", min_free=0, **extra) -> PlanInput:
    used = sum(c.fast.size_bytes for c in cached_files if c.kind != "adopted")
    rules_by_name = {r.name: r for r in rules}
    return PlanInput(
        now=extra.pop("now", NOW),
        rules=rules_by_name,
        evaluated_rules=extra.pop("evaluated_rules", frozenset(rules_by_name)),
        wants=tuple(wants),
        cached=tuple(cached_files),
        attributions=tuple(attributions),
        space=Space(total, free if free is not None else total - used),
        max_size=Size(percent=float(max_size[:-1])) if isinstance(max_size, str) else Size(bytes=max_size),
        min_free=Size(bytes=min_free),
        **extra,
    )


def want(path: str, size: int, rule_name: str, priority: int = 50, users=("alice",),
         queues=()) -> Want:
    return Want(path, size, rule_name, frozenset(users), priority, tuple(queues))


def dropped_positions(world: PlanInput, plan: Plan) -> dict[str, list[tuple[int, int]]]:
    """queue → (position, priority) of the files the plan leaves off the fast branch for
    want of room (skipped for space or a cool-down, or evicted for space). A position whose
    rule no longer wants the file (its `for: D` ran out) is no gap: nobody wants it back."""
    for_space = {a.relative_path: a.priority for a in plan.actions
                 if (a.kind == "skip" and a.reason in ("no_space", "too_large", "cooldown"))
                 or (a.kind == "evict" and a.reason in ("pressure", "displaced"))}
    dropped: dict[str, list[tuple[int, int]]] = {}
    for want_ in world.wants:
        rows = [a for a in world.attributions
                if a.relative_path == want_.relative_path and a.rule == want_.rule]
        if want_.relative_path in for_space and wanted_and_kept(
                world.rules.get(want_.rule), want_.relative_path, rows, world):
            for queue, position in want_.queues:
                dropped.setdefault(queue, []).append((position, for_space[want_.relative_path]))
    return dropped


def beyond_a_gap(world: PlanInput, path: str, priority: int,
                 dropped: dict[str, list[tuple[int, int]]]) -> bool:
    """True if a file of this priority lies beyond a gap in every queue it is in: a nearer
    position of at least its priority was left off. A file some rule wants (or keeps)
    outside any queue is never beyond a gap."""
    wants = [w for w in world.wants if w.relative_path == path]
    rules = {w.rule for w in wants} | {a.rule for a in world.attributions
                                       if a.relative_path == path}
    queued_rules = {w.rule for w in wants if w.queues}
    if not queued_rules or rules - queued_rules:
        return False
    return all(any(d < position and p >= priority for d, p in dropped.get(queue, ()))
               for w in wants for queue, position in w.queues)


def execute(plan_input_: PlanInput, plan: Plan) -> PlanInput:
    """The world after carrying out `plan` perfectly: ledger, space, attributions."""
    by_path = {c.relative_path: c for c in plan_input_.cached}
    free = plan_input_.space.free_bytes
    for action in plan.actions:
        if action.kind == "evict":
            entry = by_path.pop(action.relative_path)
            if entry.kind != "adopted":
                free += entry.fast.size_bytes
        elif action.kind == "cache":
            by_path[action.relative_path] = cached(action.relative_path, action.size_bytes)
            free -= action.size_bytes
        elif action.kind == "adopt":
            by_path[action.relative_path] = cached(action.relative_path, action.size_bytes,
                                                   kind="adopted")
    on_fast = plan_input_.on_fast - {a.relative_path for a in plan.actions if a.kind == "adopt"}
    evicted = dict(plan_input_.evicted_for_space)
    evicted.update({a.relative_path: plan_input_.now for a in plan.actions
                    if a.kind == "evict" and a.reason in ("pressure", "displaced")})
    return replace(plan_input_, cached=tuple(by_path.values()),
                   space=Space(plan_input_.space.total_bytes, free), on_fast=on_fast,
                   evicted_for_space=evicted)
