"""`cacherr demo [--once]`: the whole thing on a throw-away sandbox, no setup.

A built-in fake Plex (a small library, an owner with something On Deck, a watchlist and a
Trakt chart) and real files: with root and mergerfs, Unraid's layout (disk folders, a
tmpfs pool, a mergerfs merged view); otherwise the symlink layout (a folder on the disk,
copies in a folder on /dev/shm). One visible cycle, then `plan`, `ls` and the summary;
then the service with /metrics until Ctrl-C (`--once` stops after the summary).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from cacherr.commands import EXIT_FAILURE, EXIT_OK
from cacherr.host.mounts import is_separate_mount
from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.sandbox import Sandbox, mergerfs_available
from cacherr.testing.world import PLEX_ROOT, populate, small_world, write_library

RULES = """\
# A demo rules file, written by `cacherr demo` into a throw-away sandbox.
version: 1
plex: {{url: '{plex_url}', token: OWNER-TOKEN}}
paths: [{{plex: {plex_root}, host: '{host}'}}]
cache:
{cache}
  max_size: 90%
  min_free: 1MiB
rules:
  - name: continue-watching
    select: ondeck
    episodes_ahead: 2
    keep: {{while: selected, min: 1h}}
    priority: 80
  - name: watchlists
    select: watchlist
    keep: {{for: 7d}}
    priority: 50
  - name: trending
    select: trakt
    list: movies/trending
    keep: {{while: selected}}
    priority: 20
trakt: {{client_id: trakt-client-id}}
schedule: {{every: 1h, sessions_every: 10s}}
server: {{listen: '127.0.0.1:{port}'}}
state_dir: '{state}'
"""


def _say(text: str) -> None:
    sys.stdout.flush()
    print(f"\n== {text}", file=sys.stderr, flush=True)


def run(args) -> int:
    from cacherr.cli import main

    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cacherr-demo-")))
        scenario = small_world()
        fake = stack.enter_context(FakePlex(scenario))
        saved = dict(os.environ)
        stack.callback(lambda: (os.environ.clear(), os.environ.update(saved)))
        os.environ.update(fake.env())
        layout = getattr(args, "layout", "auto")
        if layout == "union" or (layout == "auto" and mergerfs_available()):
            sandbox = stack.enter_context(Sandbox(root / "sandbox", disks=2))
            populate(sandbox, scenario)
            host = f"{sandbox.view}"
            cache = (f"  layout: union\n  union: {{view: '{sandbox.view}', fast: '{sandbox.fast}',"
                     f" slow: ['{sandbox.root}/disk*']}}")
            where = (f"Unraid-like sandbox in {sandbox.root}: disk1, disk2, a tmpfs pool "
                     f"(cache) and a mergerfs view (user)")
        else:
            fast_parent = Path("/dev/shm")
            if not fast_parent.is_dir() or not is_separate_mount(fast_parent):
                print("cacherr demo: needs root and mergerfs, or a tmpfs at /dev/shm for the "
                      "cached copies", file=sys.stderr)
                return EXIT_FAILURE
            fast = Path(tempfile.mkdtemp(prefix="cacherr-demo-", dir=fast_parent))
            stack.callback(shutil.rmtree, fast, True)
            media = root / "media"
            write_library(media, scenario)
            host = str(media)
            cache = f"  layout: symlink\n  symlink: {{dir: '{fast}', plex_dir: '{fast}'}}"
            where = f"symlink sandbox: media in {media}, cached copies in {fast}"
        rules = root / "rules.yaml"
        port = 0 if args.once else 5445
        rules.write_text(RULES.format(plex_url=fake.pms_url, plex_root=PLEX_ROOT, host=host,
                                      cache=cache, port=port, state=root / "state"))
        _say(f"cacherr demo: a fake Plex at {fake.pms_url} and a {where}")
        _say(f"the rules: {rules}")
        print(rules.read_text(), file=sys.stderr)
        _say("one cycle: cacherr run --once")
        code = main(["-c", str(rules), "run", "--once"])
        _say("what the next cycle would do: cacherr plan")
        main(["-c", str(rules), "plan"])
        _say("what is cached: cacherr ls")
        main(["-c", str(rules), "ls"])
        if code != EXIT_OK or args.once:
            return code
        _say("the service: http://127.0.0.1:5445/metrics and /health (Ctrl-C to stop)")
        return main(["-c", str(rules), "run"])
