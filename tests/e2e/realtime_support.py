"""A world for measuring how fast a playback reaches the fast branch: many small shows, a
`playing` rule with one episode of look-ahead, and the real `cacherr run` watching a fake
Plex that pushes its alert stream. Shared by bench/realtime.py and the end-to-end tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.scenarios import Scenario, Section, User, _make_show
from cacherr.testing.world import PLEX_ROOT, KiB, populate
from tests.e2e.cycle_support import write_rules
from tests.e2e.service_support import RunningService

BODY = """\
rules:
  - name: now-playing
    select: playing
    episodes_ahead: 1
    keep: {{until: watched}}
    priority: 90
schedule: {{every: 1h, sessions_every: {sessions_every}s}}
server: {{listen: '127.0.0.1:0'}}
"""


def shows_world(count: int, now: float | None = None) -> Scenario:
    """`count` shows of one season with two small episodes each (owner only)."""
    now = time.time() if now is None else now
    tv_dir = f"{PLEX_ROOT}/TV"
    shows = [_make_show(1000 + 100 * number, f"Show {number:02d}", 2020, tv_dir, seasons=1,
                        episodes_per_season=2, episode_size=32 * KiB, added_at=now - 60 * 86400,
                        external_guids=[f"tvdb://{9000 + number}"])
             for number in range(1, count + 1)]
    return Scenario(sections=[Section(2, "TV", "show", tv_dir)], movies=[], shows=shows,
                    users=[User("owner", 1000001, "owner", "OWNER-TOKEN")], now=now)


@dataclass(frozen=True)
class Playback:
    """One episode to play, and the share-relative paths that must reach the fast branch."""

    rating_key: int
    paths: tuple[str, ...]


def playbacks(scenario: Scenario) -> list[Playback]:
    """The first episode of every show, with the second one as its look-ahead."""
    found = []
    for show in scenario.shows:
        episodes = show.seasons[0].episodes
        found.append(Playback(episodes[0].rating_key, tuple(
            e.versions[0].files[0][0][len(PLEX_ROOT) + 1:] for e in episodes[:2])))
    return found


class RealtimeWorld:
    """A running service over a fake Plex and a sandbox, with `alerts` on or off."""

    def __init__(self, root: Path, fake: FakePlex, sandbox, *, alerts: bool,
                 sessions_every: int) -> None:
        self.fake, self.sandbox, self.sessions_every = fake, sandbox, sessions_every
        populate(sandbox, fake.scenario)
        rules = write_rules(root / "rules.yaml", fake, sandbox, root / "state",
                            BODY.format(sessions_every=sessions_every),
                            plex_extra="" if alerts else ", alerts: false")
        self.service = RunningService(rules, root / "state", fake.env())

    def wait_ready(self, alerts: bool, timeout_seconds: float = 30.0) -> None:
        """Until the first cycle ran and, with alerts, the stream is connected."""
        deadline = time.monotonic() + timeout_seconds
        while not (self.service.metric("cacherr_runs_total") or 0) >= 1 or (
                alerts and self.service.metric("cacherr_alerts_connected") != 1):
            if time.monotonic() > deadline:
                raise AssertionError("the service did not become ready:\n" + self.service.output())
            time.sleep(0.05)

    def on_fast(self, playback: Playback) -> bool:
        return all((self.sandbox.fast / path).exists() for path in playback.paths)

    def play(self, playback: Playback, timeout_seconds: float) -> float:
        """Start a session; return the seconds until the file and its look-ahead are on the
        fast branch (final names: the durable copy renames into place after fsync)."""
        started = time.monotonic()
        self.fake.start_session("owner", playback.rating_key)
        while not self.on_fast(playback):
            if time.monotonic() - started > timeout_seconds:
                raise AssertionError(f"{playback.paths} not cached within {timeout_seconds} s:\n"
                                     + self.service.output()[-3000:])
            time.sleep(0.005)
        return time.monotonic() - started

    def stop(self, wait_seen: bool) -> None:
        """Stop the owner's session; with `wait_seen`, until the service saw it end."""
        self.fake.stop_session("owner")
        deadline = time.monotonic() + 10
        while wait_seen and (self.service.metric("cacherr_active_sessions") or 0) > 0:
            if time.monotonic() > deadline:
                raise AssertionError("the service never saw the session end")
            time.sleep(0.02)

    def close(self) -> None:
        self.service.stop()
