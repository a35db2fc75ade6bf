"""Real-time benchmark: from a session starting in the fake Plex to its file and its
look-ahead being durable on the fast branch, with the real `cacherr run` service.

Three runs, each on a fresh world of small shows: with Plex's alert stream; with polling
only (`plex.alerts: false`); and with the stream killed (and reconnects refused) after a
few playbacks, so polling has to take over (only the playbacks after the kill count). Targets: median <= 1 s with the stream; every playback after
the kill within sessions_every + 2 s. Polling-only is the baseline of the same run.

Needs root (tmpfs) and mergerfs, like the end-to-end tests.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cacherr.testing.fakealerts import PATH as ALERTS_PATH  # noqa: E402
from cacherr.testing.fakeplex import FakePlex  # noqa: E402
from cacherr.testing.sandbox import Sandbox, mergerfs_available  # noqa: E402
from tests.e2e.realtime_support import RealtimeWorld, playbacks, shows_world  # noqa: E402

TARGET_MEDIAN_SECONDS = 1.0
KILLED_AFTER = 3  # playbacks through the stream before it is killed mid-run


def measure(mode: str, count: int, sessions_every: int, rng: random.Random) -> list[float]:
    """Play `count` first episodes one after another in `mode` (stream | polling | killed)."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        with FakePlex(shows_world(count)) as fake, Sandbox(root / "sb", disks=2) as sandbox:
            alerts = mode != "polling"
            world = RealtimeWorld(root, fake, sandbox, alerts=alerts,
                                  sessions_every=sessions_every)
            try:
                world.wait_ready(alerts)
                delays, streaming = [], mode != "polling"
                for number, playback in enumerate(playbacks(fake.scenario)):
                    if mode == "killed" and number == KILLED_AFTER:
                        fake.fail("pms", ALERTS_PATH)  # reconnects are refused from now on
                        fake.alerts.kill()
                        streaming = False
                    if not streaming:
                        # polls tick at fixed times: start anywhere between two of them
                        time.sleep(rng.uniform(0, sessions_every))
                    delay = world.play(playback, timeout_seconds=sessions_every + 30)
                    if mode != "killed" or number >= KILLED_AFTER:
                        delays.append(delay)
                    world.stop(wait_seen=streaming)
                observed = world.service.metric("cacherr_playback_to_cached_seconds_count")
                if observed != len(playbacks(fake.scenario)):
                    raise SystemExit(f"{mode}: the service observed {observed} playbacks")
                return delays
            finally:
                world.close()


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--playbacks", type=int, default=12, help="per run (at least 10)")
    parser.add_argument("--sessions-every", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if os.geteuid() != 0 or not mergerfs_available():
        print("bench/realtime.py: skipped: needs root, /dev/fuse and mergerfs")
        return 0
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    count = max(10, args.playbacks)
    rng = random.Random(seed)
    results = {mode: measure(mode, count, args.sessions_every, rng)
               for mode in ("stream", "polling", "killed")}
    budget = args.sessions_every + 2
    print(f"session start -> file and look-ahead durable on the fast branch "
          f"({count} playbacks per run, sessions_every {args.sessions_every} s, seed {seed})")
    print(f"{'':24}{'median':>9}{'p95':>9}{'max':>9}")
    labels = {"stream": "alert stream", "polling": "polling only",
              "killed": "stream killed, polling"}
    for mode, delays in results.items():
        print(f"{labels[mode]:24}{statistics.median(delays):8.2f}s{p95(delays):8.2f}s"
              f"{max(delays):8.2f}s")
    median = statistics.median(results["stream"])
    worst_killed = max(results["killed"])
    print(f"target: median with the stream <= {TARGET_MEDIAN_SECONDS:g} s: {median:.2f} s; "
          f"after the kill every playback <= sessions_every + 2 = {budget} s: {worst_killed:.2f} s; "
          f"polling only / stream median: {statistics.median(results['polling']) / median:.0f}x")
    return 0 if median <= TARGET_MEDIAN_SECONDS and worst_killed <= budget else 1


if __name__ == "__main__":
    sys.exit(main())
