"""Look-ahead learned from each viewer, end to end: the real `cacherr plan`, `run --once`
and `ls` against the fake Plex, on a sandbox with real files."""

from __future__ import annotations

import json
import time

import pytest

from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.sandbox import Sandbox
from cacherr.testing.scenarios import DAY, Scenario, Section, User, _make_show
from tests.e2e.cycle_support import PLEX_ROOT, cacherr, on_fast, populate, write_rules
from tests.helpers import require_fuse

KiB = 1024
TV = f"{PLEX_ROOT}/TV"
SHOW = "Severance"


def binge_world(now: float) -> Scenario:
    """One show of three seasons; `fast` finished four episodes since yesterday, `slow`
    three over the last three weeks; both are somewhere in it on their On Deck."""
    show = _make_show(500, SHOW, 2022, TV, seasons=3, episodes_per_season=6,
                      episode_size=16 * KiB, added_at=now - 90 * DAY, external_guids=[])
    keys = [e.rating_key for s in show.seasons for e in s.episodes]
    return Scenario(
        sections=[Section(2, "TV", "show", TV)], movies=[], shows=[show],
        users=[User("fast", 1000001, "owner", "OWNER-TOKEN"),
               User("slow", 2000002, "friend", "SLOW-SERVER-TOKEN")],
        now=now,
        viewed={"fast": {key: now - DAY + n * 6 * 3600 for n, key in enumerate(keys[:4])},
                "slow": {key: now - 21 * DAY + n * 7 * DAY for n, key in enumerate(keys[:3])}},
    )


BINGE = """\
rules:
  - name: binge
    select: ondeck
    ahead: auto
    ahead_max: 8
    keep: {while: selected, min: 24h}
    priority: 80
"""


@pytest.fixture
def binge(tmp_path):
    require_fuse()
    scenario = binge_world(time.time())
    with FakePlex(scenario) as fake, Sandbox(tmp_path / "sb", disks=2, shares=("TV",)) as sandbox:
        populate(sandbox, scenario)
        rules = write_rules(tmp_path / "rules.yaml", fake, sandbox, tmp_path / "state",
                            body=BINGE)
        yield fake, sandbox, rules


def episode(season: int, number: int) -> str:
    return f"TV/{SHOW}/Season {season:02d}/{SHOW} - S{season:02d}E{number:02d}.mkv"


def test_a_fast_viewer_gets_a_longer_window_than_a_slow_one_on_the_same_show(binge):
    fake, sandbox, rules = binge
    planned = cacherr(rules, "plan", "--json", fake=fake)
    assert planned.returncode == 0, planned.stderr
    document = json.loads(planned.stdout)
    windows = {tuple(w["users"]): w for w in document["lookahead"]}
    assert windows[("fast",)]["episodes"] == 4
    assert windows[("fast",)]["reason"] == f"fast watches 4.0 episodes/day of {SHOW} → 4 ahead"
    assert windows[("slow",)]["episodes"] == 1
    assert windows[("slow",)]["reason"].startswith("slow watches 0.1 episodes/day")
    cached = {a["path"] for a in document["actions"] if a["action"] == "cache"}
    # fast is at S01E05: it and four more, across the season; slow at S01E04 and one more
    assert cached == {episode(1, 5), episode(1, 6), episode(2, 1), episode(2, 2), episode(2, 3),
                      episode(1, 4)}

    ran = cacherr(rules, "run", "--once", fake=fake)
    assert ran.returncode == 0, ran.stderr
    assert on_fast(sandbox) == cached
    listed = cacherr(rules, "ls", "--user", "slow", fake=fake)
    assert listed.returncode == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if line.startswith("ahead")]
    assert len(lines) == 1 and "binge" in lines[0] and f"{SHOW}: slow watches" in lines[0]


def test_the_fast_viewers_window_grows_as_they_keep_watching(binge):
    fake, _, rules = binge
    first = json.loads(cacherr(rules, "plan", "--json", fake=fake).stdout)["lookahead"]
    for offset, key in enumerate((515, 516, 521, 522)):  # four more since this morning
        fake.mark_watched("fast", key, at=time.time() - 3600 + offset * 60)
    second = json.loads(cacherr(rules, "plan", "--json", fake=fake).stdout)["lookahead"]
    fast = [w["episodes"] for w in first if w["users"] == ["fast"]] + \
        [w["episodes"] for w in second if w["users"] == ["fast"]]
    assert fast == [4, 8]  # eight a day now: ahead_max


def test_under_space_pressure_the_far_ends_of_the_queues_wait_never_the_middle(binge):
    fake, _, rules = binge
    # room for four of the six episodes (16 KiB each, 5% margin below 72 KiB)
    rules.write_text(rules.read_text().replace("max_size: 90%", "max_size: 72KiB"))
    document = json.loads(cacherr(rules, "plan", "--json", fake=fake).stdout)
    cached = {a["path"] for a in document["actions"] if a["action"] == "cache"}
    waiting = {a["path"] for a in document["actions"] if a["action"] == "skip"}
    # both viewers' next episodes first (S01E04 for slow, S01E05 for both), then fast's
    # queue in order; its far end waits
    assert cached == {episode(1, 4), episode(1, 5), episode(1, 6), episode(2, 1)}
    assert waiting == {episode(2, 2), episode(2, 3)}
