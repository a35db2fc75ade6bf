"""Planner benchmark: a synthetic 100,000-item library, 25 users and 5,000 ledger entries.

Prints the wall time and peak RSS of one `make_plan` (the planner alone, inputs built
beforehand) against the targets: < 1 s and < 150 MiB.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cacherr.config.model import Keep, Rule, Size  # noqa: E402
from cacherr.planner import PlanInput, Space, Want, make_plan  # noqa: E402
from cacherr.state.ledger import Attribution, CachedFile, FileIdentity  # noqa: E402

GiB = 2**30


def build(items: int, users: int, cached: int, seed: int = 7) -> PlanInput:
    rnd = random.Random(seed)
    rules = {
        "ondeck": Rule("ondeck", "ondeck", Keep(while_selected=True, min_seconds=86400), 80),
        "watchlist": Rule("watchlist", "watchlist", Keep(for_seconds=7 * 86400), 50),
        "playing": Rule("playing", "playing", Keep(until_watched=True, grace_seconds=3600), 90),
        "trending": Rule("trending", "trakt", Keep(while_selected=True), 20),
    }
    names = [f"user{u}" for u in range(users)]
    now = 2_000_000_000.0
    paths = [f"Media/Item {i:06d}/Item {i:06d}.mkv" for i in range(items)]
    sizes = {p: rnd.randint(1, 40) * GiB // 8 for p in paths}
    wants = []
    for p in rnd.sample(paths, items // 5):  # a fifth of the library is wanted by someone
        rule = rnd.choice(list(rules))
        wants.append(Want(p, sizes[p], rule, frozenset(rnd.sample(names, rnd.randint(1, 3))),
                          rules[rule].priority))
    cached_paths = rnd.sample(paths, cached)
    entries = tuple(CachedFile(p, "union", "shadow", "cached", "/mnt/cache",
                               FileIdentity(sizes[p], 1, i), "/mnt/disk1",
                               FileIdentity(sizes[p], 1, i + 1), cached_at=now - 86400)
                    for i, p in enumerate(cached_paths))
    attributions = tuple(Attribution(p, rnd.choice(list(rules)), rnd.choice(names),
                                     now - rnd.randint(0, 30) * 86400, now - rnd.randint(0, 86400))
                         for p in cached_paths)
    return PlanInput(now=now, rules=rules, evaluated_rules=frozenset(rules), wants=tuple(wants),
                     cached=entries, attributions=attributions,
                     space=Space(4000 * GiB, 1500 * GiB), max_size=Size(percent=80),
                     min_free=Size(bytes=100 * GiB),
                     watched={p: {rnd.choice(names): now - 7200} for p in cached_paths[:500]},
                     live=frozenset(cached_paths[:10]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=25)
    parser.add_argument("--cached", type=int, default=5_000)
    args = parser.parse_args()
    plan_input = build(args.items, args.users, args.cached)
    started = time.perf_counter()
    plan = make_plan(plan_input)
    elapsed = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"plan: {len(plan_input.wants)} wants, {len(plan_input.cached)} cached, "
          f"{len(plan.actions)} actions")
    print(f"wall time {elapsed:.3f} s (target < 1 s), peak RSS {peak_mib:.0f} MiB "
          f"(target < 150 MiB, inputs included)")
    return 0 if elapsed < 1.0 and peak_mib < 150 else 1


if __name__ == "__main__":
    sys.exit(main())
