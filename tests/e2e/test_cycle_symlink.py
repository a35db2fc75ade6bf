"""End to end in the symlink layout: originals on a disk folder become symlinks to copies
on the fast file system (written as Plex sees them), and come back on eviction; every
path Plex reads resolves to byte-identical content throughout."""

from __future__ import annotations

import json
import os

import pytest

from cacherr.testing.fakeplex import FakePlex
from cacherr.testing.sandbox import Sandbox
from tests.e2e.cycle_support import PLEX_ROOT, cacherr, content, library_files, small_world
from tests.helpers import require_root

RULES = """\
version: 1
plex: {{url: '{plex_url}', token: OWNER-TOKEN, timeout: 5s}}
paths: [{{plex: {plex_root}, host: '{media}'}}]
cache:
  layout: symlink
  symlink: {{dir: '{fast}', plex_dir: '{fast}'}}
  max_size: 90%
  min_free: 1MiB
rules:
  - name: continue-watching
    select: ondeck
    episodes_ahead: 1
    keep: {{while: selected}}
    priority: 80
  - name: trending
    select: trakt
    list: movies/trending
    keep: {{while: selected}}
    priority: 20
trakt: {{client_id: trakt-client-id}}
state_dir: '{state}'
"""

EPISODE = "TV/Example Show/Season {s:02d}/Example Show - S{s:02d}E{e:02d}.mkv"
TRENDING = "Movies/Trending Movie (2001)/Trending Movie (2001).mkv"


@pytest.fixture
def world(tmp_path):
    require_root()
    scenario = small_world()
    with FakePlex(scenario) as fake, Sandbox(tmp_path / "sb", disks=1, mergerfs=False) as sandbox:
        media = sandbox.slow[0]
        written = {}
        for plex_path, size in library_files(scenario).items():
            relative = plex_path[len(PLEX_ROOT) + 1:]
            (media / relative).parent.mkdir(parents=True, exist_ok=True)
            (media / relative).write_bytes(content(plex_path, size))
            written[relative] = content(plex_path, size)
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES.format(plex_url=fake.pms_url, plex_root=PLEX_ROOT, media=media,
                                      fast=sandbox.fast, state=tmp_path / "state"))
        yield fake, sandbox, media, written, rules


def links(media):
    return {str(p.relative_to(media)) for p in media.rglob("*") if p.is_symlink()}


def assert_intact(media, written):
    for relative, data in written.items():
        assert (media / relative).read_bytes() == data, relative  # follows the symlink
    assert not [p for p in media.rglob("*.cacherr-tmp")] + [p for p in media.rglob("*.cacherr-link")]


def test_a_symlink_cycle_caches_and_evicts_by_the_keep_rules(world):
    fake, sandbox, media, written, rules = world
    first = cacherr(rules, "run", "--once", fake=fake)
    assert first.returncode == 0, first.stderr
    expected = {EPISODE.format(s=1, e=3), EPISODE.format(s=2, e=1), TRENDING}
    assert links(media) == expected
    for relative in expected:
        assert os.readlink(media / relative) == f"{sandbox.fast}/{relative}"
        assert (media / relative).with_name(f".{os.path.basename(relative)}.cacherr-backup").exists()
    assert_intact(media, written)

    fake.mark_watched("owner", fake.scenario.shows[0].seasons[0].episodes[2].rating_key)
    second = cacherr(rules, "run", "--once", fake=fake)
    assert second.returncode == 0, second.stderr
    assert links(media) == {EPISODE.format(s=2, e=1), EPISODE.format(s=2, e=2), TRENDING}
    assert not (media / EPISODE.format(s=1, e=3)).is_symlink()
    assert not (sandbox.fast / EPISODE.format(s=1, e=3)).exists()
    assert_intact(media, written)

    everything = cacherr(rules, "evict", "--all", fake=fake)
    assert everything.returncode == 0, everything.stderr
    assert links(media) == set()
    assert not [p for p in media.rglob(".*cacherr-backup")]
    assert_intact(media, written)
    assert json.loads(cacherr(rules, "ls", "--format", "json", fake=fake).stdout) == []


def test_a_file_changed_through_its_symlink_is_left_alone_and_doctor_lists_it(world):
    fake, sandbox, media, written, rules = world
    assert cacherr(rules, "run", "--once", fake=fake).returncode == 0
    copy = sandbox.fast / TRENDING
    tagged = b"tagged " + written[TRENDING][7:]
    with open(media / TRENDING, "r+b") as through_the_link:  # a tagger, in place
        through_the_link.write(tagged[:7])
    evicted = cacherr(rules, "evict", str(media / TRENDING), fake=fake)
    assert (media / TRENDING).is_symlink() and copy.read_bytes() == tagged, evicted.stderr
    assert TRENDING not in [e["path"] for e in json.loads(
        cacherr(rules, "ls", "--format", "json", fake=fake).stdout)]

    doctor = cacherr(rules, "doctor", fake=fake)
    said = doctor.stdout + doctor.stderr
    assert f"{media / TRENDING} is cacherr's symlink to {copy}, but cacherr no longer " \
           "tracks it" in said, said
    assert f"or the backup {(media / TRENDING).with_name('.' + copy.name + '.cacherr-backup')}" in said
    fixed = cacherr(rules, "doctor", "--fix", fake=fake)
    assert (media / TRENDING).is_symlink() and copy.read_bytes() == tagged, fixed.stdout
