"""Requests one full selection makes against the fake Plex: 5 users, 200 and 10,000 items.

Usage: python bench/request_count.py
Target: <= 60 requests for 5 users / 200 items (the leading tools make 126 and 146), and
for 10,000 items no more than what paging adds. Two rounds each: the first builds the
GUID index and switches to Home users, the second reuses both (a steady-state cycle).
"""

from __future__ import annotations

import collections
import sys
import tempfile
import time
from pathlib import Path

# This file is named requests.py and bench/ holds other scripts (copy.py): run with the
# repository root, not bench/, first on the path, so `import requests` finds the library.
_here = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p not in ("", _here)]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cacherr.config.model import Keep, Rule  # noqa: E402
from cacherr.testing.fakeplex import FakePlex  # noqa: E402
from cacherr.testing.scenarios import Scenario  # noqa: E402

DAY = 86400.0
RULES = [
    Rule("continue-watching", "ondeck", Keep(while_selected=True, min_seconds=DAY), priority=80,
         within_seconds=14 * DAY, episodes_ahead=5),
    Rule("watchlists", "watchlist", Keep(for_seconds=7 * DAY), episodes=1),
    Rule("trending", "trakt", Keep(while_selected=True), priority=20, list="movies/trending", limit=10),
    Rule("now-playing", "playing", Keep(until_watched=True, grace_seconds=2 * DAY), priority=90,
         episodes_ahead=2),
    Rule("new", "recently_added", Keep(while_selected=True), within_seconds=7 * DAY),
]


def measure(items: int, users: int) -> list[tuple[int, collections.Counter, float, int]]:
    scenario = Scenario.generate(items=items, users=users)
    rounds = []
    with FakePlex(scenario) as fake, tempfile.TemporaryDirectory() as state_dir:
        fake.start_session(scenario.users[1].name, scenario.movies[0].rating_key)
        for _ in range(2):
            fake.reset_counts()
            started = time.perf_counter()
            result = fake.select(RULES, Path(state_dir))
            elapsed = time.perf_counter() - started
            if result.failed_sources:
                raise SystemExit(f"failed sources: {result.failed_sources}")
            by_service = collections.Counter(r.service for r in fake.requests)
            rounds.append((result.request_count, by_service, elapsed, len(result.wanted)))
    return rounds


def main() -> int:
    for items in (200, 10_000):
        for number, (count, by_service, elapsed, wanted) in enumerate(measure(items, 5), 1):
            kind = "first round (builds the GUID index)" if number == 1 else "steady state"
            services = ", ".join(f"{k} {v}" for k, v in sorted(by_service.items()))
            print(f"5 users, {items:>6} items, {kind:<36}: {count:3d} requests ({services}); "
                  f"{wanted} files wanted; {elapsed:.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
