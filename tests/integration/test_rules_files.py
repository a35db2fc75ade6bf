"""Every file in rules/ and the SPEC §3 example validate: offline with the environment they
reference, and fully against a sandbox that has their paths."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from cacherr.config import loader
from cacherr.config.errors import ConfigError
from tests.helpers import require_root

REPO = Path(__file__).resolve().parents[2]
RULES = sorted((REPO / "rules").glob("*.yaml"))
SPEC_EXAMPLE = REPO / "tests" / "fixtures" / "spec_example.yaml"
SPEC = REPO.parent / "shared" / "SPEC.md"
ENV = {"PLEX_TOKEN": "token", "TRAKT_CLIENT_ID": "client", "DISCORD_URL": "discord://1/abc",
       "CACHERR_API_TOKEN": "an-api-token-0123456789"}


def test_the_rules_folder_has_the_four_documented_files():
    assert [path.name for path in RULES] == [
        "example.yaml", "mergerfs.yaml", "symlink.yaml", "unraid.yaml"]


@pytest.mark.parametrize("path", RULES + [SPEC_EXAMPLE], ids=lambda p: p.name)
def test_each_rules_file_validates_offline(path):
    config = loader.load(path, ENV, offline=True)
    assert config.rules, "a rules file with no rules teaches nothing"


@pytest.mark.parametrize("path", RULES + [SPEC_EXAMPLE], ids=lambda p: p.name)
def test_each_rules_file_names_its_unset_variables(path):
    text = path.read_text()
    if "${PLEX_TOKEN}" not in text:
        pytest.skip("references no required variable")
    with pytest.raises(ConfigError) as error:
        loader.load(path, {}, offline=True)
    assert any("${PLEX_TOKEN} is not set" in line for line in error.value.lines())


def test_the_spec_example_fixture_is_the_spec_text():
    if not SPEC.exists():
        pytest.skip("shared/SPEC.md is not beside this checkout")
    block = re.search(r"This example is normative.*?```yaml\n(.*?)```", SPEC.read_text(), re.S)
    assert block and block.group(1) == SPEC_EXAMPLE.read_text()


def test_the_spec_example_does_what_its_comments_say():
    config = loader.load(SPEC_EXAMPLE, ENV, offline=True)
    assert config.cache.layout == "union" and config.cache.original == "shadow"
    assert config.cache.max_size.percent == 80
    assert config.cache.min_free.bytes == 50 * 2**30
    assert config.users.exclude == ("kids",) and config.users.include is None
    assert config.users.inactive_after_seconds == 30 * 86400
    ondeck, watchlists, trending, playing = config.rules
    assert (ondeck.select, ondeck.within_seconds, ondeck.episodes_ahead) == ("ondeck", 14 * 86400, 5)
    assert ondeck.keep.while_selected and ondeck.keep.min_seconds == 86400
    assert watchlists.keep.for_seconds == 7 * 86400 and watchlists.episodes == 1
    assert (trending.list, trending.limit, trending.priority) == ("movies/trending", 10, 20)
    assert playing.keep.until_watched and playing.keep.grace_seconds == 48 * 3600
    assert config.schedule.every_seconds == 3600 and config.schedule.sessions_every_seconds == 30
    assert config.notify.urls == ("discord://1/abc", "unraid://")
    assert (config.server.listen_host, config.server.listen_port) == ("0.0.0.0", 5445)
    assert config.source_failure_grace_seconds == 86400 and config.dry_run is False


def _sandbox_paths(text: str, root: Path) -> list[str]:
    """Every absolute host path a rules file names under /mnt, /srv or /var (not Plex's)."""
    return re.findall(r"(?<![\w/])/(?:mnt|srv|var/lib)/[^\s\]\"',#]+", text)


@pytest.fixture
def sandbox_root(tmp_path):
    require_root()
    root = tmp_path / "sb"
    root.mkdir()
    mounted: list[Path] = []
    yield root, mounted
    for point in reversed(mounted):
        subprocess.run(["umount", str(point)], check=True)


@pytest.mark.parametrize("path", RULES + [SPEC_EXAMPLE], ids=lambda p: p.name)
def test_each_rules_file_validates_fully_in_a_sandbox_with_its_paths(path, sandbox_root):
    """Rewrite the file's host paths into a sandbox, create them, mount a tmpfs as the fast
    branch (a device of its own), and validate with every host check."""
    root, mounted = sandbox_root
    text = path.read_text()
    config = loader.load(path, ENV, offline=True)
    fast = None
    if config.cache.union:
        fast = str(config.cache.union.fast)
        for pattern in config.cache.union.slow_patterns:
            for disk in ("1", "2") if "*" in pattern else ("",):
                (root / (pattern.replace("*", disk)).lstrip("/")).mkdir(parents=True,
                                                                        exist_ok=True)
    for host_path in _sandbox_paths(text, root):
        if host_path.endswith((".txt", ".yaml")) or "/disk*" in host_path:
            continue
        (root / host_path.lstrip("/")).mkdir(parents=True, exist_ok=True)
    if fast:
        point = root / fast.lstrip("/")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(point)],
                       check=True)
        mounted.append(point)
    # The state folder must not be on the tmpfs fast branch for this test's sake.
    rewritten = re.sub(r"(?<![\w/])/(mnt|srv|var/lib)/", lambda m: f"{root}/{m.group(1)}/", text)
    rewritten = rewritten.replace(f"state_dir: {root}/mnt/cache/", f"state_dir: {root}/state/")
    target = root / path.name
    target.write_text(rewritten)
    loaded = loader.load(target, ENV, offline=False)
    if loaded.cache.union:
        assert loaded.cache.union.slow and all(str(p).startswith(str(root))
                                              for p in loaded.cache.union.slow)
