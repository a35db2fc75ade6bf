"""A small world for end-to-end cycles: a fake Plex whose library files really exist in
a sandbox (slow disk folders, a tmpfs pool, a mergerfs view), and the rules file for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.world import (  # noqa: F401 - re-exported for the tests
    PLEX_ROOT,
    content,
    library_files,
    populate,
    small_world,
)

HEAD = """\
version: 1
plex: {{url: '{plex_url}', token: OWNER-TOKEN, timeout: 5s{plex_extra}}}
paths: [{{plex: {plex_root}, host: '{view}'}}]
cache:
  layout: union
  union: {{view: '{view}', fast: '{fast}', slow: ['{slow}']}}
  max_size: 90%
  min_free: 1MiB
"""
BODY = """\
rules:
  - name: continue-watching
    select: ondeck
    episodes_ahead: 2
    keep: {while: selected}
    priority: 80
  - name: watchlists
    select: watchlist
    keep: {while: selected}
    priority: 50
  - name: trending
    select: trakt
    list: movies/trending
    keep: {while: selected}
    priority: 20
trakt: {client_id: trakt-client-id}
"""


def write_rules(path: Path, fake: FakePlex, sandbox, state: Path, body: str = BODY,
                plex_extra: str = "") -> Path:
    """Write a rules file for the union sandbox: the common head, `body` (rules and any
    other keys; default: On Deck, watchlists and Trakt), and `state` as state_dir."""
    path.write_text(HEAD.format(plex_url=fake.pms_url, plex_root=PLEX_ROOT, view=sandbox.view,
                                fast=sandbox.fast, slow=f"{sandbox.root}/disk*",
                                plex_extra=plex_extra)
                    + body + f"state_dir: '{state}'\n")
    return path


def cacherr(rules: Path, *args: str, fake: FakePlex, timeout: float = 120,
            env: dict[str, str] | None = None):
    env = dict(os.environ, **fake.env(), **(env or {}))
    env.pop("CACHERR_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "cacherr", "-c", str(rules), *args],
                          capture_output=True, text=True, env=env, timeout=timeout)


def on_fast(sandbox) -> set[str]:
    """Share paths of the files on the fast branch."""
    return {str(p.relative_to(sandbox.fast)) for p in sandbox.fast.rglob("*") if p.is_file()}
