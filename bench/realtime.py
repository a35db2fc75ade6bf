"""Real-time benchmark: from a session appearing in the fake Plex to its file being on the
fast branch, with the real `cacherr run` service. Target: <= sessions_every + 2 s.

Needs root (tmpfs) and mergerfs, like the end-to-end tests.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cacherr.testing.fakeplex import FakePlex  # noqa: E402
from cacherr.testing.sandbox import Sandbox, mergerfs_available  # noqa: E402
from tests.e2e.cycle_support import populate, small_world, write_rules  # noqa: E402
from tests.e2e.service_support import RunningService  # noqa: E402

TARGET = "Movies/Other Movie (2001)/Other Movie (2001).mkv"


def measure(sessions_every: int, rounds: int) -> list[float]:
    delays = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        scenario = small_world()
        with FakePlex(scenario) as fake, Sandbox(root / "sb", disks=2) as sandbox:
            populate(sandbox, scenario)
            rules = write_rules(root / "rules.yaml", fake, sandbox, root / "state")
            rules.write_text(rules.read_text().replace(
                "rules:\n", "rules:\n  - name: now-playing\n    select: playing\n"
                "    keep: {until: watched}\n    priority: 90\n", 1)
                + f"schedule: {{every: 1h, sessions_every: {sessions_every}s}}\n"
                "server: {listen: '127.0.0.1:0'}\n")
            service = RunningService(rules, root / "state", fake.env())
            try:
                deadline = time.monotonic() + 30
                while not (sandbox.fast / "Movies/Trending Movie (2001)").exists():
                    if time.monotonic() > deadline:
                        raise SystemExit("the first cycle did not finish")
                    time.sleep(0.05)
                show = scenario.shows[0]
                targets = [(scenario.movies[2].rating_key, TARGET)] + [
                    (episode.rating_key,
                     f"TV/Example Show/Season 01/Example Show - S01E{episode.index:02d}.mkv")
                    for episode in show.seasons[0].episodes[:2]]
                for rating_key, relative in targets[:rounds]:
                    fake.start_session("owner", rating_key)
                    started = time.monotonic()
                    while not (sandbox.fast / relative).exists():
                        if time.monotonic() - started > sessions_every + 30:
                            raise SystemExit(f"{relative} never arrived")
                        time.sleep(0.02)
                    delays.append(time.monotonic() - started)
                    fake.stop_session("owner")
            finally:
                service.stop()
    return delays


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions-every", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, choices=[1, 2, 3])
    args = parser.parse_args()
    if os.geteuid() != 0 or not mergerfs_available():
        print("bench/realtime.py: skipped: needs root, /dev/fuse and mergerfs")
        return 0
    delays = measure(args.sessions_every, args.rounds)
    worst = max(delays)
    print("session start -> file on the fast branch: "
          + ", ".join(f"{d:.2f} s" for d in delays)
          + f"; sessions_every {args.sessions_every} s; target <= {args.sessions_every + 2} s")
    return 0 if worst <= args.sessions_every + 2 else 1


if __name__ == "__main__":
    sys.exit(main())
