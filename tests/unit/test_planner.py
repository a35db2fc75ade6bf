"""The planner's semantics (SPEC §4 "Precise behaviour"), one behaviour per test."""

from dataclasses import replace

from cacherr.planner import make_plan
from tests.unit.planner_support import (
    NOW,
    GiB,
    attribution,
    cached,
    execute,
    plan_input,
    rule,
    want,
)


def kinds(plan):
    return [(a.kind, a.relative_path, a.reason) for a in plan.actions]


def test_wanted_files_are_cached_by_priority_within_the_budget():
    rules = [rule("high", 90), rule("low", 10)]
    inp = plan_input(rules=rules, total=100 * GiB, max_size=30 * GiB, wants=[
        want("a.mkv", 20 * GiB, "low", 10), want("b.mkv", 20 * GiB, "high", 90)])
    plan = make_plan(inp)
    assert kinds(plan) == [("cache", "b.mkv", ""), ("skip", "a.mkv", "no_space")]
    assert plan.add_bytes == 20 * GiB


def test_a_file_no_rule_keeps_is_evicted_however_much_space_is_free():
    inp = plan_input(rules=[rule("r")], cached_files=[cached("a.mkv", GiB)],
                     attributions=[attribution("a.mkv", "r", last=NOW - 5)])
    assert kinds(make_plan(inp)) == [("evict", "a.mkv", "released")]


def test_while_selected_keeps_for_min_after_the_last_selection():
    r = rule("r", while_selected=True, min_seconds=3600)
    base = dict(rules=[r], cached_files=[cached("a.mkv", GiB)])
    recent = plan_input(**base, attributions=[attribution("a.mkv", "r", last=NOW - 600)])
    old = plan_input(**base, attributions=[attribution("a.mkv", "r", last=NOW - 7200)])
    assert make_plan(recent).moves == ()
    assert kinds(make_plan(old)) == [("evict", "a.mkv", "released")]


def test_for_counts_from_first_selection_and_does_not_cache_again_after():
    r = rule("r", for_seconds=86400)
    attrs = [attribution("a.mkv", "r", first=NOW - 2 * 86400)]
    evicting = plan_input(rules=[r], cached_files=[cached("a.mkv", GiB)], attributions=attrs,
                          wants=[want("a.mkv", GiB, "r")])
    assert kinds(make_plan(evicting)) == [("evict", "a.mkv", "released")]
    after = plan_input(rules=[r], attributions=attrs, wants=[want("a.mkv", GiB, "r")])
    assert make_plan(after).actions == ()


def test_until_watched_waits_for_every_user_and_the_grace():
    r = rule("r", until_watched=True, grace_seconds=3600)
    attrs = [attribution("a.mkv", "r", "alice"), attribution("a.mkv", "r", "bob")]
    base = dict(rules=[r], cached_files=[cached("a.mkv", GiB)], attributions=attrs)
    one = plan_input(**base, watched={"a.mkv": {"alice": NOW - 9000}})
    both_recent = plan_input(**base, watched={"a.mkv": {"alice": NOW - 9000, "bob": NOW - 60}})
    both_old = plan_input(**base, watched={"a.mkv": {"alice": NOW - 9000, "bob": NOW - 4000}})
    assert make_plan(one).moves == ()
    assert make_plan(both_recent).moves == ()
    assert kinds(make_plan(both_old)) == [("evict", "a.mkv", "released")]


def test_a_failed_source_keeps_what_it_selected_for_the_grace_only():
    r = rule("r")
    base = dict(rules=[r], cached_files=[cached("a.mkv", GiB)],
                attributions=[attribution("a.mkv", "r", last=NOW - 3600)],
                source_failure_grace_seconds=86400)
    within = plan_input(**base, failed_rules={"r": NOW - 3600})
    after = plan_input(**base, failed_rules={"r": NOW - 2 * 86400})
    assert make_plan(within).moves == ()
    assert kinds(make_plan(after)) == [("evict", "a.mkv", "released")]


def test_a_partial_round_never_evicts_for_rules_it_did_not_evaluate():
    rules = [rule("ondeck"), rule("playing")]
    inp = plan_input(rules=rules, evaluated_rules=frozenset({"playing"}),
                     cached_files=[cached("a.mkv", GiB)],
                     attributions=[attribution("a.mkv", "ondeck", last=NOW - 9999)])
    assert make_plan(inp).moves == ()


def test_a_file_in_a_live_session_is_never_evicted():
    inp = plan_input(rules=[rule("r")], cached_files=[cached("a.mkv", GiB)],
                     attributions=[attribution("a.mkv", "r", last=NOW - 99)],
                     live=frozenset({"a.mkv"}))
    assert kinds(make_plan(inp)) == [("skip", "a.mkv", "in_session")]


def test_a_removed_rule_keeps_nothing():
    inp = plan_input(rules=[rule("other")], cached_files=[cached("a.mkv", GiB)],
                     attributions=[attribution("a.mkv", "gone")])
    assert kinds(make_plan(inp)) == [("evict", "a.mkv", "released")]


def test_a_wanted_file_already_on_the_fast_branch_is_adopted_without_a_copy():
    inp = plan_input(rules=[rule("r")], wants=[want("a.mkv", GiB, "r")],
                     on_fast=frozenset({"a.mkv"}))
    plan = make_plan(inp)
    assert kinds(plan) == [("adopt", "a.mkv", "")]
    assert plan.add_bytes == 0


def test_pressure_from_other_writers_evicts_lowest_priority_down_to_the_margin():
    rules = [rule("hi", 90), rule("lo", 10)]
    files = [cached(f"lo{i}.mkv", 10 * GiB) for i in range(3)] + [cached("hi.mkv", 10 * GiB)]
    attrs = [attribution(c.relative_path, "lo" if c.relative_path.startswith("lo") else "hi")
             for c in files]
    wants = [want(c.relative_path, 10 * GiB, a.rule, 90 if a.rule == "hi" else 10)
             for c, a in zip(files, attrs, strict=True)]
    # 100 GiB pool, min_free 20 GiB; others just filled it to 5 GiB free.
    inp = plan_input(rules=rules, cached_files=files, attributions=attrs, wants=wants,
                     total=100 * GiB, free=5 * GiB, min_free=20 * GiB)
    plan = make_plan(inp)
    evicted = [a.relative_path for a in plan.actions if a.kind == "evict"]
    assert all(a.reason == "pressure" for a in plan.of_kind("evict"))
    assert "hi.mkv" not in evicted and len(evicted) == 2  # 15 GiB short + a 5 GiB margin
    assert make_plan(execute(inp, plan)).moves == ()


def test_one_new_file_does_not_evict_one_old_file_every_cycle():
    rules = [rule("r", 50)]
    files = [cached(f"f{i}.mkv", 10 * GiB) for i in range(5)]
    attrs = [attribution(c.relative_path, "r") for c in files]
    wants = [want(c.relative_path, 10 * GiB, "r") for c in files]
    inp = plan_input(rules=rules, cached_files=files, attributions=attrs, wants=wants,
                     total=100 * GiB, free=45 * GiB, min_free=40 * GiB)
    assert make_plan(inp).moves == ()
    # Another writer takes 6 GiB: pressure, down to the margin in one go...
    squeezed = replace(inp, space=replace(inp.space, free_bytes=39 * GiB))
    first = make_plan(squeezed)
    assert len(first.of_kind("evict")) == 1
    after = execute(squeezed, first)
    # ...then another small write stays within the margin and evicts nothing.
    assert make_plan(replace(after, space=replace(after.space,
                                                  free_bytes=after.space.free_bytes - GiB))).moves == ()


def test_a_higher_priority_newcomer_displaces_lower_priorities():
    rules = [rule("hi", 90), rule("lo", 10)]
    files = [cached("lo.mkv", 20 * GiB)]
    inp = plan_input(rules=rules, cached_files=files, attributions=[attribution("lo.mkv", "lo")],
                     wants=[want("lo.mkv", 20 * GiB, "lo", 10), want("hi.mkv", 20 * GiB, "hi", 90)],
                     total=100 * GiB, max_size=30 * GiB)
    plan = make_plan(inp)
    assert kinds(plan) == [("evict", "lo.mkv", "displaced"), ("cache", "hi.mkv", "")]


def test_held_files_are_not_cached():
    inp = plan_input(rules=[rule("r")], wants=[want("a.mkv", GiB, "r")],
                     holds={"a.mkv": NOW + 60})
    assert kinds(make_plan(inp)) == [("skip", "a.mkv", "held")]


def test_a_file_bigger_than_the_whole_budget_is_skipped_without_blocking_others():
    inp = plan_input(rules=[rule("r")], total=100 * GiB, max_size=10 * GiB,
                     wants=[want("huge.mkv", 50 * GiB, "r", 90), want("small.mkv", GiB, "r")])
    assert kinds(make_plan(inp)) == [("cache", "small.mkv", ""),
                                     ("skip", "huge.mkv", "too_large")]


def test_totals_report_what_is_used_added_and_freed():
    inp = plan_input(rules=[rule("r")], cached_files=[cached("old.mkv", 3 * GiB)],
                     attributions=[attribution("old.mkv", "r", last=NOW - 99)],
                     wants=[want("new.mkv", 2 * GiB, "r")])
    plan = make_plan(inp)
    assert (plan.used_bytes, plan.add_bytes, plan.free_bytes) == (3 * GiB, 2 * GiB, 3 * GiB)


def test_a_file_evicted_for_space_is_not_cached_again_during_the_cool_down():
    inp = plan_input(rules=[rule("r")], wants=[want("a.mkv", GiB, "r")],
                     evicted_for_space={"a.mkv": NOW - 60}, cooldown_seconds=3600)
    assert kinds(make_plan(inp)) == [("skip", "a.mkv", "cooldown")]
    later = replace(inp, now=NOW + 3600)
    assert kinds(make_plan(later)) == [("cache", "a.mkv", "")]


def test_sidecar_bytes_count_against_max_size():
    inp = plan_input(rules=[rule("r")], total=100 * GiB, max_size=10 * GiB,
                     wants=[want("a.mkv", 9 * GiB, "r")], margin_fraction=0.0)
    assert kinds(make_plan(inp)) == [("cache", "a.mkv", "")]
    squeezed = replace(inp, reserved_bytes=2 * GiB)
    assert kinds(make_plan(squeezed)) == [("skip", "a.mkv", "too_large")]


# --- viewing queues (one user's look-ahead in one show) stay contiguous


def _episodes(queue: str, sizes_gib, rule_name="ondeck", priority=80, first_position=1):
    return [want(f"{queue}/e{n}.mkv", size * GiB, rule_name, priority,
                 queues=[(f"{rule_name}/alice/{queue}", first_position + n)])
            for n, size in enumerate(sizes_gib)]


def test_a_queue_is_cut_where_an_episode_does_not_fit_even_if_a_later_one_would():
    # e0 and e1 fit, e2 (8 GiB) does not; e3 (1 GiB) would, but a gap at e2 helps no one.
    inp = plan_input(rules=[rule("ondeck", 80)], total=100 * GiB, max_size=11 * GiB,
                     wants=_episodes("show", [2, 2, 8, 1]))
    assert kinds(make_plan(inp)) == [
        ("cache", "show/e0.mkv", ""), ("cache", "show/e1.mkv", ""),
        ("skip", "show/e2.mkv", "no_space"), ("skip", "show/e3.mkv", "no_space")]


def test_under_pressure_every_queue_loses_its_far_end_before_anyones_next_episode():
    # Two shows of 3 cached episodes each; the pool shrank to room for four of them.
    wants = _episodes("a", [1, 1, 1]) + _episodes("b", [1, 1, 1])
    files = [cached(w.relative_path, w.size_bytes) for w in wants]
    inp = plan_input(rules=[rule("ondeck", 80)], cached_files=files, total=100 * GiB,
                     max_size=4 * GiB + GiB // 4, wants=wants,
                     attributions=[attribution(w.relative_path, "ondeck") for w in wants])
    evicted = sorted(a.relative_path for a in make_plan(inp).of_kind("evict"))
    assert evicted == ["a/e2.mkv", "b/e2.mkv"]


def test_an_episode_beyond_the_cut_leaves_and_the_gap_stays_closed_next_cycle():
    # e1 cooling down after an eviction for space: the cached e2 after it leaves too,
    # and planning again asks for nothing.
    wants = _episodes("show", [1, 1, 1])
    inp = plan_input(rules=[rule("ondeck", 80)], total=100 * GiB, wants=wants,
                     cached_files=[cached("show/e0.mkv", GiB), cached("show/e2.mkv", GiB)],
                     attributions=[attribution(w.relative_path, "ondeck") for w in wants],
                     evicted_for_space={"show/e1.mkv": NOW - 60})
    plan = make_plan(inp)
    assert kinds(plan) == [("evict", "show/e2.mkv", "displaced"),
                           ("skip", "show/e1.mkv", "cooldown")]
    assert make_plan(execute(inp, plan)).moves == ()


def test_what_someone_is_in_the_middle_of_comes_before_anyones_next_episode():
    in_progress = want("movie.mkv", 3 * GiB, "ondeck", 80, queues=[("ondeck/bob/movie:7", 0)])
    inp = plan_input(rules=[rule("ondeck", 80)], total=100 * GiB, max_size=4 * GiB,
                     wants=[*_episodes("show", [3]), in_progress])
    assert [a.relative_path for a in make_plan(inp).of_kind("cache")] == ["movie.mkv"]


def test_a_file_another_user_needs_next_stays_though_it_is_far_in_someone_elses_queue():
    # bob is two episodes ahead of alice: alice's e2 is bob's next one.
    alice = _episodes("show", [1, 1, 5])
    shared = want("show/e2.mkv", 5 * GiB, "ondeck", 80, users=("bob",),
                  queues=[("ondeck/bob/show", 1)])
    inp = plan_input(rules=[rule("ondeck", 80)], total=100 * GiB, max_size=7 * GiB,
                     wants=[*alice, shared])
    # e0 and bob's next episode come first; alice's e1 no longer fits, and e2 stays for bob.
    assert kinds(make_plan(inp)) == [("cache", "show/e0.mkv", ""), ("cache", "show/e2.mkv", ""),
                                     ("skip", "show/e1.mkv", "no_space")]


def test_a_position_whose_keep_ran_out_leaves_no_gap_in_that_queue():
    # `watch` (for: 7d) selected e0 seven days ago and e1 just now: e0 is no longer wanted
    # by `watch`, so e1 is that queue's next file. `ondeck` wants e0 too, but e0 does not
    # fit; that cuts `ondeck`'s queue only. (Found by the contiguity property in CI.)
    week = 7 * 86400
    wants = [want("e0.mkv", GiB, "ondeck", 80, queues=[("ondeck/alice/show", 3)]),
             want("e0.mkv", GiB, "watch", 50, queues=[("watch/alice/show", 3)]),
             want("e1.mkv", GiB, "watch", 50, queues=[("watch/alice/show", 9)]),
             want("big.mkv", 5 * GiB, "ondeck", 80, queues=[("ondeck/alice/show", 1)])]
    inp = plan_input(rules=[rule("ondeck", 80), rule("watch", 50, for_seconds=week)],
                     total=100 * GiB, max_size=5 * GiB, wants=wants,
                     attributions=[attribution("e0.mkv", "watch", "alice", first=NOW - week),
                                   attribution("e1.mkv", "watch", "alice", first=NOW)])
    assert kinds(make_plan(inp)) == [("cache", "e1.mkv", ""), ("skip", "big.mkv", "too_large"),
                                     ("skip", "e0.mkv", "no_space")]
