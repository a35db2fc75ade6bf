"""Properties of the planner over random worlds (hypothesis)."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cacherr.planner import make_plan
from tests.unit.planner_support import (
    NOW,
    GiB,
    attribution,
    beyond_a_gap,
    cached,
    dropped_positions,
    execute,
    plan_input,
    rule,
    want,
)

RULES = [
    rule("ondeck", 80, while_selected=True, min_seconds=3600),
    rule("watch", 50, for_seconds=7 * 86400),
    rule("play", 90, until_watched=True, grace_seconds=600),
    rule("trend", 20),
]
NAMES = [r.name for r in RULES]
PRIORITY = {r.name: r.priority for r in RULES}


@st.composite
def worlds(draw):
    paths = [f"f{i:02d}.mkv" for i in range(draw(st.integers(1, 14)))]
    sizes = {p: draw(st.integers(1, 12)) * GiB for p in paths}
    cached_paths = draw(st.lists(st.sampled_from(paths), unique=True))
    adopted = set(draw(st.lists(st.sampled_from(cached_paths), unique=True))) if cached_paths else set()
    files = [cached(p, sizes[p], "adopted" if p in adopted else "cached") for p in cached_paths]
    # Files are episodes of up to three shows (or, with none, movies outside any queue);
    # each user is somewhere in each show: bob may be some episodes ahead of alice.
    shows = draw(st.integers(0, 3))
    shift = {"alice": 0, "bob": draw(st.integers(0, 3))}
    wants, attrs = [], []
    for index, p in enumerate(paths):
        for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=2)):
            users = draw(st.sampled_from([("alice",), ("bob",), ("alice", "bob")]))
            queues = [(f"{name}/{user}/show{index % shows}", index // shows + shift[user])
                      for user in users] if shows else []
            wants.append(want(p, sizes[p], name, PRIORITY[name], users=users, queues=queues))
            first = NOW - draw(st.integers(0, 10)) * 86400
            for user in users:
                attrs.append(attribution(p, name, user, first=first, last=NOW))
    for p in cached_paths:  # older selections of cached files by rules that no longer select
        for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=1)):
            if not any(a.relative_path == p and a.rule == name and a.user == "alice"
                       for a in attrs):
                attrs.append(attribution(p, name, "alice", first=NOW - 86400,
                                         last=NOW - draw(st.integers(0, 7200))))
    total = 100 * GiB
    own = sum(c.fast.size_bytes for c in files if c.kind != "adopted")
    others = draw(st.integers(0, max(0, total - own) // GiB)) * GiB
    wanted_uncached = [p for p in paths if p not in cached_paths]
    on_fast = frozenset(draw(st.lists(st.sampled_from(wanted_uncached), unique=True))
                        if wanted_uncached else [])
    failed = {name: NOW - draw(st.integers(0, 2)) * 86400
              for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=1))}
    evaluated = frozenset(draw(st.lists(st.sampled_from(NAMES), unique=True, min_size=1)))
    return plan_input(
        rules=RULES, wants=wants, cached_files=files, attributions=attrs, total=total,
        free=total - own - others - sum(sizes[p] for p in on_fast),
        max_size=draw(st.integers(5, 100)) * GiB, min_free=draw(st.integers(0, 30)) * GiB,
        watched={p: {"alice": NOW - draw(st.integers(0, 3600))}
                 for p in draw(st.lists(st.sampled_from(paths), unique=True))},
        on_fast=on_fast,
        live=frozenset(draw(st.lists(st.sampled_from(paths), unique=True, max_size=2))),
        failed_rules=failed, evaluated_rules=evaluated,
    )


PROPERTY = settings(suppress_health_check=[HealthCheck.too_slow])


def _usage_and_free(world):
    return (sum(c.fast.size_bytes for c in world.cached), world.space.free_bytes)


@PROPERTY
@given(worlds())
def test_cacherrs_own_additions_never_take_the_pool_past_the_budget(world):
    plan = make_plan(world)
    if not plan.of_kind("cache") and not plan.of_kind("adopt"):
        return
    after = execute(world, plan)
    usage, free = _usage_and_free(after)
    total = world.space.total_bytes
    assert usage <= world.max_size.bytes_of(total)
    assert free >= world.min_free.bytes_of(total)


@PROPERTY
@given(worlds())
def test_a_higher_priority_file_is_never_evicted_while_a_lower_priority_one_stays(world):
    plan = make_plan(world)
    evicted = {a.relative_path: a for a in plan.of_kind("evict")
               if a.reason in ("pressure", "displaced")}
    if not evicted:
        return
    gone = {a.relative_path for a in plan.of_kind("evict")}
    failed = set(world.failed_rules)
    dropped = dropped_positions(world, plan)  # leaving to keep a queue contiguous is allowed
    for entry in world.cached:
        path = entry.relative_path
        if path in gone or path in world.live:
            continue
        stay_rules = {a.rule for a in world.attributions if a.relative_path == path} | \
                     {w.rule for w in world.wants if w.relative_path == path}
        protected = bool(stay_rules & failed)
        stay_priority = max((PRIORITY[r] for r in stay_rules if r in PRIORITY), default=0)
        for action in evicted.values():
            if not protected and not beyond_a_gap(world, action.relative_path,
                                                  action.priority, dropped):
                assert not action.priority > stay_priority, (action, path)


@PROPERTY
@given(worlds())
def test_nothing_a_failed_source_selected_is_released_within_the_grace(world):
    plan = make_plan(world)
    for action in plan.of_kind("evict"):
        if action.reason != "released":
            continue
        rules = {a.rule for a in world.attributions if a.relative_path == action.relative_path}
        for name in rules & set(world.failed_rules):
            assert NOW - world.failed_rules[name] >= world.source_failure_grace_seconds or \
                name not in world.evaluated_rules


@PROPERTY
@given(worlds())
def test_a_partial_round_evicts_nothing_for_rules_it_did_not_evaluate(world):
    plan = make_plan(world)
    for action in plan.of_kind("evict"):
        if action.reason == "released":
            rules = {a.rule for a in world.attributions if a.relative_path == action.relative_path}
            assert not (rules & (set(NAMES) - world.evaluated_rules)), action


@PROPERTY
@given(worlds())
def test_planning_again_right_after_executing_a_plan_gives_no_actions(world):
    plan = make_plan(world)
    again = make_plan(execute(world, plan))
    assert again.moves == (), "\n".join(map(str, plan.actions + ("--",) + again.actions))


@PROPERTY
@given(worlds(), st.randoms(use_true_random=False))
def test_the_plan_does_not_depend_on_the_order_of_its_inputs(world, rnd: random.Random):
    def shuffled(items):
        items = list(items)
        rnd.shuffle(items)
        return tuple(items)

    mixed = replace(world, wants=shuffled(world.wants), cached=shuffled(world.cached),
                    attributions=shuffled(world.attributions))
    assert make_plan(mixed) == make_plan(world)


def _kept_beyond_gaps(world, plan):
    """Files on the fast branch after the plan that lie beyond a gap in their queues,
    other than live files and those a failed source protects."""
    after = {c.relative_path for c in execute(world, plan).cached}
    dropped = dropped_positions(world, plan)
    failed = set(world.failed_rules) & set(world.evaluated_rules)
    found = []
    for path in sorted(after - world.live):
        rules = {w.rule for w in world.wants if w.relative_path == path}
        if rules & failed:
            continue
        priority = max((PRIORITY[r] for r in rules), default=0)
        if beyond_a_gap(world, path, priority, dropped):
            found.append(path)
    return found


@PROPERTY
@given(worlds())
def test_every_viewing_queue_stays_contiguous_whatever_the_budget(world):
    """After the plan, no file sits on the fast branch beyond a position of its queue that
    was left off for want of room, unless someone plays it, a failed source protects it,
    a higher priority or a rule outside any queue wants it."""
    plan = make_plan(world)
    assert _kept_beyond_gaps(world, plan) == [], plan.actions
