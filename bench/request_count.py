"""Requests one full selection makes against the fake Plex: 5 users, 200 and 10,000 items.

Usage: python bench/request_count.py
Target: <= 25 requests for a full cycle of 5 users / 200 items, cold (first cycle: builds
the GUID index, switches to Home users) and steady, and the same count for 10,000 items;
the leading tools make 126 and 146 for the same work. Then a poll of live sessions: the
session watcher's round and the engine's re-poll, with one direct-play and one
transcoding session (resolving the transcoded one to its file costs at most one request).
Prints the requests per endpoint; exits 1 when a target is missed.
"""

from __future__ import annotations

import collections
import re
import sys
import tempfile
import time
from pathlib import Path

# bench/ holds other scripts: run with the repository root, not bench/, first on the path.
_here = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p not in ("", _here)]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cacherr.config.model import Keep, Rule  # noqa: E402
from cacherr.sources.live import LiveSessions  # noqa: E402
from cacherr.sources.users import UsersMemory  # noqa: E402
from cacherr.testing.fakeplex import FakePlex, RecordedRequest  # noqa: E402
from cacherr.testing.scenarios import Scenario  # noqa: E402

DAY = 86400.0
TARGET = 25
RULES = [
    Rule("continue-watching", "ondeck", Keep(while_selected=True, min_seconds=DAY), priority=80,
         within_seconds=14 * DAY, episodes_ahead=5),
    Rule("watchlists", "watchlist", Keep(for_seconds=7 * DAY), episodes=1),
    Rule("trending", "trakt", Keep(while_selected=True), priority=20, list="movies/trending", limit=10),
    Rule("now-playing", "playing", Keep(until_watched=True, grace_seconds=2 * DAY), priority=90,
         episodes_ahead=2),
    Rule("new", "recently_added", Keep(while_selected=True), within_seconds=7 * DAY),
]


def endpoint(request: RecordedRequest) -> str:
    """A request as its endpoint: ids become {id}, listings name their filter."""
    path = re.sub(r"/[0-9a-f]{40}/", "/{machine}/", request.path)
    path = re.sub(r"/\d+(,\d+)*", lambda m: "/{ids}" if "," in m.group(0) else "/{id}", path)
    if request.service == "rss":
        path = "/{feed}"
    if request.service == "pms" and path.startswith("/library/sections/") and path.endswith("/all"):
        kind = {"1": "movies", "2": "shows", "4": "episodes"}.get((request.query.get("type") or [""])[0], "?")
        filters = [k for k in ("show.id", "addedAt>>", "updatedAt>>", "label") if k in request.query]
        path += f" ({kind}{', ' + filters[0] if filters else ', everything'})"
    return f"{request.service:<8} {request.method:<4} {path}"


def measure(items: int, users: int) -> list[tuple[int, collections.Counter, float, int]]:
    """Two full rounds (cold, then steady) of `users` users over `items` items."""
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
            by_endpoint = collections.Counter(endpoint(r) for r in fake.requests)
            rounds.append((result.request_count, by_endpoint, elapsed, len(result.wanted)))
    return rounds


def measure_polls() -> dict[str, int]:
    """Requests of one session-watcher round and one engine re-poll, with one session
    played directly and then with one of them transcoded."""
    scenario = Scenario.generate(items=200, users=5)
    counts = {}
    playing = [r for r in RULES if r.select == "playing"]
    with FakePlex(scenario) as fake, tempfile.TemporaryDirectory() as state_dir:
        users = UsersMemory()  # as the service keeps them between rounds
        fake.select(RULES, Path(state_dir), users_memory=users)  # a full cycle first: the
        # watcher reuses the users it found
        config = fake.config(RULES, state_dir=Path(state_dir))
        live = LiveSessions(config, max_age_seconds=0.0, env=fake.env())
        live.host_paths()  # connects
        fake.start_session(scenario.users[1].name, scenario.movies[0].rating_key)
        for label, shape in (("direct play", {}), ("transcoding", {"transcode": True})):
            fake.stop_session(scenario.users[2].name)
            fake.start_session(scenario.users[2].name, scenario.movies[1].rating_key, **shape)
            fake.reset_counts()
            result = fake.select(playing, Path(state_dir), users_max_age_seconds=3600,
                                 users_memory=users)
            counts[f"session watcher round, {label}"] = result.request_count
            fake.reset_counts()
            live.host_paths()
            counts[f"engine re-poll, {label}"] = fake.count()
        live.close()
    return counts


def main() -> int:
    table: dict[str, dict[str, int]] = collections.defaultdict(dict)
    totals: dict[str, int] = {}
    columns = []
    for items in (200, 10_000):
        for number, (count, by_endpoint, elapsed, wanted) in enumerate(measure(items, 5), 1):
            column = f"{items} {'cold' if number == 1 else 'steady'}"
            columns.append(column)
            totals[column] = count
            for name, n in by_endpoint.items():
                table[name][column] = n
            print(f"5 users, {items:>6} items, {column.split()[1]:<6}: {count:3d} requests; "
                  f"{wanted} files wanted; {elapsed:.2f}s")
    width = max(len(name) for name in table)
    print()
    print(f"{'endpoint':<{width}} " + " ".join(f"{c:>12}" for c in columns))
    for name in sorted(table):
        print(f"{name:<{width}} " + " ".join(f"{table[name].get(c, 0):>12}" for c in columns))
    print(f"{'total':<{width}} " + " ".join(f"{totals[c]:>12}" for c in columns))
    polls = measure_polls()
    print()
    for label, count in polls.items():
        print(f"{label:<44}: {count} requests")
    failures = [f"{c}: {totals[c]} > {TARGET}" for c in columns if totals[c] > TARGET]
    if totals["10000 cold"] != totals["200 cold"] or totals["10000 steady"] != totals["200 steady"]:
        failures.append("10,000 items cost more requests than 200")
    for kind in ("session watcher round", "engine re-poll"):
        extra = polls[f"{kind}, transcoding"] - polls[f"{kind}, direct play"]
        if extra > 1:
            failures.append(f"{kind}: resolving a transcoded session cost {extra} requests")
    print()
    print("targets met" if not failures else "targets missed: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
