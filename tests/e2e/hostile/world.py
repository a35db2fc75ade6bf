"""A small real world for the hostile tests: a fake Plex whose owner token, Trakt client id
and friends' feed are planted secrets, a sandbox in the symlink layout (a tmpfs fast
file system, no FUSE needed), a rules file that takes every secret from the 0600 `.env`
beside it, and a local notification sink (plus a dead one, for failure logs)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.sandbox import Sandbox
from cacherr.testing.scenarios import User
from cacherr.testing.world import PLEX_ROOT, content, library_files, small_world
from tests.e2e.hostile.support import environment
from tests.e2e.service_support import RunningService
from tests.notify_sink import Sink

SECRETS = {
    "PLEX_TOKEN": "plexSECRETa7f3c9e25b1d",
    "CACHERR_API_TOKEN": "apiSECRETb4e8b2a6c9d0f123",
    "TRAKT_CLIENT_ID": "traktSECRETc8d1f0a2b3c4",
    "GHOST_TOKEN": "userSECRETd3b6a9f8e7d6",
}
HOOK_SECRET = "hookSECRETe91ab7c6d5"  # the path of the working notification URL
DEAD_SECRET = "deadSECRETf0c2d4e6a8"  # password and path of a URL nobody answers
RSS_SECRET = "rssSECRETa0b1c2d3e4f5"  # the friends' feed id

RULES = """\
version: 1
plex:
  url: '{plex_url}'
  token: ${{PLEX_TOKEN}}
  timeout: 5s
  watchlist_rss: ${{PLEX_WATCHLIST_RSS}}
  user_tokens: {{ghost: '${{GHOST_TOKEN}}'}}
paths: [{{plex: {plex_root}, host: media}}]
cache:
  layout: symlink
  symlink: {{dir: '{fast}', plex_dir: '{fast}'}}
  max_size: 90%
  min_free: 1MiB
{cache_extra}rules:
  - name: continue-watching
    select: ondeck
    episodes_ahead: 1
    keep: {{while: selected}}
    priority: 80
  - name: watchlists
    select: watchlist
    keep: {{while: selected}}
    priority: 50
  - name: trending
    select: trakt
    list: movies/trending
    keep: {{while: selected}}
    priority: 20
trakt: {{client_id: '${{TRAKT_CLIENT_ID}}'}}
schedule: {{every: 1h, sessions_every: 1h}}
notify:
  urls: ['${{GOOD_HOOK}}', '${{DEAD_HOOK}}']
  events: [summary, error, cache_full, source_down, source_recovered]
server: {{listen: '127.0.0.1:0', token: '${{CACHERR_API_TOKEN}}'}}
state_dir: state
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class World:
    root: Path
    fake: FakePlex
    sandbox: Sandbox
    sink: Sink
    rules: Path
    media: Path
    written: dict[str, bytes]
    secrets: dict[str, str]

    @property
    def state(self) -> Path:
        return self.root / "state"

    def cacherr(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
        """The real command, with `-c` after the command (it must work there too)."""
        command, *rest = args
        return subprocess.run(
            [sys.executable, "-m", "cacherr", command, "-c", str(self.rules), *rest],
            capture_output=True, text=True, cwd=self.root, timeout=timeout,
            env=environment({**self.fake.env(), **(env or {})}))

    def service(self, env: dict[str, str] | None = None) -> RunningService:
        return RunningService(self.rules, self.state, {**self.fake.env(), **(env or {})})

    def on_fast(self) -> set[str]:
        fast = self.sandbox.fast
        return {str(p.relative_to(fast)) for p in fast.rglob("*") if p.is_file()}


FIRST_EPISODE = "Example Show - S01E03.mkv"  # the first file the plan caches


def enlarge_first_episode(scenario, size_bytes: int) -> None:
    """Make the first file the plan caches big enough to take several copy chunks."""
    for season in scenario.shows[0].seasons:
        for episode in season.episodes:
            for version in episode.versions:
                version.files = [(path, size_bytes if path.endswith(FIRST_EPISODE) else size)
                                 for path, size in version.files]


@contextlib.contextmanager
def hostile_world(root: Path, *, cache_extra: str = "",
                  first_episode_bytes: int | None = None) -> Iterator[World]:
    """Build the world under `root` (needs root for the tmpfs); tear it down after."""
    scenario = small_world()
    if first_episode_bytes is not None:
        enlarge_first_episode(scenario, first_episode_bytes)
    owner = scenario.users[0]
    scenario = dataclasses.replace(
        scenario, users=[User(owner.name, owner.id, owner.kind, SECRETS["PLEX_TOKEN"])],
        trakt_client_id=SECRETS["TRAKT_CLIENT_ID"], rss_id=RSS_SECRET)
    with FakePlex(scenario) as fake, Sandbox(root / "sb", disks=1, mergerfs=False) as sandbox, \
            contextlib.closing(Sink()) as sink:
        media = root / "media"
        written = {}
        for plex_path, size in library_files(scenario).items():
            relative = plex_path[len(PLEX_ROOT) + 1:]
            (media / relative).parent.mkdir(parents=True, exist_ok=True)
            (media / relative).write_bytes(content(plex_path, size))
            written[relative] = content(plex_path, size)
        secrets = dict(SECRETS, PLEX_WATCHLIST_RSS=fake.rss_url,
                       GOOD_HOOK=sink.url(HOOK_SECRET),
                       DEAD_HOOK=f"json://cacherr:{DEAD_SECRET}@127.0.0.1:{free_port()}/"
                                 f"{DEAD_SECRET}")
        env_file = root / ".env"
        env_file.write_text("".join(f"{name}={value}\n" for name, value in secrets.items()))
        env_file.chmod(0o600)
        rules = root / "rules.yaml"
        rules.write_text(RULES.format(plex_url=fake.pms_url, plex_root=PLEX_ROOT,
                                      fast=sandbox.fast, cache_extra=cache_extra))
        (root / "state").mkdir()
        yield World(root, fake, sandbox, sink, rules, media, written, secrets)


def planted(world: World) -> list[str]:
    """Every secret value, and the parts of the notification URLs that are secret."""
    return list(SECRETS.values()) + [HOOK_SECRET, DEAD_SECRET, RSS_SECRET]


def leaks(text: str | bytes, world: World) -> list[str]:
    """The planted secrets that occur in `text`."""
    if isinstance(text, bytes):
        return [secret for secret in planted(world) if secret.encode() in text]
    return [secret for secret in planted(world) if secret in text]


def files_with_secrets(world: World) -> dict[str, list[str]]:
    """Every file under the world's root (the .env excepted) that holds a secret."""
    found = {}
    for folder, _, names in os.walk(world.root):
        for name in names:
            path = Path(folder) / name
            if path == world.root / ".env" or path.is_symlink() or not path.is_file():
                continue
            hits = leaks(path.read_bytes(), world)
            if hits:
                found[str(path.relative_to(world.root))] = hits
    return found
